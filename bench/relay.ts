// Relay throughput: the largest shared recording (vnc-desktop, ~4.9 MB) replayed by the guacd
// stand-in as fast as it can send, looped to ~100 MB in one session, through three relays in one
// run: bare guacamole-lite 1.2.0, recgw with recording off, recgw with recording on (real
// Recorder writing a temp spool). Prints MB/s for each and the ratios.
//
//   npx tsx bench/relay.ts [--loops 20] [--rounds 3]
//
// Everything (stand-in, relay, client) shares this one process, as in the measured guacamole-lite
// figure in GUACAMOLE_FACTS.md; the client only counts bytes, so the relay is what is measured.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config/config.js';
import { Gateway } from '../src/gateway/gateway.js';
import { encryptToken } from '../src/gateway/token.js';
import { createTestLoggers } from '../src/observability/logger.js';
import { JournalStore } from '../src/recording/journal.js';
import { Recorder } from '../src/recording/recorder.js';
import type { SessionRecorder } from '../src/gateway/recording-port.js';
import { FakeGuacd } from '../test/support/fake-guacd.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const LOOPS = opt('loops', 20);
const ROUNDS = opt('rounds', 3);
const KEY = Buffer.from('bench-key-0123456789abcdef012345', 'utf8');
const FIXTURE = join(import.meta.dirname, '../fixtures/recordings/vnc-desktop.gz');

const require = createRequire(import.meta.url);
// guacamole-lite is CommonJS without types; only its server class is used.
const GuacamoleLite = require('guacamole-lite') as new (
  ws: { server: Server },
  guacd: { host: string; port: number },
  client: Record<string, unknown>,
) => { close(): void };

interface Run {
  bytes: number;
  /** First message to last message: the relay's streaming rate, without session set-up. */
  seconds: number;
  /** WebSocket open to first message: admission, recording start, guacd handshake. */
  setupMs: number;
}

/** One session through the relay at `url`. */
function session(url: string, token: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, 'guacamole', { perMessageDeflate: false });
    let bytes = 0;
    let openAt = 0;
    let firstAt = 0;
    let lastAt = 0;
    ws.on('open', () => (openAt = performance.now()));
    ws.on('message', (data: Buffer) => {
      lastAt = performance.now();
      if (firstAt === 0) firstAt = lastAt;
      bytes += data.length;
    });
    ws.on('error', reject);
    ws.on('close', () => resolve({ bytes, seconds: (lastAt - firstAt) / 1000, setupMs: firstAt - openAt }));
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function main(): Promise<void> {
  const guacd = await FakeGuacd.start({ replay: FIXTURE, loops: LOOPS, keepSent: false, chunkSize: 64 * 1024 });
  const tmp = await mkdtemp(join(tmpdir(), 'recgw-bench-'));
  const config = loadConfig({
    TOKEN_KEY: KEY.toString('utf8'),
    GUACD_HOST: guacd.host,
    GUACD_PORT: String(guacd.port),
    RECORDING_SPOOL_DIR: join(tmp, 'spool'),
    RECORDING_MIN_FREE_BYTES: '1',
  });
  const loggers = createTestLoggers(undefined, 'info');
  const recorder = new Recorder({
    spoolDir: config.recording.spoolDir,
    segmentBytes: config.recording.segmentBytes,
    includeKeys: false,
    includeClipboard: false,
    includeAudio: false,
    journals: new JournalStore(config.recording.spoolDir),
    logger: loggers.app,
    onSealed: () => undefined,
  });

  // guacamole-lite console.logs every connection whatever its log level; keep the output readable.
  const consoleLog = console.log;
  console.log = () => undefined;
  const liteServer = createServer();
  const lite = new GuacamoleLite({ server: liteServer }, { host: guacd.host, port: guacd.port }, {
    crypt: { cypher: 'AES-256-CBC', key: KEY },
    log: { level: 0, stdLog: () => undefined, errorLog: () => undefined },
    maxInactivityTime: 0,
  });
  const liteUrl = await listen(liteServer);

  const ourServer = createServer();
  const gateway = new Gateway({ config, recorder: recorder as SessionRecorder, loggers });
  gateway.attach(ourServer);
  const ourUrl = await listen(ourServer);

  const payload = (recording: boolean, n: number) => ({
    connection: { type: 'vnc' as const, settings: { hostname: 'bench' } },
    session: { id: `bench-${recording ? 'rec' : 'norec'}-${n}` },
    recording,
  });
  const ways = {
    'guacamole-lite 1.2.0': (n: number) => session(liteUrl, encryptToken(payload(false, n), KEY)),
    'recgw, recording off': (n: number) => session(ourUrl, encryptToken(payload(false, n), KEY)),
    'recgw, recording on': (n: number) => session(ourUrl, encryptToken(payload(true, n), KEY)),
  };
  const results: Record<string, number[]> = {};
  // CPU seconds per 100 MB (the whole process: stand-in, relay, client, libuv threads): a figure
  // that a busy machine disturbs far less than wall-clock MB/s.
  const cpu: Record<string, number[]> = {};
  // Warm-up, then rounds alternating the three ways so drift hits them alike.
  await ways['recgw, recording off'](0);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, run] of Object.entries(ways)) {
      const cpuBefore = process.cpuUsage();
      const { bytes, seconds, setupMs } = await run(r);
      const used = process.cpuUsage(cpuBefore);
      const cpuPer100MB = ((used.user + used.system) / 1e6) * (100e6 / bytes);
      (results[name] ??= []).push(bytes / 1e6 / seconds);
      (cpu[name] ??= []).push(cpuPer100MB);
      process.stdout.write(
        `round ${r} ${name.padEnd(22)} ${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(bytes / 1e6 / seconds).toFixed(1)} MB/s (set-up ${setupMs.toFixed(0)} ms, CPU ${cpuPer100MB.toFixed(2)} s/100 MB)\n`,
      );
    }
  }

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lit = median(results['guacamole-lite 1.2.0']!);
  const off = median(results['recgw, recording off']!);
  const on = median(results['recgw, recording on']!);
  process.stdout.write(`\nmedian of ${ROUNDS} rounds, ${LOOPS} x vnc-desktop (${((guacd.replayBytes.length * LOOPS) / 1e6).toFixed(0)} MB) per session:\n`);
  const cpuOf = (name: string): string => `${median(cpu[name]!).toFixed(2)} CPU s/100 MB`;
  process.stdout.write(`  guacamole-lite 1.2.0   ${lit.toFixed(1)} MB/s   ${cpuOf('guacamole-lite 1.2.0')}\n`);
  process.stdout.write(`  recgw, recording off   ${off.toFixed(1)} MB/s   ${cpuOf('recgw, recording off')}\n`);
  process.stdout.write(`  recgw, recording on    ${on.toFixed(1)} MB/s   ${cpuOf('recgw, recording on')}\n`);
  process.stdout.write(`  recording on / off     ${(on / off).toFixed(2)}  (target >= 0.90)\n`);
  process.stdout.write(`  recgw off / lite       ${(off / lit).toFixed(2)}  (target >= 1.00)\n`);
  process.stdout.write(`  recgw on / lite        ${(on / lit).toFixed(2)}\n`);

  await gateway.close();
  lite.close();
  console.log = consoleLog;
  await new Promise<void>((resolve) => ourServer.close(() => resolve()));
  await new Promise<void>((resolve) => liteServer.close(() => resolve()));
  await guacd.close();
  await rm(tmp, { recursive: true, force: true });
}

await main();
