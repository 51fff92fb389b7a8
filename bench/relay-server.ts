// One relay under test for bench/relay.ts: bare guacamole-lite 1.2.0 or recgw's Gateway (with a
// real Recorder writing a temp spool). bench/relay.ts forks this file once per relay
// (`node --import tsx bench/relay-server.ts`) so each relay has a process of its own, as in
// production where guacd and the browser are on other machines; it also imports startRelay()
// for its --in-process mode.
//
// IPC (child mode): the child sends { type: 'ready', url } once listening; on { type: 'cpu' } it
// waits until no recording is open (so sealing — fsync, the segment's sha256 — is counted) and
// answers { type: 'cpu', user, system, mainThread } (process.cpuUsage(), microseconds, all
// threads: libuv's file writes and the hash worker included; mainThread: the event loop's alone); on { type: 'stop' } it closes everything and exits.
import fs, { openSync, readFileSync, statfsSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { Gateway } from '../src/gateway/gateway.js';
import type { SessionRecorder } from '../src/gateway/recording-port.js';
import { createTestLoggers } from '../src/observability/logger.js';
import { JournalStore } from '../src/recording/journal.js';
import { Recorder } from '../src/recording/recorder.js';
import { startGuacamoleLite } from '../test/support/guacamole-lite.js';

/** The token key every relay benchmark uses (32 bytes, as TOKEN_KEY wants). */
export const BENCH_KEY = Buffer.from('bench-key-0123456789abcdef012345', 'utf8');

/**
 * recgw-buffered: recgw with RECORDING_DIRECT_WRITES=false (every byte through the page cache);
 * recgw-nodisk: recgw whose segment writes go to /dev/null; recgw-copyonly: into the same few MiB
 * of memory over and over (see redirectSegmentWrites).
 */
export type RelayKind = 'lite' | 'recgw' | 'recgw-buffered' | 'recgw-nodisk' | 'recgw-copyonly';
const RELAY_KINDS: readonly string[] = ['lite', 'recgw', 'recgw-buffered', 'recgw-nodisk', 'recgw-copyonly'];

export interface RunningRelay {
  /** ws:// URL the client connects to (token goes in ?token=). */
  url: string;
  /** Resolves once no recording is open (the last one sealed: flushed, fsynced, hashed). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Starts one relay in this process, talking to the guacd stand-in at host:port. */
export async function startRelay(kind: RelayKind, guacd: { host: string; port: number }, key: Buffer): Promise<RunningRelay> {
  if (kind === 'lite') {
    const lite = await startGuacamoleLite(guacd, key, { maxInactivityTime: 0 });
    return { url: lite.url, idle: () => Promise.resolve(), close: () => lite.close() };
  }
  const server = createServer();
  const tmp = await mkdtemp(join(tmpdir(), 'recgw-bench-'));
  const config = loadConfig({
    TOKEN_KEY: key.toString('utf8'),
    GUACD_HOST: guacd.host,
    GUACD_PORT: String(guacd.port),
    RECORDING_SPOOL_DIR: join(tmp, 'spool'),
    RECORDING_MIN_FREE_BYTES: '1',
    ...(kind === 'recgw-buffered' ? { RECORDING_DIRECT_WRITES: 'false' } : {}),
  });
  // Warnings and errors (a recording that failed, a session cut short) go to stderr, which the
  // bench shows; the per-session info lines would only add noise.
  // Without the disk, every seal fails its read-back check: say nothing of it.
  const redirected = kind === 'recgw-nodisk' || kind === 'recgw-copyonly';
  const loggers = createTestLoggers(pino.destination({ dest: 2, sync: true }), redirected ? 'fatal' : 'warn');
  const recorder = new Recorder({
    spoolDir: config.recording.spoolDir,
    segmentBytes: config.recording.segmentBytes,
    includeKeys: false,
    includeClipboard: false,
    includeAudio: false,
    directWrites: config.recording.directWrites,
    journals: new JournalStore(config.recording.spoolDir),
    logger: loggers.app,
    onSealed: () => undefined,
  });
  const gateway = new Gateway({ config, recorder: recorder as SessionRecorder, loggers });
  gateway.attach(server);
  const url = await listen(server);
  return {
    url,
    idle: async () => {
      while (recorder.active.size > 0) await new Promise((done) => setTimeout(done, 5));
    },
    close: async () => {
      await gateway.close();
      await new Promise<void>((done) => server.close(() => done()));
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * CPU time of this process's main thread alone (the event loop: what limits a relay's
 * throughput), from /proc; microseconds at the kernel's 10 ms tick resolution. -1 off Linux.
 */
export function mainThreadCpuMicros(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the ')' that ends the thread's name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return -1;
  }
}

/** Where redirectSegmentWrites sends the copy-only relay's writes: memory (tmpfs), wrapped. */
const COPY_ONLY_DIR = '/dev/shm';
const COPY_ONLY_WRAP = 16 * 1024 * 1024;

/**
 * For the bench's comparison relays only (each in its own process): fs.writev, which only the
 * segment writer uses, goes elsewhere. Everything else recording does stays (the tap, arenas
 * held until "written", the libuv round trip, the write system call itself); their segments stay
 * empty and are never sealed.
 * - recgw-nodisk: to /dev/null, which takes the bytes without looking at them: all of recording
 *   but the kernel's work on the bytes.
 * - recgw-copyonly: into one tmpfs file at position modulo 16 MiB, so the kernel copies each
 *   byte into the same few MiB of memory that stay in place: recording's one copy of each byte,
 *   without the file system's bookkeeping, the disk or new pages.
 */
function redirectSegmentWrites(kind: 'recgw-nodisk' | 'recgw-copyonly'): void {
  const realWritev = fs.writev;
  let redirect: (position: number | null) => { fd: number; position: number | null };
  if (kind === 'recgw-nodisk') {
    const devNull = openSync('/dev/null', 'w');
    redirect = (position) => ({ fd: devNull, position });
  } else {
    const path = join(COPY_ONLY_DIR, `recgw-bench-copyonly-${process.pid}`);
    const memory = openSync(path, 'w');
    unlinkSync(path); // the open descriptor keeps it; nothing is left behind
    redirect = (position) => ({ fd: memory, position: (position ?? 0) % COPY_ONLY_WRAP });
  }
  // One overload is enough: the segment writer always passes a position and a callback.
  const redirected = (_fd: number, buffers: NodeJS.ArrayBufferView[], position: number | null, cb: (err: NodeJS.ErrnoException | null, bytesWritten: number, buffers: NodeJS.ArrayBufferView[]) => void): void => {
    const to = redirect(position);
    realWritev(to.fd, buffers, to.position, cb);
  };
  (fs as { writev: unknown }).writev = redirected;
  syncBuiltinESMExports();
}

/** False where there is no tmpfs at COPY_ONLY_DIR (the copy-only relay is then left out). */
export function copyOnlyAvailable(): boolean {
  try {
    return statfsSync(COPY_ONLY_DIR).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}
const TMPFS_MAGIC = 0x01021994;

type ParentMessage = { type: 'cpu' } | { type: 'stop' };

async function childMain(): Promise<void> {
  const [kind, host, port, keyHex] = process.argv.slice(2);
  if (kind === undefined || !RELAY_KINDS.includes(kind) || !host || !port || !keyHex) {
    throw new Error(`usage: relay-server.ts ${RELAY_KINDS.join('|')} <guacd host> <guacd port> <key hex>`);
  }
  const relayKind = kind as RelayKind;
  if (relayKind === 'recgw-nodisk' || relayKind === 'recgw-copyonly') redirectSegmentWrites(relayKind);
  const relay = await startRelay(relayKind, { host, port: Number(port) }, Buffer.from(keyHex, 'hex'));
  process.on('message', (msg: ParentMessage) => {
    if (msg.type === 'cpu') {
      void relay.idle().then(() => {
        const { user, system } = process.cpuUsage();
        process.send!({ type: 'cpu', user, system, mainThread: mainThreadCpuMicros() });
      });
    } else if (msg.type === 'stop') {
      void relay.close().finally(() => process.exit(0));
    }
  });
  // The bench died (an error, a timeout): do not linger as an orphan holding ports and spools.
  process.on('disconnect', () => void relay.close().finally(() => process.exit(1)));
  process.send!({ type: 'ready', url: relay.url });
}

if (process.send && process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await childMain();
}
