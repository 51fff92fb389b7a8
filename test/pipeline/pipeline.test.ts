import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { computeBacklog } from '../../src/pipeline/backlog.js';
import type { SegmentEncoder, SegmentRef } from '../../src/pipeline/contracts.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { Uploader } from '../../src/pipeline/upload-queue.js';
import { JournalStore } from '../../src/recording/journal.js';
import { RetryPolicy } from '../../src/storage/retry-policy.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { UploadLocation } from '../../src/storage/upload-location.js';
import { makeEncodedSession, sha256 } from '../support/encoded-segment.js';
import { captureLogs } from '../support/log-capture.js';
import { TestS3Server } from '../support/s3-server.js';
import { readAll, exists } from '../support/files.js';
import { parseAll } from '../../src/protocol/index.js';
import { makeRecorder, startInfo } from '../recording/helpers.js';

/**
 * Stands in for the encode queue (another stage, with its own tests): the spool already holds
 * the clip, so "encoding" only moves the journal, as the SegmentEncoder contract says.
 */
class JournalOnlyEncoder implements SegmentEncoder {
  calls: SegmentRef[] = [];
  failNext = false;
  constructor(private readonly journals: JournalStore) {}
  async encode(ref: SegmentRef): Promise<void> {
    this.calls.push(ref);
    const j = await this.journals.get(ref.sessionId);
    await j.updateSegment(ref.segment, (s) => {
      s.state = 'encoding';
    });
    const fail = this.failNext;
    this.failNext = false;
    await j.updateSegment(ref.segment, (s) => {
      if (fail) {
        s.state = 'failed';
        s.failed_stage = 'encode';
        s.attempts += 1;
        s.next_attempt_at = new Date(Date.now() + 100).toISOString();
        s.last_error = 'ffmpeg fell over';
      } else {
        s.state = 'encoded';
        delete s.failed_stage;
      }
    });
  }
  async drain(): Promise<void> {}
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

let server: TestS3Server;
let spool: string;
let journals: JournalStore;
const stores: S3Store[] = [];
const pipelines: Pipeline[] = [];

beforeEach(async () => {
  server = await TestS3Server.start();
  spool = await mkdtemp(join(tmpdir(), 'recgw-pipeline-'));
  journals = new JournalStore(spool);
});
afterEach(async () => {
  for (const p of pipelines.splice(0)) await p.stop({ waitMs: 5000 });
  for (const s of stores.splice(0)) s.close();
  await server.destroy();
  await rm(spool, { recursive: true, force: true });
});

function build(options: { retentionMs?: number; template?: string; js?: JournalStore; finishedAfterMs?: number; now?: () => Date } = {}) {
  const logs = captureLogs();
  const js = options.js ?? journals;
  const store = new S3Store({ ...server.storeOptions(), maxAttempts: 1, partSize: 5 * 1024 * 1024 });
  stores.push(store);
  const location = UploadLocation.parse(options.template ?? `s3://${server.bucket}@${server.endpoint}/rec/{username}/{session_id}.mp4`);
  const uploader = new Uploader({
    journals: js,
    store,
    location,
    logger: logs.logger,
    retry: new RetryPolicy({ baseMs: 300, permanentMinMs: 300, random: () => 0.5 }),
  });
  const encoder = new JournalOnlyEncoder(js);
  // The sessions made here ended at a fixed time: moving them to finished/ only when a test asks.
  const pipeline = new Pipeline({
    journals: js,
    encoder,
    uploader,
    retentionMs: options.retentionMs ?? 3_600_000,
    finishedAfterMs: options.finishedAfterMs ?? Number.POSITIVE_INFINITY,
    logger: logs.logger,
    ...(options.now ? { now: options.now } : {}),
  });
  pipelines.push(pipeline);
  return { logs, store, uploader, encoder, pipeline, location };
}

describe('Pipeline', () => {
  test('the sweep settles sessions with nothing left to do, and reads them no more', async () => {
    const done = await makeEncodedSession({ spoolDir: spool, journals, state: 'uploaded' });
    const waiting = await makeEncodedSession({ spoolDir: spool, journals, state: 'sealed' });
    const { pipeline, logs } = build();
    const first = await pipeline.sweep();
    expect(first).toMatchObject({ started: 1, settled: 1 });
    await until(() => waiting.journal.segment(1)?.state === 'uploaded' && !pipeline.isBusy({ sessionId: waiting.sessionId, segment: 1 }));
    // Were a settled session read again, this would be an unreadable journal.
    await writeFile(join(spool, 'sessions', done.sessionId, 'session.json'), '{ broken');
    expect(await pipeline.sweep()).toMatchObject({ started: 0, retried: 0, settled: 1 });
    expect(await pipeline.sweep()).toMatchObject({ settled: 0 });
    const backlog = await computeBacklog(journals, new Date());
    expect(backlog.unreadable_sessions).toEqual([]);
    expect(backlog).toMatchObject({ sessions: 2, sessions_waiting: 0 });
    expect(backlog.segments_by_state.uploaded).toBe(2);
    expect(journals.heldCount).toBe(0);
    expect(logs.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  test('a session over for long enough moves to finished/; reconnecting brings it back, numbering going on', async () => {
    const done = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100, 200], state: 'uploaded' });
    const id = done.sessionId;
    const endedAt = Date.parse('2026-11-23T10:05:00.000Z'); // makeEncodedSession's
    let clock = endedAt + 30 * 60_000;
    const { pipeline, logs } = build({ finishedAfterMs: 3_600_000, now: () => new Date(clock) });
    expect(await pipeline.sweep()).toMatchObject({ settled: 1, finished: 0 });
    expect(await pipeline.sweep()).toMatchObject({ settled: 0, finished: 0 }); // over for 30 min only
    clock = endedAt + 3_600_000;
    expect(await pipeline.sweep()).toMatchObject({ finished: 1 });
    expect(await exists(join(spool, 'finished', id, 'session.json'))).toBe(true);
    expect(await exists(join(spool, 'sessions', id))).toBe(false);
    expect(await pipeline.sweep()).toMatchObject({ settled: 0, finished: 0 }); // nothing left to look at
    const backlog = await computeBacklog(journals, new Date(clock));
    expect(backlog).toMatchObject({ sessions: 0, sessions_waiting: 0 });

    // The same session id connects again: its folder comes back and segments go on from 3.
    const t = makeRecorder(spool, { journals });
    const rec = await t.recorder.start(startInfo(id));
    expect(rec.segment).toBe(3);
    for (const ins of parseAll(Buffer.from('4.size,1.0,2.64,2.64;4.sync,4.1000;'))) rec.serverInstruction(ins);
    await rec.close('done');
    const j = await journals.get(id);
    expect(j.data.segments.map((x) => [x.number, x.state])).toEqual([
      [1, 'uploaded'],
      [2, 'uploaded'],
      [3, 'sealed'],
    ]);
    expect(await exists(join(spool, 'finished', id))).toBe(false);
    expect(logs.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  test('a sealed segment is encoded, then uploaded', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'sealed' });
    const { pipeline, encoder, store } = build();
    pipeline.onSealed({ sessionId: s.sessionId, segment: 1 });
    pipeline.onSealed({ sessionId: s.sessionId, segment: 1 }); // same segment twice: one chain
    await until(() => s.journal.segment(1)?.state === 'uploaded' && !pipeline.isBusy({ sessionId: s.sessionId, segment: 1 }));
    expect(encoder.calls).toHaveLength(1);
    expect(sha256(await readAll(await store.get(`rec/alice/${s.sessionId}-000001.mp4`)))).toBe(s.segments[0]!.clipSha256);
    expect(await exists(s.segments[0]!.clipPath)).toBe(false);
  });

  test('a failed encode is retried at its next_attempt_at, then uploaded', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'sealed' });
    const { pipeline, encoder } = build();
    encoder.failNext = true;
    pipeline.onSealed({ sessionId: s.sessionId, segment: 1 });
    await until(() => s.journal.segment(1)?.state === 'uploaded');
    expect(encoder.calls).toHaveLength(2);
  });

  test('S3 down: failed, files kept, retry scheduled; S3 back: the sweep stores it under the same key', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'encoded', clipBytes: [300_000] });
    const { pipeline, logs, store, location } = build();
    await server.stop();
    const t0 = Date.now();
    pipeline.resume([{ sessionId: s.sessionId, segment: 1, state: 'encoded' }]);
    await until(() => s.journal.segment(1)?.state === 'failed' && logs.withMetric('recording.upload.failed').length > 0);
    const failed = s.journal.segment(1)!;
    expect(failed).toMatchObject({ failed_stage: 'upload', attempts: 1 });
    const expectedKey = location.clipKey({
      sessionId: s.sessionId,
      username: 'alice',
      createdAt: '2026-11-23T10:00:00.000Z',
      segment: 1,
      segmentStartedAt: failed.started_at,
      now: new Date(),
    });
    expect(failed.upload?.key).toBe(expectedKey);
    const next = Date.parse(failed.next_attempt_at!);
    expect(next).toBeGreaterThan(t0);
    expect(next).toBeLessThan(Date.now() + 60_000);
    const m = s.segments[0]!;
    for (const p of [m.clipPath, m.thumbPath, m.rawPath, m.statePath]) expect(await exists(p), p).toBe(true);
    expect(logs.withMetric('recording.upload.failed')[0]).toMatchObject({ level: 'warn', error_kind: 'transient' });

    // Still down at the retry: attempts grow, files still kept.
    await until(() => (s.journal.segment(1)?.attempts ?? 0) >= 2);
    await until(() => s.journal.segment(1)?.state === 'failed');
    expect(await exists(m.clipPath)).toBe(true);

    // Drop this pipeline's own retry timer (and let a running attempt end) while S3 is still
    // down: the sweep of a fresh pipeline, as after a restart, must do the upload.
    await pipeline.stop({ waitMs: 5000 });
    await server.start();
    const again = build();
    await until(async () => {
      const seg = s.journal.segment(1)!;
      return seg.state === 'failed' && Date.parse(seg.next_attempt_at!) <= Date.now();
    });
    const report = await again.pipeline.sweep();
    expect(report.retried).toBe(1);
    await until(() => s.journal.segment(1)?.state === 'uploaded' && !again.pipeline.isBusy({ sessionId: s.sessionId, segment: 1 }));
    expect(s.journal.segment(1)?.upload?.key).toBe(expectedKey);
    expect(sha256(await readAll(await store.get(expectedKey)))).toBe(m.clipSha256);
    expect(await exists(m.clipPath)).toBe(false);
  });

  test('retention: 2 s with S3 down → files deleted, state expired, error line saying what was lost', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'encoded', clipBytes: [10_000, 20_000] });
    await server.stop();
    const { pipeline, logs } = build({ retentionMs: 2000 });
    pipeline.resume([
      { sessionId: s.sessionId, segment: 1, state: 'encoded' },
      { sessionId: s.sessionId, segment: 2, state: 'encoded' },
    ]);
    await until(() => s.journal.data.segments.every((x) => x.state === 'failed'));
    for (const m of s.segments) expect(await exists(m.clipPath)).toBe(true);
    pipeline.startSweep(100);
    await until(() => logs.withMetric('recording.retention.expired').length === 2, 8000);
    expect(s.journal.data.segments.map((x) => x.state)).toEqual(['expired', 'expired']);
    for (const m of s.segments) for (const p of [m.clipPath, m.thumbPath, m.rawPath, m.statePath]) expect(await exists(p), p).toBe(false);
    expect(Date.parse(s.journal.segment(1)!.expired_at!)).toBeGreaterThan(0);
    const lines = logs.withMetric('recording.retention.expired');
    expect(lines).toHaveLength(2);
    const first = lines.find((l) => l.segment === 1)!;
    expect(first).toMatchObject({ level: 'error', session_id: s.sessionId, state_before: 'failed', retention_ms: 2000, clip_bytes: 10_000 });
    expect(first.files).toEqual(expect.arrayContaining(['000001.mp4', '000001.jpg', '000001.guac']));
    expect(first.bytes).toBeGreaterThanOrEqual(10_000 + 2048 + s.segments[0]!.raw.length);
    expect(first.msg).toContain(`segment 1 of session ${s.sessionId}`);
    expect(first.msg).toContain('000001.mp4 (10000 bytes)');
    expect(first.msg).toContain('is lost');
  });

  test('an expiry reaches the stored journal, once S3 is back', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'encoded', clipBytes: [5000, 6000] });
    const { pipeline, store } = build({ retentionMs: 2000 });
    pipeline.resume([{ sessionId: s.sessionId, segment: 1, state: 'encoded' }]);
    await until(() => s.journal.segment(1)?.state === 'uploaded' && !pipeline.isBusy({ sessionId: s.sessionId, segment: 1 }));
    const journalKey = `rec/alice/${s.sessionId}.session.json`;
    const storedStates = async () =>
      ((JSON.parse((await readAll(await store.get(journalKey))).toString()) as { segments: Array<{ state: string }> }).segments).map((x) => x.state);
    expect(await storedStates()).toEqual(['uploaded', 'encoded']);

    await server.stop();
    pipeline.resume([{ sessionId: s.sessionId, segment: 2, state: 'encoded' }]);
    pipeline.startSweep(100);
    await until(() => s.journal.segment(2)?.state === 'expired', 8000);
    await server.start();
    await until(async () => (await storedStates().catch(() => [])).join() === 'uploaded,expired', 8000);
  });

  test('crash between encode and upload: after restart the clip is stored once', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'encoded' });
    // A new process: fresh journal store reading the spool.
    const js = new JournalStore(spool);
    const { pipeline, store } = build({ js });
    pipeline.resume([{ sessionId: s.sessionId, segment: 1, state: 'encoded' }]);
    await until(async () => (await js.get(s.sessionId)).segment(1)?.state === 'uploaded');
    const keys = await store.list(`rec/alice/${s.sessionId}`);
    expect(keys.filter((k) => k.endsWith('.mp4'))).toEqual([`rec/alice/${s.sessionId}-000001.mp4`]);
  });

  test('crash during an upload ({current_epoch} key, half a multipart upload left): restart stores one object under the journal key', async () => {
    const template = `s3://${server.bucket}@${server.endpoint}/epoch/{session_id}/{current_epoch}.mp4`;
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'encoded', clipBytes: [12 * 1024 * 1024] });
    const key = `epoch/${s.sessionId}/1700000000000.mp4`;
    // What the dead process left: the journal says uploading with its key; S3 holds an
    // unfinished multipart upload with one part.
    await s.journal.updateSegment(1, (seg) => {
      seg.state = 'uploading';
      seg.upload = { key, location: `s3://${server.bucket}@${server.endpoint}` };
    });
    const { store } = build({ template });
    const mpu = await store.client.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: key }));
    await store.client.send(
      new UploadPartCommand({ Bucket: server.bucket, Key: key, UploadId: mpu.UploadId, PartNumber: 1, Body: Buffer.alloc(5 * 1024 * 1024, 1) }),
    );
    // Restart: the spool scan turns uploading back into encoded (done here by hand, as recover() does).
    const js = new JournalStore(spool);
    const j = await js.get(s.sessionId);
    await j.updateSegment(1, (seg) => {
      if (seg.state === 'uploading') seg.state = 'encoded';
    });
    const { pipeline } = build({ template, js });
    pipeline.resume([{ sessionId: s.sessionId, segment: 1, state: 'encoded' }]);
    await until(() => j.segment(1)?.state === 'uploaded');
    expect(j.segment(1)?.upload?.key).toBe(key);
    const clips = (await store.list(`epoch/${s.sessionId}/`)).filter((k) => k.endsWith('.mp4'));
    expect(clips).toEqual([key]);
    expect(sha256(await readAll(await store.get(key)))).toBe(s.segments[0]!.clipSha256);
  });

  test('stop({ waitMs }) waits for running chains, and stop refuses new work', async () => {
    const s = await makeEncodedSession({ spoolDir: spool, journals, state: 'sealed', clipBytes: [1000, 1000] });
    const { pipeline, encoder } = build();
    pipeline.onSealed({ sessionId: s.sessionId, segment: 1 });
    await pipeline.stop({ waitMs: 10_000 });
    expect(s.journal.segment(1)?.state).toBe('uploaded');
    pipeline.onSealed({ sessionId: s.sessionId, segment: 2 });
    await new Promise((r) => setTimeout(r, 100));
    expect(encoder.calls).toHaveLength(1);
    expect(s.journal.segment(2)?.state).toBe('sealed');
  });
});
