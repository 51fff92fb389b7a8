import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EncodeQueue } from '../../src/pipeline/encode-queue.js';
import { encodeInstruction as ins } from '../../src/protocol/index.js';
import { JournalStore, segmentBaseName, type SessionJournalData } from '../../src/recording/journal.js';
import { MetricName } from '../../src/observability/logger.js';
import { captureLogs } from '../support/log-capture.js';
import { ensureBuilt, ffmpegBinaries } from '../encoding/clip-frames.js';

const settings = { bitrate: 300_000, framerate: 10, width: 0, height: 0, threads: 1 };
const ffmpeg = (await ffmpegBinaries())[0]!;

beforeAll(() => ensureBuilt());

/** `seconds` of a 320×240 display changing colour every 100 ms; `withSize` false for a later segment. */
function recording(startMs: number, seconds: number, withSize: boolean): string {
  const out: string[] = withSize ? [ins('size', 0, 320, 240)] : [];
  for (let t = 0; t <= seconds * 1000; t += 100) {
    const v = (t / 100) % 256;
    out.push(ins('rect', 0, (t / 10) % 280, 0, 40, 240), ins('cfill', 14, 0, v, 255 - v, 128, 255), ins('sync', startMs + t));
  }
  return out.join('');
}

async function makeSession(journals: JournalStore, sessionId: string, segments: string[]): Promise<void> {
  const dir = journals.dirOf(sessionId);
  await mkdir(dir, { recursive: true });
  const now = new Date().toISOString();
  const data: SessionJournalData = {
    version: 1,
    session_id: sessionId,
    protocol: 'vnc',
    created_at: now,
    started_at: now,
    connections: [],
    segments: segments.map((_, k) => ({
      number: k + 1,
      file: `${segmentBaseName(k + 1)}.guac`,
      state: 'sealed',
      bytes: Buffer.byteLength(segments[k]!),
      started_at: now,
      sealed_at: now,
      attempts: 0,
    })),
  };
  for (let k = 0; k < segments.length; k++) await writeFile(join(dir, `${segmentBaseName(k + 1)}.guac`), segments[k]!);
  await journals.getOrCreate(sessionId, () => data);
}

/** Children of this process named ffmpeg, read from /proc: what really runs, not our counters. */
function ffmpegChildren(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
      if (m && m[1] === 'ffmpeg' && Number(m[2]) === process.pid) pids.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

describe('EncodeQueue', () => {
  it('with queue length 1 runs one ffmpeg at a time and keeps each session in order', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'recgw-queue-'));
    const journals = new JournalStore(spool);
    await makeSession(journals, 'sess-a', [recording(10_000, 6, true), recording(16_100, 6, false)]);
    await makeSession(journals, 'sess-b', [recording(50_000, 6, true)]);
    const logs = captureLogs();
    const started: number[] = [];
    const queue = new EncodeQueue({ concurrency: 1, journals, settings, logger: logs.logger, ffmpeg, onFfmpegStart: (pid) => started.push(pid) });

    let maxSeen = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      maxSeen = Math.max(maxSeen, ffmpegChildren().length);
      samples++;
    }, 5);
    const finished: string[] = [];
    const track = (s: string, n: number): Promise<void> => queue.encode({ sessionId: s, segment: n }).then(() => void finished.push(`${s}/${n}`));
    // Session A's segments are asked for first, then B's: A/2 must still wait for A/1.
    const all = Promise.all([track('sess-a', 1), track('sess-a', 2), track('sess-b', 1)]);
    await new Promise((r) => setTimeout(r, 50));
    expect(queue.running).toBe(1);
    await all;
    await queue.drain();
    clearInterval(sampler);

    expect(samples).toBeGreaterThan(20);
    expect(maxSeen).toBe(1);
    // Each segment's encode started its own ffmpeg for the clip (thumbnails run after it).
    expect(started.length).toBe(3);
    expect(finished.indexOf('sess-a/1')).toBeLessThan(finished.indexOf('sess-a/2'));

    const a = (await journals.get('sess-a')).data;
    const b = (await journals.get('sess-b')).data;
    for (const seg of [...a.segments, ...b.segments]) {
      expect(seg.state).toBe('encoded');
      expect(seg.clip?.file).toBe(`${segmentBaseName(seg.number)}.mp4`);
      expect(seg.clip?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(seg.state_file).toBe(`${segmentBaseName(seg.number)}.state.guac`);
      expect(seg.clip?.thumbnail).toBe(`${segmentBaseName(seg.number)}.jpg`);
    }
    // Segment 2 has no size of its own: its 320×240 picture came from segment 1's state.
    expect(a.segments[1]!.clip?.width).toBe(320);
    expect(a.segments[1]!.clip?.duration_ms).toBeGreaterThanOrEqual(6000);
    const done = logs.withMetric(MetricName.encodeComplete);
    expect(done).toHaveLength(3);
    expect(done[0]).toMatchObject({ session_id: expect.any(String), segment: expect.any(Number), duration_ms: expect.any(Number), wall_ms: expect.any(Number) });
  });

  it('marks a segment that cannot be encoded failed, with attempts, next attempt and error', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'recgw-queue-'));
    const journals = new JournalStore(spool);
    await makeSession(journals, 'sess-bad', ['garbage that is not Guacamole protocol']);
    const logs = captureLogs();
    const now = new Date('2026-11-23T12:00:00Z');
    const queue = new EncodeQueue({ concurrency: 2, journals, settings, logger: logs.logger, ffmpeg, now: () => now });
    await queue.encode({ sessionId: 'sess-bad', segment: 1 });
    const seg = (await journals.get('sess-bad')).segment(1)!;
    expect(seg.state).toBe('failed');
    expect(seg.failed_stage).toBe('encode');
    expect(seg.attempts).toBe(1);
    expect(Date.parse(seg.next_attempt_at!)).toBeGreaterThan(now.getTime());
    expect(seg.last_error).toMatch(/nothing to encode/);
    const failed = logs.withMetric(MetricName.encodeFailed);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ session_id: 'sess-bad', segment: 1, attempts: 1 });

    // A retry counts up.
    await queue.encode({ sessionId: 'sess-bad', segment: 1 });
    expect((await journals.get('sess-bad')).segment(1)!.attempts).toBe(2);
  });
});
