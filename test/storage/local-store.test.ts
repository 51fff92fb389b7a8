import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { isRecgwError } from '../../src/errors.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { UploadLocation } from '../../src/storage/upload-location.js';
import { sha256 } from '../support/encoded-segment.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'recgw-local-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('LocalStore', () => {
  test('writes files at their keys under the root, whole, with no temporary files left', async () => {
    const store = new LocalStore(join(dir, 'out'));
    const clip = randomBytes(2 * 1024 * 1024);
    const src = join(dir, 'clip.mp4');
    await writeFile(src, clip);
    const res = await store.put('alice/s1-000001.mp4', { path: src }, { contentType: 'video/mp4' });
    expect(res.bytes).toBe(clip.length);
    expect(sha256(await readFile(join(dir, 'out/alice/s1-000001.mp4')))).toBe(sha256(clip));
    expect(await readdir(join(dir, 'out/alice'))).toEqual(['s1-000001.mp4']);
    // overwrite (a retry after a crash) replaces the file whole
    const clip2 = randomBytes(1000);
    await writeFile(src, clip2);
    await store.put('alice/s1-000001.mp4', { path: src }, { contentType: 'video/mp4' });
    expect(sha256(await readFile(join(dir, 'out/alice/s1-000001.mp4')))).toBe(sha256(clip2));
    expect(await store.head('alice/s1-000001.mp4')).toMatchObject({ bytes: 1000 });
    expect(await store.head('alice/none.mp4')).toBeUndefined();
  });

  test('streams of unknown length are stored too', async () => {
    const store = new LocalStore(dir);
    const body = randomBytes(50_000);
    await store.put('x/raw.guac.gz', { stream: Readable.from([body.subarray(0, 10), body.subarray(10)]) }, { contentType: 'application/gzip' });
    expect(sha256(await readFile(join(dir, 'x/raw.guac.gz')))).toBe(sha256(body));
    expect(await store.list('x/')).toEqual(['x/raw.guac.gz']);
  });

  test('a failing stream leaves nothing under the final name', async () => {
    const store = new LocalStore(dir);
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(store.put('y/raw.guac.gz', { stream: failing }, { contentType: 'application/gzip' })).rejects.toThrow('disk on fire');
    expect(await readdir(join(dir, 'y'))).toEqual([]);
  });

  test('probe creates the folder; fails where no folder can be', async () => {
    await new LocalStore(join(dir, 'new/deep')).probe();
    expect(await readdir(join(dir, 'new'))).toEqual(['deep']);
    await writeFile(join(dir, 'a-file'), 'x');
    const err = await new LocalStore(join(dir, 'a-file/sub')).probe().catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOTDIR');
  });

  test('refuses keys that would leave the root', async () => {
    const store = new LocalStore(join(dir, 'root'));
    for (const key of ['../escape.mp4', 'a/../../escape.mp4', '/etc/passwd', 'a//b']) {
      let err: unknown;
      try {
        store.pathOf(key);
      } catch (e) {
        err = e;
      }
      expect(isRecgwError(err, 'RECGW_ERR_UPLOAD_LOCATION'), key).toBe(true);
    }
  });

  test('file:// location → same keys as S3 under the root folder', async () => {
    const loc = UploadLocation.parse(`file://${dir}/recordings/{username}/{session_id}.mp4`);
    const store = openObjectStore(loc, { s3: { region: 'us-east-1', forcePathStyle: false }, recording: { objectStorageKey: undefined, objectStorageSecret: undefined } });
    expect(store).toBeInstanceOf(LocalStore);
    expect(store.location).toBe(`file://${dir}/recordings`);
    const key = loc.clipKey({
      sessionId: 's1',
      username: '../../etc',
      createdAt: '2026-11-23T10:00:00Z',
      segment: 2,
      segmentStartedAt: '2026-11-23T10:00:00Z',
      now: new Date(),
    });
    const src = join(dir, 'c.mp4');
    await writeFile(src, 'clip');
    await store.put(key, { path: src }, { contentType: 'video/mp4' });
    expect(await readFile(join(dir, 'recordings/______etc/s1-000002.mp4'), 'utf8')).toBe('clip');
  });
});
