import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { Uploader } from '../../src/pipeline/upload-queue.js';
import type { SessionJournalData } from '../../src/recording/journal.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { RetryPolicy } from '../../src/storage/retry-policy.js';
import { S3Store, type S3StoreOptions } from '../../src/storage/s3-store.js';
import { UploadLocation } from '../../src/storage/upload-location.js';
import { makeEncodedSession, sha256 } from '../support/encoded-segment.js';
import { captureLogs } from '../support/log-capture.js';
import { TestS3Server } from '../support/s3-server.js';
import { readAll, exists } from '../support/files.js';

let server: TestS3Server;
let spool: string;

beforeAll(async () => {
  server = await TestS3Server.start();
});
afterAll(async () => {
  await server.destroy();
});
beforeEach(async () => {
  spool = await mkdtemp(join(tmpdir(), 'recgw-upload-'));
});
afterEach(async () => {
  await rm(spool, { recursive: true, force: true });
});

function s3(overrides: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({ ...server.storeOptions(), maxAttempts: 1, ...overrides });
}

function setup(options: { template?: string; store?: S3Store; keepLocal?: boolean; uploadRaw?: boolean; now?: () => Date } = {}) {
  const logs = captureLogs();
  const store = options.store ?? s3();
  const location = UploadLocation.parse(options.template ?? `s3://${server.bucket}@${server.endpoint}/rec/{username}/{session_id}.mp4`);
  return {
    logs,
    store,
    location,
    make: (journals: Parameters<typeof makeEncodedSession>[0]['journals']) =>
      new Uploader({
        journals: journals!,
        store,
        location,
        logger: logs.logger,
        keepLocal: options.keepLocal ?? false,
        uploadRaw: options.uploadRaw ?? false,
        retry: new RetryPolicy({ baseMs: 200, permanentMinMs: 400, random: () => 0.5 }),
        ...(options.now ? { now: options.now } : {}),
      }),
  };
}

describe('Uploader', () => {
  test('stores clip, thumbnail and journal at the templated keys, then removes the local files', async () => {
    const session = await makeEncodedSession({ spoolDir: spool, clipBytes: [200_000, 150_000] });
    const { logs, store, make } = setup();
    const uploader = make(session.journals);
    await uploader.upload({ sessionId: session.sessionId, segment: 1 });
    await uploader.upload({ sessionId: session.sessionId, segment: 2 });

    const data = session.journal.data;
    for (const m of session.segments) {
      const key = `rec/alice/${session.sessionId}-00000${m.number}.mp4`;
      const seg = data.segments[m.number - 1]!;
      expect(seg.state).toBe('uploaded');
      expect(seg.upload).toMatchObject({ key, location: `s3://${server.bucket}@${server.endpoint}` });
      expect(seg.upload?.extra_keys).toEqual([`rec/alice/${session.sessionId}-00000${m.number}.jpg`]);
      expect(Date.parse(seg.upload!.uploaded_at!)).toBeGreaterThan(0);
      expect(sha256(await readAll(await store.get(key)))).toBe(m.clipSha256);
      const head = await store.head(key);
      expect(head).toMatchObject({ bytes: m.clipBytes, contentType: 'video/mp4' });
      expect(head?.metadata).toMatchObject({ session: session.sessionId, user: 'alice', 'user-id': 'u-1', segment: String(m.number), sha256: m.clipSha256 });
      expect((await store.head(`rec/alice/${session.sessionId}-00000${m.number}.jpg`))?.contentType).toBe('image/jpeg');
      // clip, thumbnail, raw segment and (session over, all stored) the state file are gone
      for (const p of [m.clipPath, m.thumbPath, m.rawPath, m.statePath]) expect(await exists(p), p).toBe(false);
    }
    const journalObject = JSON.parse((await readAll(await store.get(`rec/alice/${session.sessionId}.session.json`))).toString()) as SessionJournalData;
    expect(journalObject.segments.map((s) => s.state)).toEqual(['uploaded', 'uploaded']);
    expect((await store.head(`rec/alice/${session.sessionId}.session.json`))?.contentType).toBe('application/json');
    const complete = logs.withMetric('recording.upload.complete');
    expect(complete).toHaveLength(2);
    expect(complete[0]).toMatchObject({ level: 'info', session_id: session.sessionId, segment: 1, key: `rec/alice/${session.sessionId}-000001.mp4`, bytes: 200_000 });
    store.close();
  });

  test('file:// location: the same layout on disk as in S3', async () => {
    const session = await makeEncodedSession({ spoolDir: spool, clipBytes: [40_000], username: '../../etc' });
    const logs = captureLogs();
    const location = UploadLocation.parse(`file://${spool}/store/rec/{username}/{session_id}.mp4`);
    const store = openObjectStore(location, { s3: { region: 'us-east-1', forcePathStyle: false }, recording: { objectStorageKey: undefined, objectStorageSecret: undefined } });
    const uploader = new Uploader({ journals: session.journals, store, location, logger: logs.logger, uploadRaw: true });
    await uploader.upload({ sessionId: session.sessionId, segment: 1 });
    const seg = session.journal.segment(1)!;
    expect(seg).toMatchObject({ state: 'uploaded', upload: { key: `______etc/${session.sessionId}-000001.mp4`, location: `file://${spool}/store/rec` } });
    const base = join(spool, 'store/rec/______etc');
    expect((await readdir(base)).sort()).toEqual(
      [`${session.sessionId}-000001.mp4`, `${session.sessionId}-000001.jpg`, `${session.sessionId}-000001.guac.gz`, `${session.sessionId}.session.json`].sort(),
    );
    expect(sha256(await readFile(join(base, `${session.sessionId}-000001.mp4`)))).toBe(session.segments[0]!.clipSha256);
    expect(sha256(gunzipSync(await readFile(join(base, `${session.sessionId}-000001.guac.gz`))))).toBe(sha256(session.segments[0]!.raw));
    expect(await exists(session.segments[0]!.clipPath)).toBe(false);
  });

  test('state file of segment N stays until segment N+1 is encoded (live session)', async () => {
    const session = await makeEncodedSession({ spoolDir: spool, clipBytes: [1000, 1000], ended: false });
    await session.journal.updateSegment(2, (s) => {
      s.state = 'sealed';
    });
    const { store, make } = setup();
    const uploader = make(session.journals);
    await uploader.upload({ sessionId: session.sessionId, segment: 1 });
    expect(session.journal.segment(1)?.state).toBe('uploaded');
    expect(await exists(session.segments[0]!.clipPath)).toBe(false);
    expect(await exists(session.segments[0]!.statePath)).toBe(true); // needed to encode segment 2
    await session.journal.updateSegment(2, (s) => {
      s.state = 'encoded';
    });
    await uploader.upload({ sessionId: session.sessionId, segment: 2 });
    expect(await exists(session.segments[0]!.statePath)).toBe(false);
    expect(await exists(session.segments[1]!.statePath)).toBe(true); // session still live: segment 3 may come
    store.close();
  });

  test('RECORDING_KEEP_LOCAL keeps every local file; RECORDING_UPLOAD_RAW stores the raw segment gzip-compressed', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    const { store, make } = setup({ keepLocal: true, uploadRaw: true });
    await make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    const m = session.segments[0]!;
    for (const p of [m.clipPath, m.thumbPath, m.rawPath, m.statePath]) expect(await exists(p), p).toBe(true);
    const rawKey = `rec/alice/${session.sessionId}-000001.guac.gz`;
    expect(session.journal.segment(1)?.upload?.extra_keys).toContain(rawKey);
    const gz = await readAll(await store.get(rawKey));
    expect(gz.length).toBeLessThan(m.raw.length);
    expect(sha256(gunzipSync(gz))).toBe(sha256(m.raw));
    expect((await store.head(rawKey))?.contentType).toBe('application/gzip');
    store.close();
  });

  test('wrong credentials: failed, error-level reason in the log, every file kept', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    const { logs, store, make } = setup({ store: s3({ credentials: { accessKeyId: 'NOPE', secretAccessKey: 'NOPE' } }) });
    const before = Date.now();
    await make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    const seg = session.journal.segment(1)!;
    expect(seg).toMatchObject({ state: 'failed', failed_stage: 'upload', attempts: 1 });
    expect(seg.last_error).toMatch(/^InvalidAccessKeyId: /);
    expect(Date.parse(seg.next_attempt_at!)).toBeGreaterThanOrEqual(before + 300);
    const [line] = logs.withMetric('recording.upload.failed');
    expect(line).toMatchObject({ level: 'error', error_code: 'InvalidAccessKeyId', error_kind: 'permanent', session_id: session.sessionId, segment: 1 });
    expect(line!.msg).toContain('RECORDING_OBJECT_STORAGE_KEY');
    expect(JSON.stringify(logs.lines)).not.toContain('NOPE');
    const m = session.segments[0]!;
    for (const p of [m.clipPath, m.thumbPath, m.rawPath, m.statePath]) expect(await exists(p), p).toBe(true);
    store.close();
  });

  test('missing bucket: failed, error-level reason in the log, every file kept', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    const { logs, store, make } = setup({ store: s3({ bucket: 'gone-bucket' }), template: `s3://gone-bucket@${server.endpoint}/{session_id}.mp4` });
    await make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    expect(session.journal.segment(1)).toMatchObject({ state: 'failed', failed_stage: 'upload' });
    const [line] = logs.withMetric('recording.upload.failed');
    expect(line).toMatchObject({ level: 'error', error_code: 'NoSuchBucket' });
    expect(line!.msg).toContain('the bucket does not exist');
    expect(await exists(session.segments[0]!.clipPath)).toBe(true);
    store.close();
  });

  test('a clip missing from the spool sends the segment back to be encoded (raw segment kept)', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    await rm(session.segments[0]!.clipPath);
    const { logs, store, make } = setup();
    await make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    const seg = session.journal.segment(1)!;
    expect(seg.state).toBe('sealed');
    expect(seg.clip).toBeUndefined();
    expect(await exists(session.segments[0]!.rawPath)).toBe(true);
    expect(logs.lines.some((l) => l.level === 'warn' && l.msg.includes('000001.mp4 is missing'))).toBe(true);
    expect(await store.list(`rec/alice/${session.sessionId}`)).toEqual([]);
    store.close();
  });

  test('clip and raw segment both gone: failed with an error-level reason, nothing stored', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    await rm(session.segments[0]!.clipPath);
    await rm(session.segments[0]!.rawPath);
    const { logs, store, make } = setup();
    await make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    expect(session.journal.segment(1)).toMatchObject({ state: 'failed', failed_stage: 'upload' });
    expect(session.journal.segment(1)?.last_error).toMatch(/^SpoolFilesMissing: /);
    expect(logs.withMetric('recording.upload.failed')[0]).toMatchObject({ level: 'error', error_code: 'SpoolFilesMissing' });
    store.close();
  });

  test('two requests for one segment make one upload', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    const { store, make } = setup();
    let puts = 0;
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { Key?: string };
        if (context.commandName === 'PutObjectCommand' && input.Key?.endsWith('.mp4')) puts++;
        return next(args);
      },
      { step: 'initialize' },
    );
    const uploader = make(session.journals);
    const ref = { sessionId: session.sessionId, segment: 1 };
    await Promise.all([uploader.upload(ref), uploader.upload(ref), uploader.upload({ ...ref })]);
    await uploader.upload(ref); // already uploaded: nothing to do
    expect(puts).toBe(1);
    expect(session.journal.segment(1)?.state).toBe('uploaded');
    store.close();
  });

  test('segments finishing together: the stored journal is the newest one', async () => {
    const session = await makeEncodedSession({ spoolDir: spool, clipBytes: [50_000, 60_000, 70_000, 80_000] });
    const { store, logs, location } = setup();
    const uploader = new Uploader({ journals: session.journals, store, location, logger: logs.logger, concurrency: 4 });
    await Promise.all([1, 2, 3, 4].map((segment) => uploader.upload({ sessionId: session.sessionId, segment })));
    const stored = JSON.parse((await readAll(await store.get(`rec/alice/${session.sessionId}.session.json`))).toString()) as SessionJournalData;
    expect(stored.segments.map((s) => s.state)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded']);
    store.close();
  });

  test('{current_epoch}: a retry uses the key computed before the first attempt', async () => {
    const session = await makeEncodedSession({ spoolDir: spool });
    let clock = new Date('2026-11-23T12:00:00.000Z');
    const template = `s3://${server.bucket}@${server.endpoint}/epoch/{session_id}/{current_epoch}.mp4`;
    const down = setup({ template, store: s3({ endpoint: 'http://127.0.0.1:9' }), now: () => clock });
    await down.make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    expect(session.journal.segment(1)?.state).toBe('failed');
    const key = session.journal.segment(1)?.upload?.key ?? '(none)';
    expect(key).toBe(`epoch/${session.sessionId}/${clock.getTime()}.mp4`);
    clock = new Date('2026-11-23T13:00:00.000Z');
    const up = setup({ template, now: () => clock });
    await up.make(session.journals).upload({ sessionId: session.sessionId, segment: 1 });
    expect(session.journal.segment(1)).toMatchObject({ state: 'uploaded', upload: { key } });
    expect(await up.store.list(`epoch/${session.sessionId}/`)).toEqual(
      [key, key.replace(/\.mp4$/, '.jpg'), `epoch/${session.sessionId}/${session.sessionId}.session.json`].sort(),
    );
    down.store.close();
    up.store.close();
  });
});
