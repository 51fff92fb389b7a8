import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeRecording } from '../../src/encoding/encode-segment.js';
import { measureClip } from '../../src/encoding/ffmpeg-process.js';
import { encodeInstruction as ins, parseAll } from '../../src/protocol/index.js';
import { isRecgwError } from '../../src/errors.js';
import { captureLogs } from '../support/log-capture.js';
import { decodeFrames, ensureBuilt, ffmpegBinaries, ffprobeClip, near, pixel } from './clip-frames.js';

const binaries = await ffmpegBinaries();
const W = 160;
const H = 120;
const settings = { bitrate: 400_000, framerate: 10, width: 0, height: 0, threads: 2 };
const RED: [number, number, number] = [255, 0, 0];
const BLUE: [number, number, number] = [0, 0, 255];
const GREEN: [number, number, number] = [0, 255, 0];
const WHITE: [number, number, number] = [255, 255, 255];
const MAGENTA: [number, number, number] = [255, 0, 255];

function image(mime: 'image/png' | 'image/jpeg', w: number, h: number, colour: string): string {
  const c = createCanvas(w, h);
  const ctx = c.getContext('2d');
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, w, h);
  return (mime === 'image/png' ? c.toBuffer('image/png') : c.toBuffer('image/jpeg', 95)).toString('base64');
}

/**
 * A recording with known pixels at known times (10 fps, origin at sync 1000):
 * slots 0-4 all red; slot 5 (three syncs, the last one wins): a blue square copied from a
 * buffer, a green PNG, a yellow layer moved and half shaded (orange over red), a white JPEG;
 * slot 10: a magenta cursor at the mouse position; nothing changes after until sync 3000.
 */
function syntheticRecording(): string {
  return [
    ins('size', 0, W, H),
    ins('rect', 0, 0, 0, W, H),
    ins('cfill', 14, 0, 255, 0, 0, 255),
    ins('sync', 1000),
    ins('size', -1, 40, 40),
    ins('rect', -1, 0, 0, 40, 40),
    ins('cfill', 14, -1, 0, 0, 255, 255),
    ins('copy', -1, 0, 0, 40, 40, 14, 0, 10, 10),
    ins('img', 1, 14, 0, 'image/png', 100, 10),
    ins('blob', 1, image('image/png', 40, 40, '#00ff00')),
    ins('end', 1),
    ins('sync', 1500),
    ins('size', 1, 40, 40),
    ins('rect', 1, 0, 0, 40, 40),
    ins('cfill', 14, 1, 255, 255, 0, 255),
    ins('move', 1, 0, 60, 70, 0),
    ins('shade', 1, 128),
    ins('sync', 1550),
    ins('img', 2, 14, 0, 'image/jpeg', 10, 80),
    ins('blob', 2, image('image/jpeg', 24, 24, '#ffffff')),
    ins('end', 2),
    ins('sync', 1580),
    ins('size', -2, 8, 8),
    ins('rect', -2, 0, 0, 8, 8),
    ins('cfill', 14, -2, 255, 0, 255, 255),
    ins('cursor', 0, 0, -2, 0, 0, 8, 8),
    ins('mouse', 140, 5, 0, 2000),
    ins('sync', 2000),
    ins('sync', 3000),
  ].join('');
}

beforeAll(() => ensureBuilt());

describe.each(binaries.map((b) => [`${b.source} ffmpeg ${b.version}`, b] as const))('encodeRecording with %s', (_name, ffmpeg) => {
  it('puts known pixels at known times, renders only changes, and lasts the sync span', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'synthetic.guac');
    writeFileSync(input, syntheticRecording());
    const progress: number[] = [];
    const r = await encodeRecording({
      input,
      output: join(dir, 'out.mp4'),
      thumbnail: join(dir, 'out.jpg'),
      stateOut: join(dir, 'out.state.guac'),
      settings,
      ffmpeg,
      onProgress: (p) => progress.push(p.bytesRead),
    });
    expect(r.truncated).toBe(false);
    expect(r.unsupported).toEqual({});
    // sync span 2000 ms at 10 fps: slots 0..20.
    expect(r.slots).toBe(21);
    expect(r.durationMs).toBe(2100);
    // The clip stores frames for slots 0, 5, 10 and the held last one at 20: idle slots cost nothing.
    expect(r.frames).toBe(4);
    expect(r.width).toBe(W);
    expect(r.clipBytes).toBe(statSync(join(dir, 'out.mp4')).size);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(existsSync(join(dir, 'out.mp4.part'))).toBe(false);
    expect(readFileSync(join(dir, 'out.jpg')).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));

    const frames = await decodeFrames(ffmpeg.path, join(dir, 'out.mp4'), W, H);
    expect(frames.length).toBe(21);
    for (const k of [0, 4]) {
      expect(near(pixel(frames[k]!, W, 30, 30), RED), `frame ${k} red`).toBe(true);
      expect(near(pixel(frames[k]!, W, 120, 30), RED)).toBe(true);
    }
    for (const k of [5, 9, 20]) {
      const f = frames[k]!;
      expect(near(pixel(f, W, 30, 30), BLUE), `frame ${k} blue copy`).toBe(true);
      expect(near(pixel(f, W, 120, 30), GREEN), `frame ${k} green png`).toBe(true);
      expect(near(pixel(f, W, 80, 90), [255, 128, 0], 20), `frame ${k} shaded layer`).toBe(true);
      expect(near(pixel(f, W, 22, 92), WHITE), `frame ${k} jpeg`).toBe(true);
      expect(near(pixel(f, W, 150, 110), RED)).toBe(true);
    }
    expect(near(pixel(frames[9]!, W, 144, 9), RED), 'no cursor before the mouse moved').toBe(true);
    expect(near(pixel(frames[10]!, W, 144, 9), MAGENTA), 'cursor at the mouse position').toBe(true);
    expect(near(pixel(frames[20]!, W, 144, 9), MAGENTA)).toBe(true);

    const probed = ffprobeClip(join(dir, 'out.mp4'));
    if (probed) {
      expect(probed.codec).toBe('h264');
      expect(probed.pixFmt).toBe('yuv420p');
      expect(probed.duration).toBeCloseTo(2.1, 2);
      expect(probed.frames).toBe(4);
    }
    const measured = await measureClip(ffmpeg.path, join(dir, 'out.mp4'));
    expect(measured.frames).toBe(4);
    expect(measured.durationMs).toBeCloseTo(2100, -1);

    // The end state replays alone: it ends with a sync on the frame grid (slot 20 = 3000).
    const state = parseAll(readFileSync(join(dir, 'out.state.guac')));
    expect(state.at(-1)?.elements()).toEqual(['sync', '3000']);
  });

  it('scales to a set size keeping the aspect, padding the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'synthetic.guac');
    writeFileSync(input, syntheticRecording());
    await encodeRecording({ input, output: join(dir, 'out.mp4'), settings: { ...settings, width: 320, height: 120 }, ffmpeg });
    const frames = await decodeFrames(ffmpeg.path, join(dir, 'out.mp4'), 320, 120);
    expect(frames.length).toBe(21);
    // 160×120 into 320×120: same height, centred, black bars left and right.
    expect(near(pixel(frames[0]!, 320, 20, 60), [0, 0, 0])).toBe(true);
    expect(near(pixel(frames[0]!, 320, 300, 60), [0, 0, 0])).toBe(true);
    expect(near(pixel(frames[0]!, 320, 160, 60), RED)).toBe(true);
    expect(near(pixel(frames[5]!, 320, 80 + 30, 30), BLUE)).toBe(true);
  });

  it('starts black at the origin when the display gets its size after the first sync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'late-size.guac');
    writeFileSync(
      input,
      [ins('sync', 1000), ins('size', 0, 64, 48), ins('rect', 0, 0, 0, 64, 48), ins('cfill', 14, 0, 255, 0, 0, 255), ins('sync', 1500), ins('sync', 2000)].join(''),
    );
    const r = await encodeRecording({ input, output: join(dir, 'out.mp4'), settings, ffmpeg });
    expect(r.slots).toBe(11);
    expect(r.width).toBe(64);
    const frames = await decodeFrames(ffmpeg.path, join(dir, 'out.mp4'), 64, 48);
    expect(frames.length).toBe(11);
    expect(near(pixel(frames[0]!, 64, 32, 24), [0, 0, 0])).toBe(true);
    expect(near(pixel(frames[5]!, 64, 32, 24), RED)).toBe(true);
  });

  it('encodes a truncated recording up to its last complete instruction and flags it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const full = syntheticRecording();
    // Cut in the middle of the cursor instruction: the last complete sync is 1580 (slot 5).
    const cut = full.indexOf(ins('cursor', 0, 0, -2, 0, 0, 8, 8)) + 5;
    const input = join(dir, 'cut.guac');
    writeFileSync(input, full.slice(0, cut));
    const r = await encodeRecording({ input, output: join(dir, 'out.mp4'), settings, ffmpeg });
    expect(r.truncated).toBe(true);
    expect(r.inputError).toMatch(/truncated|incomplete|end/i);
    expect(r.slots).toBe(6);
    const frames = await decodeFrames(ffmpeg.path, join(dir, 'out.mp4'), W, H);
    expect(frames.length).toBe(6);
    expect(near(pixel(frames[5]!, W, 120, 30), GREEN)).toBe(true);
  });
});

describe('encodeRecording failures', () => {
  it('reports an ffmpeg failure with the tail of its stderr, logged too, and leaves no clip', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'synthetic.guac');
    writeFileSync(input, syntheticRecording());
    const logs = captureLogs();
    // Config and CLI refuse odd sizes; passed here anyway, ffmpeg's filters fail on them.
    const err = await encodeRecording({ input, output: join(dir, 'out.mp4'), settings: { ...settings, width: 101, height: 100 }, logger: logs.logger }).catch(
      (e: unknown) => e,
    );
    expect(isRecgwError(err, 'RECGW_ERR_FFMPEG')).toBe(true);
    // fluent-ffmpeg's own message is one line; ours carries the stderr tail that says why.
    expect((err as Error).message).toMatch(/Padded dimensions cannot be smaller|divisible by 2/);
    const line = logs.lines.find((l) => l.msg === 'ffmpeg failed encoding a clip');
    expect(String(line?.ffmpeg_stderr)).toMatch(/Input #0, matroska/);
    expect(existsSync(join(dir, 'out.mp4'))).toBe(false);
    expect(existsSync(join(dir, 'out.mp4.part'))).toBe(false);
  });

  it('rejects garbage with RECGW_ERR_INPUT and leaves no clip behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'garbage.guac');
    writeFileSync(input, 'this is not a Guacamole recording at all\n'.repeat(100));
    const err = await encodeRecording({ input, output: join(dir, 'out.mp4'), settings }).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_INPUT')).toBe(true);
    expect(existsSync(join(dir, 'out.mp4'))).toBe(false);
    expect(existsSync(join(dir, 'out.mp4.part'))).toBe(false);
  });

  it('rejects a recording without any sync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-enc-'));
    const input = join(dir, 'nosync.guac');
    writeFileSync(input, ins('size', 0, 64, 48) + ins('rect', 0, 0, 0, 8, 8));
    const err = await encodeRecording({ input, output: join(dir, 'out.mp4'), settings }).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_INPUT')).toBe(true);
    expect((err as Error).message).toMatch(/no sync/);
  });

  it('rejects a missing file', async () => {
    const err = await encodeRecording({ input: '/nonexistent/x.guac', output: join(tmpdir(), 'x.mp4'), settings }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/ENOENT|no such file/i);
  });
});
