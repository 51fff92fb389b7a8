// A recorder in a process of its own, for the kill -9 test: records a fixture recording at a
// steady pace (20 instructions every 2 ms by default, as a live session would arrive; more for
// a fast one, whose segments are then written directly) and reports on stdout, one line each:
// `started`, `sealed <n>`, `direct <bytes of the sealed segment written directly>`,
// `fed <instructions>`. Run: node --import tsx test/support/recorder-child.ts
//   <spoolDir> <fixture name> <sessionId> <segmentBytes> [instructions per 2 ms] [times over]
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createTestLoggers } from '../../src/observability/logger.js';
import { parseAll } from '../../src/protocol/index.js';
import { JournalStore } from '../../src/recording/journal.js';
import { Recorder } from '../../src/recording/recorder.js';

const [spoolDir, name, sessionId, segmentBytes, perTickArg, loopsArg] = process.argv.slice(2);
if (!spoolDir || !name || !sessionId || !segmentBytes) {
  process.stderr.write('usage: recorder-child <spoolDir> <fixture> <sessionId> <segmentBytes> [instructions per 2 ms]\n');
  process.exit(2);
}
const perTick = Number(perTickArg ?? 20);
// A fast feed goes through the fixture several times, so the kill still lands mid-stream when
// a busy machine delays the seals the test waits for.
const loops = Number(loopsArg ?? 1);
const say = (line: string): void => void process.stdout.write(`${line}\n`);

const data = gunzipSync(readFileSync(new URL(`../../fixtures/recordings/${name}.gz`, import.meta.url)));
const once = parseAll(data);
const input = Array.from({ length: loops }, () => once).flat();
const recorder = new Recorder({
  spoolDir,
  segmentBytes: Number(segmentBytes),
  includeKeys: false,
  includeClipboard: false,
  includeAudio: false,
  journals: new JournalStore(spoolDir),
  // The seal's log line says how much of the segment went to the disk directly.
  logger: createTestLoggers(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line.includes('"segment sealed"')) continue;
          say(`direct ${(JSON.parse(line) as { direct_bytes: number }).direct_bytes}`);
        }
        done();
      },
    }),
    'info',
  ).app,
  onSealed: (ref) => say(`sealed ${ref.segment}`),
});
const rec = await recorder.start({ sessionId, protocol: 'vnc', clientIp: '127.0.0.1' });
say('started');
let fed = 0;
// 20 instructions every 2 ms: the whole fixture would take several seconds, so the kill lands
// mid-stream while writes are in flight.
const timer = setInterval(() => {
  for (const end = Math.min(fed + perTick, input.length); fed < end; fed++) rec.serverInstruction(input[fed]!);
  say(`fed ${fed}`);
  if (fed >= input.length) {
    clearInterval(timer);
    void rec.close('done').then(() => say('closed'));
  }
}, 2);
