// Does recording slow the person at the keyboard? Many sessions at once, each replaying a real
// recording with its own timing (sped up), through three relays in turn: guacamole-lite 1.2.0,
// recgw with recording off, recgw with recording on. Every client acknowledges each `sync` the
// moment it arrives, as guacamole-common-js does once a frame is drawn, and the guacd stand-in
// times each sync from its write to the acknowledgement: guacd's own measure of client lag (it
// holds back frames while that grows). Prints, per relay, the round trip's median, 95th and 99th
// percentiles and maximum over every sync of every session, and the relay process's CPU.
//
//   npx tsx bench/latency.ts [--sessions 20] [--speed 8] [--rounds 3] [--fixture vnc-desktop]
//
// Each relay runs in a child process of its own (relay-child.ts); the stand-in and the clients
// share this process. Rounds interleave the relays so load on the machine hits all of them alike.
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { encryptToken } from '../src/gateway/token.js';
import { parseAll } from '../src/protocol/index.js';
import { FakeGuacd, type FakeGuacdConnection } from '../test/support/fake-guacd.js';
import { startChildRelay, type Relay } from './relay-child.js';
import { BENCH_KEY as KEY, type RelayKind } from './relay-server.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const SESSIONS = Number(opt('sessions', '20'));
const SPEED = Number(opt('speed', '8'));
const ROUNDS = Number(opt('rounds', '3'));
const FIXTURE_NAME = opt('fixture', 'vnc-desktop');
const FIXTURE = join(import.meta.dirname, `../fixtures/recordings/${FIXTURE_NAME}.gz`);
const SYNC = Buffer.from('4.sync,');

/**
 * One client: answers every `sync` it receives with the same timestamp, at once. Resolves with
 * the bytes received when the relay closes the connection (the replay is over).
 */
function client(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, 'guacamole', { perMessageDeflate: false });
    let bytes = 0;
    ws.on('message', (data: Buffer) => {
      bytes += data.length;
      // Messages hold whole instructions; a sync's first argument is `<length>.<timestamp>`.
      for (let at = data.indexOf(SYNC); at >= 0; at = data.indexOf(SYNC, at + SYNC.length)) {
        const dot = data.indexOf(0x2e /* . */, at + SYNC.length);
        const len = Number(data.toString('latin1', at + SYNC.length, dot));
        ws.send(`4.sync,${len}.${data.toString('latin1', dot + 1, dot + 1 + len)};`);
      }
    });
    ws.on('error', reject);
    ws.on('close', () => resolve(bytes));
  });
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const guacd = await FakeGuacd.start({ replay: FIXTURE, speed: SPEED, keepSent: false, keepReceived: false, timeSyncs: true });
  const payload = (recording: boolean, n: number) => ({
    connection: { type: 'vnc' as const, settings: { hostname: 'bench' } },
    session: { id: `latency-${recording ? 'rec' : 'norec'}-${n}` },
    recording,
  });
  const start = (kind: RelayKind): Promise<Relay> => startChildRelay(kind, guacd, KEY);
  const ways: Array<{ name: string; relay: Relay; recording: boolean }> = [
    { name: 'guacamole-lite 1.2.0', relay: await start('lite'), recording: false },
    { name: 'recgw, recording off', relay: await start('recgw'), recording: false },
    { name: 'recgw, recording on', relay: await start('recgw'), recording: true },
  ];
  const rtts: Record<string, number[]> = {};
  const cpu: Record<string, number> = {};
  const unanswered: Record<string, number> = {};
  const expected = guacd.replayBytes.length;
  const syncs = parseAll(guacd.replayBytes).filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
  const span = (syncs.at(-1)! - syncs[0]!) / 1000;
  const rate = (x: number): string => `${((expected * x) / span / 1e6).toFixed(2)} MB/s`;
  process.stdout.write(
    `${SESSIONS} sessions at once, each ${FIXTURE_NAME} (${(expected / 1e6).toFixed(1)} MB over ${span.toFixed(0)} s: ${rate(1)} live) ` +
      `at ${SPEED}x = ${rate(SPEED)} each, ${rate(SPEED * SESSIONS)} in all; ${ROUNDS} rounds\n`,
  );
  let n = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    for (const w of ways) {
      const before = await w.relay.cpuSeconds();
      const first = guacd.connections.length;
      const started = performance.now();
      const received = await Promise.all(Array.from({ length: SESSIONS }, () => client(w.relay.url, encryptToken(payload(w.recording, ++n), KEY))));
      const seconds = (performance.now() - started) / 1000;
      const after = await w.relay.cpuSeconds();
      const conns: FakeGuacdConnection[] = guacd.connections.slice(first);
      const round = conns.flatMap((c) => c.syncRoundTrips);
      const all = (rtts[w.name] ??= []);
      for (const rtt of round) all.push(rtt); // not push(...round): a round can hold 100 000s
      cpu[w.name] = (cpu[w.name] ?? 0) + (after.all - before.all);
      unanswered[w.name] = (unanswered[w.name] ?? 0) + conns.reduce((k, c) => k + c.syncSentAt.size, 0);
      const short = received.filter((b) => b < expected).length;
      const sorted = [...round].sort((a, b) => a - b);
      process.stdout.write(
        `round ${r} ${w.name.padEnd(22)} ${seconds.toFixed(1)} s, ${round.length} syncs, round trip p50 ${percentile(sorted, 50).toFixed(2)} ms, ` +
          `p99 ${percentile(sorted, 99).toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(1)} ms${short ? `  ${short} sessions SHORT` : ''}\n`,
      );
    }
  }
  process.stdout.write(`\nsync round trip over all rounds (ms), and the relay process's CPU:\n`);
  process.stdout.write(`  relay                      p50     p95     p99     max   unanswered   CPU s\n`);
  for (const w of ways) {
    const sorted = rtts[w.name]!.sort((a, b) => a - b);
    const f = (x: number): string => x.toFixed(2).padStart(7);
    process.stdout.write(
      `  ${w.name.padEnd(22)} ${f(percentile(sorted, 50))} ${f(percentile(sorted, 95))} ${f(percentile(sorted, 99))} ${f(sorted.at(-1)!)}   ${String(unanswered[w.name]).padStart(10)}   ${cpu[w.name]!.toFixed(2)}\n`,
    );
  }
  for (const w of ways) await w.relay.close();
  await guacd.close();
}

await main();
