// Recorder throughput: replays the largest shared recording through SessionRecording as the
// relay would (a socket read's worth of instructions per event-loop turn) and prints
//  - the time the relay's path spends inside serverBatch (what recording adds to relaying), two
//    ways side by side: each read handed over with its back-to-back views (adjacentRuns(), as the
//    relay does: a read with nothing to leave out is queued whole) and as instructions only
//    (each looked at and queued on its own), alternating read by read;
//  - end-to-end MB/s until every segment is sealed (fsync + journal included).
// Run: npx tsx bench/recorder.ts [repeats=20] [segmentMiB=150]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createTestLoggers } from '../src/observability/logger.js';
import { byteRuns } from '../src/protocol/byte-runs.js';
import { parseAll, type Instruction } from '../src/protocol/index.js';
import { JournalStore } from '../src/recording/journal.js';
import { Recorder } from '../src/recording/recorder.js';

const repeats = Number(process.argv[2] ?? 20);
const segmentBytes = Number(process.argv[3] ?? 150) * 1024 * 1024;
const data = gunzipSync(readFileSync(new URL('../fixtures/recordings/vnc-desktop.gz', import.meta.url)));
const input = parseAll(data);

// Group instructions into ~64 KiB "socket reads".
const reads: Instruction[][] = [];
let cur: Instruction[] = [];
let curBytes = 0;
for (const i of input) {
  cur.push(i);
  curBytes += i.raw.length;
  if (curBytes >= 64 * 1024) {
    reads.push(cur);
    cur = [];
    curBytes = 0;
  }
}
if (cur.length) reads.push(cur);
const WARM_UP = Math.min(2, repeats - 1);
/** Reads every byte of a read's instructions, as the parser does before the tap sees them. */
let touched = 0;
function touch(read: Instruction[]): void {
  for (const ins of read) for (let i = 0; i < ins.raw.length; i += 64) touched ^= ins.raw[i]!;
}
// The relay makes these to send each read; only the tap's own work is timed.
const readRuns = reads.map((batch) => byteRuns(batch.map((i) => i.raw)));

const spool = mkdtempSync(join(tmpdir(), 'recgw-bench-'));
try {
  const recorder = new Recorder({
    spoolDir: spool,
    segmentBytes,
    includeKeys: false,
    includeClipboard: false,
    includeAudio: false,
    journals: new JournalStore(spool),
    logger: createTestLoggers().app,
    onSealed: () => undefined,
    // This feed runs far ahead of any disk (a relay is paced by guacd's socket). The queued
    // bytes are views of the one input buffer, so letting them wait copies nothing; under the
    // default bound both recordings would end early, "cannot keep up".
    maxPendingBytes: 4 * data.length * repeats,
  });
  const whole = await recorder.start({ sessionId: 'bench-whole', protocol: 'vnc', clientIp: '127.0.0.1' });
  const each = await recorder.start({ sessionId: 'bench-each', protocol: 'vnc', clientIp: '127.0.0.1' });
  const total = data.length * repeats;
  let wholeNs = 0n;
  let eachNs = 0n;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < repeats; r++) {
    for (let k = 0; k < reads.length; k++) {
      // In the relay the parser has just scanned every byte of a read when the tap sees it:
      // warm the read the same way before each timing, so neither way pays for cold memory.
      touch(reads[k]!);
      const a = process.hrtime.bigint();
      whole.serverBatch(reads[k]!, readRuns[k]!);
      const aNs = process.hrtime.bigint() - a;
      touch(reads[k]!);
      const b = process.hrtime.bigint();
      each.serverBatch(reads[k]!);
      const bNs = process.hrtime.bigint() - b;
      // The first repeats are the JIT's warm-up, as a relay's first seconds are.
      if (r >= WARM_UP) {
        wholeNs += aNs;
        eachNs += bNs;
      }
      await new Promise((res) => setImmediate(res));
    }
  }
  const fed = process.hrtime.bigint();
  await Promise.all([whole.close('bench done'), each.close('bench done')]);
  const t1 = process.hrtime.bigint();
  const s = (ns: bigint): number => Number(ns) / 1e9;
  const mb = total / 1e6;
  const store = new JournalStore(spool);
  const [a, b] = [await store.get('bench-whole'), await store.get('bench-each')];
  const segs = a.data.segments.length;
  const sameBytes = a.data.segments.map((x) => x.sha256).join() === b.data.segments.map((x) => x.sha256).join();
  const written = a.data.segments.reduce((n, x) => n + x.bytes, 0);
  if (written !== total || !sameBytes) throw new Error(`the two ways recorded ${written} bytes and ${sameBytes ? 'the same' : 'different'} bytes, of ${total}`);
  const timedMb = (data.length * (repeats - WARM_UP)) / 1e6;
  const tap = (label: string, ns: bigint): string =>
    `  ${label} ${(s(ns) * 1000).toFixed(1).padStart(5)} ms = ${(timedMb / s(ns)).toFixed(0).padStart(5)} MB/s, ${((s(ns) * 100) / timedMb).toFixed(3)} s per 100 MB (${(Number(ns) / (input.length * (repeats - WARM_UP))).toFixed(0)} ns per instruction)`;
  process.stdout.write(
    [
      `recorded ${mb.toFixed(1)} MB (${repeats} x vnc-desktop, ${input.length * repeats} instructions) twice, each into ${segs} segment(s) of ${segmentBytes / 1048576} MiB, the same bytes both ways`,
      `tap time on the relay path (repeats after the first ${WARM_UP}):`,
      tap('reads with their views (the relay):', wholeNs),
      tap('instructions one by one:           ', eachNs),
      `  ratio ${(Number(eachNs) / Number(wholeNs)).toFixed(1)}x`,
      `fed in ${s(fed - t0).toFixed(2)} s; both sealed (fsync + journal) after ${s(t1 - t0).toFixed(2)} s = ${((2 * mb) / s(t1 - t0)).toFixed(0)} MB/s end to end`,
      `peak RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`,
      '',
    ].join('\n'),
  );
} finally {
  rmSync(spool, { recursive: true, force: true });
}
