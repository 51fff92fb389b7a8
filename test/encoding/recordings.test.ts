// The real guacd recordings in fixtures/recordings: every one encodes, lasts its sync span, and
// uses no opcode the display model skips; a recording split into segments at syncs and encoded
// segment by segment from the saved states gives the frames of the whole-file encode.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeRecording } from '../../src/encoding/encode-segment.js';
import { measureClip } from '../../src/encoding/ffmpeg-process.js';
import { parseAll } from '../../src/protocol/index.js';
import { PACKAGE_ROOT } from '../../src/runtime-paths.js';
import { ensureBuilt, ffmpegBinaries, ffprobeClip, psnr, syncSpan } from './clip-frames.js';

const FIXTURES = join(PACKAGE_ROOT, 'fixtures', 'recordings');
const binaries = await ffmpegBinaries();
const system = binaries[0]!;
const packaged = binaries.find((b) => b.source === '@ffmpeg-installer/ffmpeg');
const settings = { bitrate: 1_000_000, framerate: 10, width: 0, height: 0, threads: 2 };

beforeAll(() => ensureBuilt());

const label = (b: typeof system): string => `${b.source}, ${b.version}`;
const cases: Array<[string, string, typeof system]> = [
  ['vnc-desktop', label(system), system],
  ['ssh-terminal', label(system), system],
  ['rdp-desktop', label(system), system],
];
if (packaged && packaged !== system) cases.push(['ssh-terminal', label(packaged), packaged]);

describe('fixture recordings', () => {
  it.each(cases)('%s encodes for its whole sync span, event loop free (ffmpeg %s)', async (name, _label, ffmpeg) => {
    const input = join(FIXTURES, `${name}.gz`);
    const dir = mkdtempSync(join(tmpdir(), 'recgw-fx-'));
    const output = join(dir, `${name}.mp4`);
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const r = await encodeRecording({ input, output, thumbnail: join(dir, `${name}.jpg`), settings, ffmpeg });
    delay.disable();
    // The event loop stays free: rendering runs in a worker, ffmpeg in a child. Generous bounds
    // (other test files load the same two cores); rendering on this thread would block it for
    // whole chunks of PNG decoding and compositing, tens of ms each.
    expect(delay.percentile(50) / 1e6).toBeLessThan(20);
    expect(delay.percentile(99) / 1e6).toBeLessThan(150);
    const span = syncSpan(input);
    const spanMs = span.last - span.first;
    const frameMs = 1000 / settings.framerate;
    expect(r.unsupported).toEqual({});
    expect(r.malformed).toBe(0);
    expect(r.truncated).toBe(false);
    expect(r.firstSync).toBe(span.first);
    expect(r.durationMs).toBeGreaterThan(spanMs);
    expect(r.durationMs).toBeLessThanOrEqual(spanMs + frameMs);
    const probed = ffprobeClip(output);
    const measured = probed ? probed.duration * 1000 : (await measureClip(ffmpeg.path, output)).durationMs;
    expect(Math.abs(measured - spanMs)).toBeLessThanOrEqual(frameMs + 1);
    if (probed) expect(probed.frames).toBe(r.frames);
    expect(r.frames).toBeLessThanOrEqual(r.slots);
  });
});

/** Splits a recording right after the syncs nearest 1/3 and 2/3 of its bytes. */
function splitAtSyncs(bytes: Buffer, parts: number): Buffer[] {
  const ends: number[] = [];
  let offset = 0;
  let next = 1;
  for (const i of parseAll(bytes)) {
    offset += i.raw.length;
    if (i.opcode === 'sync' && next < parts && offset >= (bytes.length * next) / parts) {
      ends.push(offset);
      next++;
    }
  }
  ends.push(bytes.length);
  return ends.map((end, k) => bytes.subarray(k === 0 ? 0 : ends[k - 1], end));
}

describe('segments rendered from saved states', () => {
  it('match the whole-file encode (PSNR ≥ 40 dB on sampled frames)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-seg-'));
    const input = join(FIXTURES, 'ssh-terminal.gz');
    const whole = await encodeRecording({ input, output: join(dir, 'whole.mp4'), settings, ffmpeg: system });
    const segments = splitAtSyncs(gunzipSync(readFileSync(input)), 3);
    expect(segments).toHaveLength(3);

    let statePath: string | undefined;
    let checked = 0;
    for (let k = 0; k < 3; k++) {
      const file = join(dir, `00000${k + 1}.guac`);
      writeFileSync(file, segments[k]!);
      const stateOut = join(dir, `00000${k + 1}.state.guac`);
      // The segment's first frame sits on the whole-session grid at the state's closing sync.
      const startSlot = statePath ? stateSyncSlot(statePath, whole.firstSync!, settings.framerate) : 0;
      const r = await encodeRecording({ input: file, output: join(dir, `seg${k + 1}.mp4`), statePath, stateOut, settings, ffmpeg: system });
      expect(r.unsupported).toEqual({});
      const sample = `fps=${settings.framerate},select='not(mod(n\\,10))'`;
      const db = await psnr(
        system.path,
        join(dir, `seg${k + 1}.mp4`),
        join(dir, 'whole.mp4'),
        sample,
        `fps=${settings.framerate},trim=start_frame=${startSlot}:end_frame=${startSlot + r.slots},setpts=PTS-STARTPTS,${sample}`,
      );
      expect(db, `segment ${k + 1} PSNR`).toBeGreaterThanOrEqual(40);
      statePath = stateOut;
      checked++;
    }
    expect(checked).toBe(3);
  });
});

function stateSyncSlot(statePath: string, origin: number, framerate: number): number {
  const last = parseAll(readFileSync(statePath)).at(-1)!;
  expect(last.opcode).toBe('sync');
  return Math.round(((last.intArg(0) - origin) * framerate) / 1000);
}
