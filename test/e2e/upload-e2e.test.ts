import { execFileSync, execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/cli/serve.js';
import { loadConfig } from '../../src/config/config.js';
import { encryptToken } from '../../src/gateway/token.js';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import { PACKAGE_ROOT } from '../../src/runtime-paths.js';
import type { SessionJournalData } from '../../src/recording/journal.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { sha256 } from '../support/encoded-segment.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { LogCapture, TEST_TOKEN_KEY, TunnelClient } from '../support/gateway-harness.js';
import { S3RVER_CREDENTIALS, TestS3Server } from '../support/s3-server.js';
import { readAll, exists } from '../support/files.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
let s3: TestS3Server;
let tmp: string;
beforeAll(async () => {
  // Encoding runs in a worker thread / child process: it needs the compiled JavaScript.
  if (!existsSync(join(PACKAGE_ROOT, 'dist/cli/serve.js'))) execSync('npm run build', { cwd: PACKAGE_ROOT, stdio: 'ignore' });
  s3 = await TestS3Server.start();
  tmp = await mkdtemp(join(tmpdir(), 'recgw-upload-e2e-'));
});
afterAll(async () => {
  await s3?.destroy();
  await rm(tmp, { recursive: true, force: true });
});

describe('a recorded session reaches S3', () => {
  it('SSH session through the gateway → segment → MP4 → s3rver at the templated key; local files gone', async () => {
    const guacd = await FakeGuacd.start({ replay: join(FIXTURES, 'ssh-terminal.gz'), chunkSize: 16 * 1024, afterReplay: 'hold' });
    const spool = join(tmp, 'spool');
    const env: NodeJS.ProcessEnv = {
      TOKEN_KEY: TEST_TOKEN_KEY.toString('utf8'),
      GATEWAY_PORT: '0',
      GUACD_HOST: guacd.host,
      GUACD_PORT: String(guacd.port),
      RECORDING_SPOOL_DIR: spool,
      RECORDING_MIN_FREE_BYTES: '1',
      RECORDING_QUEUE_LENGTH: '1',
      RECORDING_UPLOAD_LOCATION: `s3://${s3.bucket}@${s3.endpoint}/rec/{protocol}/{username}/{session_id}.mp4`,
      RECORDING_OBJECT_STORAGE_KEY: S3RVER_CREDENTIALS.accessKeyId,
      RECORDING_OBJECT_STORAGE_SECRET: S3RVER_CREDENTIALS.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
    };
    const config = loadConfig(env);
    const logs = new LogCapture();
    const loggers = createTestLoggers(logs, 'debug');
    let running: RunningGateway | undefined;
    const store = new S3Store(s3.storeOptions());
    try {
      running = await startGateway(config, loggers, new GatewayMetrics(), env);
      const sessionId = 'e2e-upload-ssh';
      const token = encryptToken(
        { connection: { type: 'ssh', settings: { hostname: 'box', password: 'pw' } }, session: { id: sessionId, username: 'alice' } },
        TEST_TOKEN_KEY,
      );
      const client = TunnelClient.connect(`ws://127.0.0.1:${running.port}/`, token);
      await client.opened;
      await until(() => guacd.connections.length === 1, 10_000, 'guacd connection');
      await guacd.connections[0]!.replayed;
      const sent = guacd.connections[0]!.sentAfterReady();
      await until(() => client.received().length >= sent.length, 20_000, 'relay of the whole recording');
      client.ws.close();
      await client.closed;
      await until(() => running!.gateway.sessionCount === 0, 10_000, 'session end');

      const dir = join(spool, 'sessions', sessionId);
      const journal = async () => JSON.parse(await readFile(join(dir, 'session.json'), 'utf8')) as SessionJournalData;
      await until(async () => (await journal()).segments.every((s) => s.state === 'uploaded' || s.state === 'failed'), 90_000, 'encode and upload');
      // cleanup runs right after the journal says uploaded
      await until(async () => !(await exists(join(dir, '000001.mp4'))), 5_000, 'local clip removal');

      const data = await journal();
      expect(data.segments.map((s) => [s.state, s.last_error])).toEqual(data.segments.map(() => ['uploaded', undefined]));
      const seg = data.segments[0]!;
      const key = `rec/ssh/alice/${sessionId}-000001.mp4`;
      expect(seg.upload?.key).toBe(key);
      const clip = await readAll(await store.get(key));
      expect(clip.length).toBe(seg.clip!.bytes);
      expect(sha256(clip)).toBe(seg.clip!.sha256);
      const head = await store.head(key);
      expect(head?.contentType).toBe('video/mp4');
      expect(head?.metadata).toMatchObject({ session: sessionId, user: 'alice', segment: '1', protocol: 'ssh', sha256: seg.clip!.sha256 });
      // a real MP4 with video in it
      const clipPath = join(tmp, 'downloaded.mp4');
      await writeFile(clipPath, clip);
      const probe = JSON.parse(
        execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,width,height:format=duration', '-of', 'json', clipPath]).toString(),
      ) as { streams: Array<{ codec_type: string }>; format: { duration: string } };
      expect(probe.streams.some((s) => s.codec_type === 'video')).toBe(true);
      expect(Number(probe.format.duration)).toBeGreaterThan(1);
      // the journal is stored beside the clip and tells the whole session
      const stored = JSON.parse((await readAll(await store.get(`rec/ssh/alice/${sessionId}.session.json`))).toString()) as SessionJournalData;
      expect(stored.session_id).toBe(sessionId);
      expect(stored.segments.every((s) => s.state === 'uploaded')).toBe(true);
      // local media and state files are gone; the journal stays
      for (const s of data.segments) {
        for (const f of [s.file, s.clip?.file, s.clip?.thumbnail, s.state_file]) if (f) expect(await exists(join(dir, f)), f).toBe(false);
      }
      expect(await exists(join(dir, 'session.json'))).toBe(true);
      const complete = logs.records().filter((r) => r.metric_name === 'recording.upload.complete');
      expect(complete.length).toBe(data.segments.length);
      expect(logs.text).not.toContain(S3RVER_CREDENTIALS.secretAccessKey + '"');
    } finally {
      store.close();
      await running?.shutdown('test over');
      await guacd.close();
    }
  });
});
