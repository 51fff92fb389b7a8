import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { SegmentEncoder } from '../../src/pipeline/contracts.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { Uploader } from '../../src/pipeline/upload-queue.js';
import { JournalStore } from '../../src/recording/journal.js';
import { makeRecorder } from '../recording/helpers.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { UploadLocation } from '../../src/storage/upload-location.js';
import { makeEncodedSession, sha256 } from '../support/encoded-segment.js';
import { captureLogs } from '../support/log-capture.js';
import { TestS3Server } from '../support/s3-server.js';
import { readAll } from '../support/files.js';

/** Segments here are encoded already; an encode request would be a bug. */
const noEncoder: SegmentEncoder = {
  encode: async (ref) => {
    throw new Error(`unexpected encode of ${ref.sessionId}/${ref.segment}`);
  },
  drain: async () => {},
};

let server: TestS3Server;
let spool: string;
beforeEach(async () => {
  server = await TestS3Server.start();
  spool = await mkdtemp(join(tmpdir(), 'recgw-upload-crash-'));
});
afterEach(async () => {
  await server.destroy();
  await rm(spool, { recursive: true, force: true });
});

describe('kill -9 during an upload', () => {
  test('after the spool scan and resume, the clip is stored once, under the key chosen before the crash', async () => {
    const template = `s3://${server.bucket}@${server.endpoint}/crash/{session_id}/{current_epoch}.mp4`;
    const s = await makeEncodedSession({ spoolDir: spool, clipBytes: [30 * 1024 * 1024] });
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/uploader-child.ts', spool, s.sessionId, template], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killed = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('part 2')) child.kill('SIGKILL');
        if (out.includes('done')) reject(new Error('the upload finished before the kill'));
      });
      child.on('exit', () => resolve());
    });
    await killed;
    expect(out, err).toContain('part 2');

    // What the dead process left: journal `uploading` with its key; no object; parts in S3.
    const journals = new JournalStore(spool);
    const before = (await journals.get(s.sessionId)).segment(1)!;
    expect(before.state).toBe('uploading');
    const key = before.upload!.key;
    expect(key).toMatch(new RegExp(`^crash/${s.sessionId}/\\d+\\.mp4$`));
    const store = new S3Store(server.storeOptions());
    expect(await store.head(key)).toBeUndefined();

    // Restart: the recorder's spool scan puts `uploading` back to `encoded`; the pipeline resumes.
    const logs = captureLogs();
    const { recorder } = makeRecorder(spool, { journals, logger: logs.logger });
    const recovery = await recorder.recover();
    expect(recovery.pending).toEqual([{ sessionId: s.sessionId, segment: 1, state: 'encoded' }]);
    await new Promise((r) => setTimeout(r, 5)); // a later clock: {current_epoch} would differ now
    const uploader = new Uploader({ journals, store, location: UploadLocation.parse(template), logger: logs.logger });
    const pipeline = new Pipeline({ journals, encoder: noEncoder, uploader, retentionMs: 3_600_000, logger: logs.logger });
    pipeline.resume(recovery.pending);
    await uploader.drain();
    await pipeline.stop({ waitMs: 5000 });

    const after = (await journals.get(s.sessionId)).segment(1)!;
    expect(after.state).toBe('uploaded');
    expect(after.upload?.key).toBe(key);
    const clips = (await store.list(`crash/${s.sessionId}/`)).filter((k) => k.endsWith('.mp4'));
    expect(clips).toEqual([key]);
    expect(sha256(await readAll(await store.get(key)))).toBe(s.segments[0]!.clipSha256);
    // The dead process's unfinished multipart upload is what real S3 bills until a lifecycle
    // rule (AbortIncompleteMultipartUpload) removes it; s3rver cannot list them, so it is only
    // noted here.
    store.close();
  });
});
