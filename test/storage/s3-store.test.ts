import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable as NodeReadable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { classifyFailure } from '../../src/storage/retry-policy.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { TestS3Server } from '../support/s3-server.js';
import { sha256 } from '../support/encoded-segment.js';
import { readAll } from '../support/files.js';

/** Counts requests by command name through an SDK middleware (no mocking: requests still go out). */
function countCommands(store: S3Store): Map<string, number> {
  const counts = new Map<string, number>();
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '?';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'countCommands' },
  );
  return counts;
}

let server: TestS3Server;
let dir: string;

function store(overrides: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store {
  return new S3Store({ ...server.storeOptions(), maxAttempts: 1, ...overrides });
}

beforeAll(async () => {
  server = await TestS3Server.start();
  dir = await mkdtemp(join(tmpdir(), 'recgw-s3store-'));
});
afterAll(async () => {
  await server.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('S3Store against s3rver', () => {
  test('a small clip is stored byte for byte with content type and metadata', async () => {
    const s = store();
    const bytes = randomBytes(300_000);
    const path = join(dir, 'small.mp4');
    await writeFile(path, bytes);
    const counts = countCommands(s);
    const res = await s.put('a/b/small.mp4', { path }, { contentType: 'video/mp4', metadata: { session: 's1', user: 'alice', segment: '1' } });
    expect(res.bytes).toBe(bytes.length);
    expect(counts.get('PutObjectCommand')).toBe(1);
    expect(counts.get('UploadPartCommand')).toBeUndefined();
    expect(sha256(await readAll(await s.get('a/b/small.mp4')))).toBe(sha256(bytes));
    const head = await s.head('a/b/small.mp4');
    expect(head).toEqual({ bytes: bytes.length, contentType: 'video/mp4', metadata: { session: 's1', user: 'alice', segment: '1' } });
    expect(await s.head('a/b/none.mp4')).toBeUndefined();
    expect(await s.list('a/')).toEqual(['a/b/small.mp4']);
    s.close();
  });

  test('a clip over 20 MB goes up in several parts and reads back identical', async () => {
    const s = store({ partSize: 5 * 1024 * 1024, queueSize: 2, multipartThreshold: 16 * 1024 * 1024 });
    const bytes = randomBytes(21 * 1024 * 1024 + 12_345);
    const path = join(dir, 'big.mp4');
    await writeFile(path, bytes);
    const counts = countCommands(s);
    await s.put('big/clip.mp4', { path }, { contentType: 'video/mp4' });
    expect(counts.get('CreateMultipartUploadCommand')).toBe(1);
    expect(counts.get('UploadPartCommand')).toBe(5);
    expect(counts.get('CompleteMultipartUploadCommand')).toBe(1);
    expect(counts.get('PutObjectCommand')).toBeUndefined();
    expect(sha256(await readAll(await s.get('big/clip.mp4')))).toBe(sha256(bytes));
    s.close();
  });

  test('a file up to the multipart threshold goes up as one streamed PutObject, byte for byte', async () => {
    const s = store({ multipartThreshold: 16 * 1024 * 1024 });
    const bytes = randomBytes(16 * 1024 * 1024);
    const path = join(dir, 'mid.mp4');
    await writeFile(path, bytes);
    const counts = countCommands(s);
    await s.put('mid/clip.mp4', { path }, { contentType: 'video/mp4' });
    expect(counts.get('PutObjectCommand')).toBe(1);
    expect(counts.get('CreateMultipartUploadCommand')).toBeUndefined();
    expect(sha256(await readAll(await s.get('mid/clip.mp4')))).toBe(sha256(bytes));
    s.close();
  });

  test('a stream of unknown length (raw gzip) is stored without chunk framing inside', async () => {
    const s = store();
    const bytes = randomBytes(100_000);
    await s.put('raw/x.guac.gz', { stream: NodeReadable.from([bytes.subarray(0, 40_000), bytes.subarray(40_000)]) }, { contentType: 'application/gzip' });
    const back = await readAll(await s.get('raw/x.guac.gz'));
    expect(back.length).toBe(bytes.length);
    expect(sha256(back)).toBe(sha256(bytes));
    s.close();
  });

  test('wrong credentials: InvalidAccessKeyId, classified as needing an admin', async () => {
    const s = store({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } });
    const path = join(dir, 'c.mp4');
    await writeFile(path, randomBytes(1000));
    const err = await s.put('c.mp4', { path }, { contentType: 'video/mp4' }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('InvalidAccessKeyId');
    const cls = classifyFailure(err);
    expect(cls.kind).toBe('permanent');
    expect(cls.reason).toContain('RECORDING_OBJECT_STORAGE_KEY');
    s.close();
  });

  test('missing bucket: NoSuchBucket, classified as needing an admin', async () => {
    const s = store({ bucket: 'no-such-bucket' });
    const path = join(dir, 'd.mp4');
    await writeFile(path, randomBytes(1000));
    const err = await s.put('d.mp4', { path }, { contentType: 'video/mp4' }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('NoSuchBucket');
    expect(classifyFailure(err)).toMatchObject({ kind: 'permanent', code: 'NoSuchBucket' });
    s.close();
  });

  test('probe: ok for the bucket; NoSuchBucket / InvalidAccessKeyId-like codes otherwise', async () => {
    const ok = store();
    await ok.probe();
    ok.close();
    const missing = store({ bucket: 'no-such-bucket' });
    const e1 = await missing.probe().catch((e: unknown) => e);
    expect(classifyFailure(e1)).toMatchObject({ kind: 'permanent', code: 'NoSuchBucket' });
    missing.close();
    const wrong = store({ credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } });
    const e2 = await wrong.probe().catch((e: unknown) => e);
    expect(classifyFailure(e2).kind).toBe('permanent');
    wrong.close();
  });

  test('server gone: a transient error', async () => {
    const s = store({ endpoint: 'http://127.0.0.1:9' });
    const path = join(dir, 'e.mp4');
    await writeFile(path, randomBytes(1000));
    const err = await s.put('e.mp4', { path }, { contentType: 'video/mp4' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(classifyFailure(err).kind).toBe('transient');
    s.close();
  });
});
