// A recorder in a process of its own, for the kill -9 test: records a fixture recording slowly
// (as a live session would arrive) and reports on stdout, one line each: `started`,
// `sealed <n>`, `fed <instructions>`. Run: node --import tsx test/support/recorder-child.ts
//   <spoolDir> <fixture name> <sessionId> <segmentBytes>
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createTestLoggers } from '../../src/observability/logger.js';
import { parseAll } from '../../src/protocol/index.js';
import { JournalStore } from '../../src/recording/journal.js';
import { Recorder } from '../../src/recording/recorder.js';

const [spoolDir, name, sessionId, segmentBytes] = process.argv.slice(2);
if (!spoolDir || !name || !sessionId || !segmentBytes) {
  process.stderr.write('usage: recorder-child <spoolDir> <fixture> <sessionId> <segmentBytes>\n');
  process.exit(2);
}
const say = (line: string): void => void process.stdout.write(`${line}\n`);

const data = gunzipSync(readFileSync(new URL(`../../fixtures/recordings/${name}.gz`, import.meta.url)));
const input = parseAll(data);
const recorder = new Recorder({
  spoolDir,
  segmentBytes: Number(segmentBytes),
  includeKeys: false,
  includeClipboard: false,
  includeAudio: false,
  journals: new JournalStore(spoolDir),
  logger: createTestLoggers().app,
  onSealed: (ref) => say(`sealed ${ref.segment}`),
});
const rec = await recorder.start({ sessionId, protocol: 'vnc', clientIp: '127.0.0.1' });
say('started');
let fed = 0;
// 20 instructions every 2 ms: the whole fixture would take several seconds, so the kill lands
// mid-stream while writes are in flight.
const timer = setInterval(() => {
  for (const end = Math.min(fed + 20, input.length); fed < end; fed++) rec.serverInstruction(input[fed]!);
  say(`fed ${fed}`);
  if (fed >= input.length) {
    clearInterval(timer);
    void rec.close('done').then(() => say('closed'));
  }
}, 2);
