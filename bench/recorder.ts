// Recorder throughput: replays the largest shared recording through SessionRecording as the
// relay would (a socket read's worth of instructions per event-loop turn) and prints
//  - the time the relay's path spends inside serverBatch (what recording adds to relaying),
//  - end-to-end MB/s until every segment is sealed (fsync + journal included).
// Run: npx tsx bench/recorder.ts [repeats=20] [segmentMiB=150]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createTestLoggers } from '../src/observability/logger.js';
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
  });
  const rec = await recorder.start({ sessionId: 'bench', protocol: 'vnc', clientIp: '127.0.0.1' });
  const total = data.length * repeats;
  let tapNs = 0n;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < repeats; r++) {
    for (const batch of reads) {
      const a = process.hrtime.bigint();
      rec.serverBatch(batch);
      tapNs += process.hrtime.bigint() - a;
      await new Promise((res) => setImmediate(res));
    }
  }
  const fed = process.hrtime.bigint();
  await rec.close('bench done');
  const t1 = process.hrtime.bigint();
  const s = (ns: bigint): number => Number(ns) / 1e9;
  const mb = total / 1e6;
  const segs = (await new JournalStore(spool).get('bench')).data.segments.length;
  process.stdout.write(
    [
      `recorded ${mb.toFixed(1)} MB (${repeats} x vnc-desktop, ${input.length * repeats} instructions) into ${segs} segment(s) of ${segmentBytes / 1048576} MiB`,
      `tap time on the relay path: ${(s(tapNs) * 1000).toFixed(0)} ms = ${(mb / s(tapNs)).toFixed(0)} MB/s (${((Number(tapNs) / (input.length * repeats))).toFixed(0)} ns per instruction)`,
      `fed in ${s(fed - t0).toFixed(2)} s; sealed (fsync + journal) after ${s(t1 - t0).toFixed(2)} s = ${(mb / s(t1 - t0)).toFixed(0)} MB/s end to end`,
      `peak RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`,
      '',
    ].join('\n'),
  );
} finally {
  rmSync(spool, { recursive: true, force: true });
}
