import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encryptToken } from '../../src/gateway/token.js';
import { parseAll } from '../../src/protocol/index.js';
import type { SessionJournalData } from '../../src/recording/journal.js';
import { SPOOL_LOCK_FILE } from '../../src/recording/spool-lock.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { TunnelClient } from '../support/gateway-harness.js';
import { ServeProcess } from '../support/serve-process.js';

// `recgw serve` as operators run it: a child process, real sockets, real ffmpeg, the file:// store.

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');
const KEY = 'serve-e2e-key-0123456789abcdef!!';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function setup(replay: string, guacdOpts: Partial<Parameters<typeof FakeGuacd.start>[0]> = {}) {
  const tmp = await mkdtemp(join(tmpdir(), 'recgw-serve-'));
  const guacd = await FakeGuacd.start({ replay: join(FIXTURES, replay), afterReplay: 'hold', ...guacdOpts });
  cleanups.push(async () => {
    await guacd.close();
    await rm(tmp, { recursive: true, force: true });
  });
  const env = {
    TOKEN_KEY: KEY,
    GUACD_HOST: guacd.host,
    GUACD_PORT: String(guacd.port),
    RECORDING_SPOOL_DIR: join(tmp, 'spool'),
    RECORDING_UPLOAD_LOCATION: `file://${join(tmp, 'store')}/{username}/{session_id}.mp4`,
    RECORDING_MIN_FREE_BYTES: '1MiB',
    RECORDING_QUEUE_LENGTH: '1',
  };
  return { tmp, guacd, env };
}

async function startServe(env: Record<string, string>, cwd: string) {
  const { proc, port } = await ServeProcess.start(env, cwd);
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  });
  return { proc, url: `ws://127.0.0.1:${port}/`, port };
}

/** `recgw <args>` as a child process to its end. */
function runCli(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../bin/recgw'), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

function token(sessionId: string, username = 'alice'): string {
  return encryptToken(
    { connection: { type: 'vnc', settings: { hostname: 'desk', password: 'pw-never-logged' } }, session: { id: sessionId, username } },
    Buffer.from(KEY),
  );
}

async function journal(spool: string, sessionId: string): Promise<SessionJournalData> {
  return JSON.parse(await readFile(join(spool, 'sessions', sessionId, 'session.json'), 'utf8')) as SessionJournalData;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('recgw serve (child process)', () => {
  it('relays, records, encodes and stores a session end to end; secrets stay out of the logs', async () => {
    const { tmp, guacd, env } = await setup('ssh-terminal.gz', { speed: 50, afterReplay: 'close' });
    const { proc, url } = await startServe(env, tmp);
    const client = TunnelClient.connect(url, token('e2e-1'));
    await client.closed;
    expect(guacd.connections).toHaveLength(1);
    const sent = guacd.connections[0]!.sentAfterReady();

    const spool = env.RECORDING_SPOOL_DIR;
    const done = await until('segment uploaded', async () => {
      const j = await journal(spool, 'e2e-1').catch(() => undefined);
      return j && j.segments.length > 0 && j.segments.every((s) => s.state === 'uploaded') ? j : undefined;
    });
    const seg = done.segments[0]!;
    expect(seg.bytes).toBe(sent.length);
    expect(seg.upload?.key).toBe('alice/e2e-1-000001.mp4');
    const stored = await readFile(join(tmp, 'store', 'alice', 'e2e-1-000001.mp4'));
    expect(createHash('sha256').update(stored).digest('hex')).toBe(seg.clip?.sha256);
    expect(stored.subarray(4, 8).toString('latin1')).toBe('ftyp');
    // Uploaded: the local clip and raw segment are gone (RECORDING_KEEP_LOCAL is off).
    // (Removed right after the journal says uploaded, so give it a moment.)
    await until('local clip and segment removed', async () => {
      const left = await readdir(join(spool, 'sessions', 'e2e-1'));
      return left.some((f) => f.endsWith('.mp4') || f === '000001.guac') ? undefined : true;
    }, 5000);

    expect(proc.logs.some((l) => l.msg === 'upload location reachable')).toBe(true);
    // Built by npm ci / npm test on Linux (test/recording/page-cache.test.ts), so in use here.
    if (process.platform === 'linux') {
      expect(proc.logs.find((l) => l.msg === 'segments are written behind')).toMatchObject({ level: 'info', page_cache: 'dropped behind writes' });
    }
    const text = proc.logs.map((l) => JSON.stringify(l)).join('\n');
    for (const name of ['provision.create', 'recording.segment.sealed', 'recording.encode.complete', 'recording.upload.complete']) {
      expect(proc.logs.some((l) => l.metric_name === name)).toBe(true);
    }
    // The resource status line, logged once at start (then every minute).
    const status = proc.logs.find((l) => l.metric_name === 'scaling.status.resources');
    expect(status).toMatchObject({ level: 'info', segments_waiting: 0 });
    for (const field of ['sessions_active', 'recordings_active']) expect(status![field]).toBeTypeOf('number');
    expect(status!.spool_free_bytes).toBeGreaterThan(0);
    expect(status!.rss_bytes).toBeGreaterThan(0);
    expect(text).not.toContain('pw-never-logged');
    expect(text).not.toContain(KEY);

    // The events reached the Prometheus counters, and the backlog shows the uploaded segment.
    const port = new URL(url).port;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/recgw_events_total\{metric_name="recording.upload.complete"\} 1/);
    const backlog = (await (await fetch(`http://127.0.0.1:${port}/api/backlog`)).json()) as { segments_by_state: Record<string, number> };
    expect(backlog.segments_by_state.uploaded).toBe(1);
  });

  it('after kill -9 mid-session, the next start seals every open segment and loses no byte that reached the disk', async () => {
    const { tmp, guacd, env } = await setup('vnc-desktop.gz', { speed: 4 });
    // Keep local files after upload, so every raw segment can be compared with what guacd sent.
    const crashEnv = { ...env, RECORDING_SEGMENT_BYTES: '512KiB', RECORDING_KEEP_LOCAL: 'true', RECORDING_UPLOAD_LOCATION: 'file://./store/{session_id}' };
    const first = await startServe(crashEnv, tmp);
    const client = TunnelClient.connect(first.url, token('crash-1'));
    await client.opened;
    // Let a few segments roll over, then crash while one is open.
    const spool = env.RECORDING_SPOOL_DIR;
    await until('two segments', async () => ((await journal(spool, 'crash-1').catch(() => undefined))?.segments.length ?? 0) >= 2 || undefined);
    await new Promise((r) => setTimeout(r, 300));
    const receivedBeforeKill = client.received().length;
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    // The killed gateway's spool lock is still there: the restart below must take it over.
    expect(existsSync(join(spool, SPOOL_LOCK_FILE))).toBe(true);

    const before = await journal(spool, 'crash-1');
    expect(before.segments.some((s) => s.state === 'recording')).toBe(true);

    const second = await startServe(crashEnv, tmp);
    await second.proc.waitFor((r) => r.msg === 'spool scanned; resuming unfinished segments');
    const after = await journal(spool, 'crash-1');
    expect(after.segments.every((s) => s.state !== 'recording')).toBe(true);

    // The segments, in order, are exactly a prefix of what guacd sent, cut at an instruction end.
    const sent = guacd.connections[0]!.sentAfterReady();
    const dir = join(spool, 'sessions', 'crash-1');
    const parts: Buffer[] = [];
    for (const s of after.segments) parts.push(await readFile(join(dir, s.file)));
    const recorded = Buffer.concat(parts);
    expect(after.segments.length).toBeGreaterThanOrEqual(2);
    expect(sent.subarray(0, recorded.length).equals(recorded)).toBe(true);
    expect(() => parseAll(recorded)).not.toThrow();
    // The recorder keeps up with the relay: what the client had received by the kill is on disk,
    // less what was still in the last moments' write queue.
    const idLine = `0.,${guacd.connections[0]!.id.length}.${guacd.connections[0]!.id};`.length;
    expect(recorded.length).toBeGreaterThanOrEqual(Math.min(receivedBeforeKill - idLine, sent.length) * 0.9);
    expect(second.proc.logs.some((l) => l.metric_name === 'recording.segment.sealed' && l.level === 'warn')).toBe(true);
  });

  it('SIGTERM ends sessions with an error instruction, seals their segments and exits 0', async () => {
    const { tmp, env } = await setup('rdp-desktop.gz', { speed: 2 });
    const { proc, url } = await startServe(env, tmp);
    const client = TunnelClient.connect(url, token('term-1'));
    await client.opened;
    await until('some syncs', () => (client.syncsSeen >= 3 ? true : undefined));
    // One gateway per spool: recover and a second serve are refused while this one runs.
    const recover = await runCli(['recover'], env, tmp);
    expect(recover.code).toBe(1);
    expect(recover.stderr).toMatch(new RegExp(`in use by recgw serve \\(pid ${proc.child.pid} `));
    const second = await runCli(['serve'], { ...env, GATEWAY_PORT: '0' }, tmp);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('in use by recgw serve');
    proc.kill('SIGTERM');
    const exit = await proc.exited;
    expect(exit.code).toBe(0);
    expect(existsSync(join(env.RECORDING_SPOOL_DIR, SPOOL_LOCK_FILE))).toBe(false);
    await client.closed;
    expect(client.errors().length).toBe(1);
    const j = await journal(env.RECORDING_SPOOL_DIR, 'term-1');
    expect(j.segments.length).toBeGreaterThan(0);
    expect(j.segments.every((s) => s.state !== 'recording')).toBe(true);
    expect(proc.logs.some((l) => l.msg === 'shutdown complete')).toBe(true);
  });

  it('starts with unreachable storage, says so at error level, and keeps serving', async () => {
    const { tmp, env } = await setup('ssh-terminal.gz');
    const { proc, port } = await startServe({ ...env, RECORDING_UPLOAD_LOCATION: 's3://clips@http://127.0.0.1:1/{session_id}' }, tmp);
    const line = await proc.waitFor((r) => r.msg === 'upload location not reachable now: clips stay in the spool and uploads are retried');
    expect(line.level).toBe('error');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it('refuses to start with a clear message naming each bad variable', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'recgw-serve-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const start = ServeProcess.start({ RECORDING_FRAMERATE: 'fast', RECORDING_UPLOAD_LOCATION: 's3://Bad_Bucket/x' }, tmp);
    await expect(start).rejects.toThrow(/RECORDING_FRAMERATE must be a whole number/);
  });
});
