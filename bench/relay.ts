// Relay throughput: the largest shared recording (vnc-desktop, ~4.9 MB) replayed by the guacd
// stand-in as fast as it can send, looped to ~100 MB in one session, through three relays:
// bare guacamole-lite 1.2.0, recgw with recording off, recgw with recording on (real Recorder
// writing a temp spool). Prints, per relay, MB/s and the relay process's CPU seconds per 100 MB,
// medians over the rounds, and the ratios; then what writing a session's worth of bytes costs on
// this machine: plain files into fresh and into reused pages, and segments written by the
// SegmentWriter with their pages kept in the cache, written behind (page-cache.ts) and written
// directly from memory on the 4096 grid (direct-write.ts), as the relay's arenas are.
//
// --breakdown adds three relays that record: one writing every byte through the page cache as
// before direct writes (RECORDING_DIRECT_WRITES=false), and two with their segment writes sent
// elsewhere: /dev/null (everything recording does but the kernel's work on the bytes) and the
// same 16 MiB of memory over and over (plus one copy of each byte: the least a buffered
// recording can do, here where the stand-in and the client share the relay's cores). Against
// them the real relay shows what direct writes changed and what the disk still costs.
//
// Why not a relay with RECORDING_DROP_PAGE_CACHE=false beside the others: relays that share a
// machine share its free pages, and one that keeps its pages then writes into the pages the
// other has just dropped, which are the cheap ones; measured so, the two look alike.
//
//   npx tsx bench/relay.ts [--loops 20] [--rounds 5] [--in-process] [--breakdown]
//   BENCH_RELAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npx tsx bench/relay.ts  (profile the relays)
//
// Each relay runs in a child process of its own (bench/relay-server.ts), as in production where
// guacd and the browser are on other machines; the stand-in and the client (which only counts
// bytes) stay in this process, so the relay's CPU figure is its own. --in-process runs the
// relays in this process instead (the old mode; CPU then covers stand-in and client too).
// Rounds interleave the relays (A B C A B C ...) so load on the machine hits all of them alike.
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { encryptToken } from '../src/gateway/token.js';
import { allocateBounce } from '../src/recording/direct-write.js';
import { directWrites, pageCache, pageCacheStatus } from '../src/recording/page-cache.js';
import type { SegmentWriterOptions } from '../src/recording/segment-writer.js';
import { SegmentWriter } from '../src/recording/segment-writer.js';
import { FakeGuacd } from '../test/support/fake-guacd.js';
import { startChildRelay, type Relay } from './relay-child.js';
import { BENCH_KEY as KEY, copyOnlyAvailable, mainThreadCpuMicros, startRelay, type RelayKind, type RunningRelay } from './relay-server.js';

const args = process.argv.slice(2);
const USAGE = 'usage: bench/relay.ts [--loops N] [--rounds N] [--in-process] [--breakdown]';
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--loops' || a === '--rounds') {
    const n = Number(args[++i]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${a} wants a whole number >= 1; ${USAGE}`);
  } else if (a !== '--in-process' && a !== '--breakdown') {
    throw new Error(`unknown argument ${a}; ${USAGE}`);
  }
}
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const LOOPS = opt('loops', 20);
const ROUNDS = opt('rounds', 5);
const IN_PROCESS = args.includes('--in-process');
/**
 * Adds a relay recording through the page cache only (RECORDING_DIRECT_WRITES=false) and two
 * with recording on whose segment writes go elsewhere (relay-server.ts): to /dev/null (no copy
 * of the bytes at all), and into the same 16 MiB of memory over and over (the one copy of each
 * byte a buffered recording makes, without file system or disk).
 */
const BREAKDOWN = args.includes('--breakdown');
if (BREAKDOWN && IN_PROCESS) throw new Error('--breakdown needs the relays in processes of their own (it patches fs.writev)');
const FIXTURE = join(import.meta.dirname, '../fixtures/recordings/vnc-desktop.gz');
/** After a session, before reading the relay's CPU (which also waits for the recording's seal). */
const SETTLE_MS = 50;

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

async function inProcessRelay(kind: RelayKind, guacd: FakeGuacd): Promise<Relay> {
  // A plain object: guacamole-lite copies own properties, and FakeGuacd's host and port are getters.
  const relay: RunningRelay = await startRelay(kind, { host: guacd.host, port: guacd.port }, KEY);
  return {
    url: relay.url,
    cpuSeconds: async () => {
      await relay.idle();
      const { user, system } = process.cpuUsage();
      return { all: (user + system) / 1e6, main: mainThreadCpuMicros() / 1e6 };
    },
    close: () => relay.close(),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const guacd = await FakeGuacd.start({ replay: FIXTURE, loops: LOOPS, keepSent: false, chunkSize: 64 * 1024 });
  const start = IN_PROCESS ? inProcessRelay : (kind: RelayKind, g: FakeGuacd) => startChildRelay(kind, g, KEY);
  const payload = (recording: boolean, n: number) => ({
    connection: { type: 'vnc' as const, settings: { hostname: 'bench' } },
    session: { id: `bench-${recording ? 'rec' : 'norec'}-${n}` },
    recording,
  });
  // One relay (and so one process) per way: recording off gets a process that never recorded.
  const ways: Array<{ name: string; relay: Relay; token: (n: number) => string }> = [
    { name: 'guacamole-lite 1.2.0', relay: await start('lite', guacd), token: (n) => encryptToken(payload(false, n), KEY) },
    { name: 'recgw, recording off', relay: await start('recgw', guacd), token: (n) => encryptToken(payload(false, n), KEY) },
    { name: 'recgw, recording on', relay: await start('recgw', guacd), token: (n) => encryptToken(payload(true, n), KEY) },
  ];
  const buffered = 'recgw, on, buffered';
  const noDisk = 'recgw, on, /dev/null';
  const copyOnly = 'recgw, on, copy only';
  if (BREAKDOWN) {
    ways.push({ name: buffered, relay: await start('recgw-buffered', guacd), token: (n) => encryptToken(payload(true, n), KEY) });
    ways.push({ name: noDisk, relay: await start('recgw-nodisk', guacd), token: (n) => encryptToken(payload(true, n), KEY) });
    if (copyOnlyAvailable()) ways.push({ name: copyOnly, relay: await start('recgw-copyonly', guacd), token: (n) => encryptToken(payload(true, n), KEY) });
    else process.stdout.write('(no tmpfs at /dev/shm: the copy-only relay is left out)\n');
  }
  const rate: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const mainCpu: Record<string, number[]> = {};
  const where = IN_PROCESS ? 'whole bench process' : 'relay process';
  process.stdout.write(`${LOOPS} x vnc-desktop per session, ${ROUNDS} rounds, relays ${IN_PROCESS ? 'in this process' : 'in child processes'}\n`);
  // Warm-up (JIT, first-connection costs) for every relay, then the measured rounds.
  for (const w of ways) await session(w.relay.url, w.token(0));
  // What every session should deliver: the replay, plus what the relays add (the tunnel id).
  const expectedBytes = guacd.replayBytes.length * LOOPS;
  for (let r = 1; r <= ROUNDS; r++) {
    for (const w of ways) {
      const before = await w.relay.cpuSeconds();
      const { bytes, seconds, setupMs } = await session(w.relay.url, w.token(r));
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const after = await w.relay.cpuSeconds();
      const used = after.all - before.all;
      const mb = bytes / 1e6;
      // A session that delivered less than the replay ended early (a recording that failed ends
      // its session): its rate is not comparable, say so.
      const short = bytes < expectedBytes ? `  SHORT by ${((expectedBytes - bytes) / 1e6).toFixed(1)} MB: session ended early` : '';
      const cpuPer100MB = used * (100 / mb);
      const mainPer100MB = (after.main - before.main) * (100 / mb);
      (rate[w.name] ??= []).push(mb / seconds);
      (cpu[w.name] ??= []).push(cpuPer100MB);
      (mainCpu[w.name] ??= []).push(mainPer100MB);
      process.stdout.write(
        `round ${r} ${w.name.padEnd(22)} ${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(mb / seconds).toFixed(1).padStart(6)} MB/s  ` +
          `CPU ${cpuPer100MB.toFixed(2)} s/100 MB (${where}; main thread ${mainPer100MB.toFixed(2)})  set-up ${setupMs.toFixed(0)} ms${short}\n`,
      );
    }
  }

  const lite = 'guacamole-lite 1.2.0';
  const off = 'recgw, recording off';
  const on = 'recgw, recording on';
  const r = (name: string): number => median(rate[name]!);
  const c = (name: string): number => median(cpu[name]!);
  process.stdout.write(`\nmedians of ${ROUNDS} rounds, ${((guacd.replayBytes.length * LOOPS) / 1e6).toFixed(0)} MB per session:\n`);
  const m = (name: string): number => median(mainCpu[name]!);
  process.stdout.write(`  relay                     MB/s   CPU s/100 MB: ${where}, its main thread\n`);
  for (const name of ways.map((w) => w.name)) {
    process.stdout.write(`  ${name.padEnd(22)} ${r(name).toFixed(1).padStart(7)}   ${c(name).toFixed(2).padStart(6)}   ${m(name).toFixed(2).padStart(6)}\n`);
  }
  // Ratios both of the medians and as the median of each round's own ratio (the rounds are
  // interleaved, so a round's three runs saw about the same machine load).
  // The spread of the per-round ratios shows how much of a difference is the machine's noise.
  const paired = (a: string, b: string): string => {
    const ratios = rate[a]!.map((x, k) => x / rate[b]![k]!);
    const lowHigh = `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`;
    return `${median(ratios).toFixed(2).padStart(7)} (${lowHigh})`;
  };
  process.stdout.write(`  ratios                    MB/s   CPU     MB/s per round: median (lowest-highest)\n`);
  const line = (label: string, a: string, b: string, target: string): void => {
    process.stdout.write(`  ${label.padEnd(22)} ${(r(a) / r(b)).toFixed(2).padStart(7)}   ${(c(a) / c(b)).toFixed(2).padStart(6)}  ${paired(a, b)}   ${target}\n`);
  };
  line('recording on / off', on, off, '(target MB/s >= 0.90)');
  line('recgw off / lite', off, lite, '(target MB/s >= 1.00)');
  line('recgw on / lite', on, lite, '');
  if (BREAKDOWN) {
    line('on, buffered / off', buffered, off, '(every byte through the page cache: RECORDING_DIRECT_WRITES=false)');
    line('on / on, buffered', on, buffered, '(what direct writes changed)');
    line('on, /dev/null / off', noDisk, off, '(all of recording but the kernel\'s work on the bytes)');
    if (rate[copyOnly]) {
      line('on, copy only / off', copyOnly, off, '(... plus one copy of each byte: the floor for a buffered recording)');
      line('on / on, copy only', on, copyOnly, '(what the file system and the disk add)');
    }
  }

  for (const w of ways) await w.relay.close();
  await guacd.close();
  await writeReference(guacd.replayBytes.length * LOOPS);
}

/** Long enough for this VM to hand freed pages back to its host (free page reporting waits ~2 s). */
const PAGES_RETURNED_MS = 6000;

/**
 * What plain buffered writes cost the kernel on this machine, for reading the cache-kept relay:
 * session-sized files written to the temp directory (where the relays' spools are) in 1 MiB
 * writes, each fsynced, as CPU seconds per 100 MB. First eight files kept side by side, as the
 * recording relay keeps every session's segment, so each needs page-cache pages never used
 * before; then, with those deleted, two more into the pages just freed. On a VM with free page
 * reporting (this one) the kept files cost several times the others once a few hundred MB are
 * in use: a page the host took back is faulted in again on first touch. Writing behind
 * (page-cache.ts) keeps reusing a few MiB of pages instead.
 */
async function writeReference(bytes: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'recgw-bench-write-'));
  // 64 different source buffers, as the relay's arenas are many: the copy reads memory, not cache.
  // On the 4096 grid (where the addon can tell), as the relay places its arenas for direct writes.
  const chunks = Array.from({ length: 64 }, (_, k) =>
    (directWrites ? allocateBounce(1024 * 1024, directWrites) : Buffer.allocUnsafe(1024 * 1024)).fill(0x41 + (k % 26)),
  );
  /** CPU seconds since `before`, all of this process's threads, per 100 MB of `bytes`. */
  const cpuPer100MB = (before: NodeJS.CpuUsage): string => {
    const used = process.cpuUsage(before);
    return (((used.system + used.user) / 1e6) * (100 / (bytes / 1e6))).toFixed(2);
  };
  /** The relays' spools, or the files before, were just deleted: let their pages go back to the host. */
  const pagesReturned = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, PAGES_RETURNED_MS));
  const writeFile = (name: string): string => {
    const fd = openSync(join(dir, name), 'w');
    const before = process.cpuUsage();
    for (let pos = 0, i = 0; pos < bytes; pos += 1024 * 1024, i++) writeSync(fd, chunks[i % 64]!, 0, Math.min(1024 * 1024, bytes - pos), pos);
    fsyncSync(fd);
    const cost = cpuPer100MB(before);
    closeSync(fd);
    return cost;
  };
  try {
    await pagesReturned();
    const kept = Array.from({ length: 8 }, (_, k) => writeFile(`kept-${k}.bin`));
    for (let k = 0; k < 8; k++) rmSync(join(dir, `kept-${k}.bin`));
    const reused = Array.from({ length: 2 }, (_, k) => writeFile(`reused-${k}.bin`));
    process.stdout.write(
      `\nwriting ${(bytes / 1e6).toFixed(0)} MB files to ${tmpdir()} (1 MiB writes + fsync), CPU s/100 MB each:\n` +
        `  8 kept side by side (fresh pages): ${kept.join(', ')}\n` +
        `  2 more after deleting those (pages just freed): ${reused.join(', ')}\n`,
    );
    for (let k = 0; k < 2; k++) rmSync(join(dir, `reused-${k}.bin`));
    // The same as segments, through the SegmentWriter (its pool writes, fsync and hash counted),
    // each set after the freed pages went back to the host.
    const segments = async (options: SegmentWriterOptions, tag: string): Promise<string[]> => {
      await pagesReturned();
      const costs: string[] = [];
      for (let k = 0; k < 8; k++) {
        const before = process.cpuUsage();
        const w = new SegmentWriter(join(dir, `${tag}-${k}.guac`), options);
        for (let pos = 0, i = 0; pos < bytes; pos += 1024 * 1024, i++) {
          w.append(chunks[i % 64]!.subarray(0, Math.min(1024 * 1024, bytes - pos)));
          if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
        }
        await w.finish();
        costs.push(cpuPer100MB(before));
      }
      return costs;
    };
    const plain = await segments({}, 'plain');
    for (let k = 0; k < 8; k++) rmSync(join(dir, `plain-${k}.guac`));
    const behind = pageCache ? await segments({ pageCache }, 'behind') : [`(not available: page cache ${pageCacheStatus})`];
    for (let k = 0; k < 8 && pageCache; k++) rmSync(join(dir, `behind-${k}.guac`));
    const direct = directWrites ? await segments({ pageCache, direct: directWrites }, 'direct') : [`(not available: page cache ${pageCacheStatus})`];
    process.stdout.write(
      `segments of the same size by the SegmentWriter (writes, fsync, hash read-back), CPU s/100 MB each:\n` +
        `  8 with their pages kept in the cache: ${plain.join(', ')}\n` +
        `  8 written behind (RECORDING_DROP_PAGE_CACHE, default): ${behind.join(', ')}\n` +
        `  8 written directly (RECORDING_DIRECT_WRITES, default, as a fast session is): ${direct.join(', ')}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
