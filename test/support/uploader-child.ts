// An uploader in a process of its own, for the kill -9 test: uploads segment 1 of a session with
// forced multipart (5 MiB parts, one at a time, a pause after each) and says `part <n>` on stdout
// after each part, so the parent can SIGKILL it mid-upload.
// Run: node --import tsx test/support/uploader-child.ts <spoolDir> <sessionId> <location>
import { Uploader } from '../../src/pipeline/upload-queue.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import { JournalStore } from '../../src/recording/journal.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { UploadLocation } from '../../src/storage/upload-location.js';
import { S3RVER_CREDENTIALS } from './s3-server.js';

const [spoolDir, sessionId, locationText] = process.argv.slice(2);
if (!spoolDir || !sessionId || !locationText) {
  process.stderr.write('usage: uploader-child <spoolDir> <sessionId> <location>\n');
  process.exit(2);
}
const location = UploadLocation.parse(locationText);
if (location.target.kind !== 's3') throw new Error('s3 location expected');
const store = new S3Store({
  bucket: location.target.bucket,
  endpoint: location.target.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: S3RVER_CREDENTIALS,
  multipartThreshold: 0,
  partSize: 5 * 1024 * 1024,
  queueSize: 1,
});
let parts = 0;
store.client.middlewareStack.add(
  (next, context) => async (args) => {
    const out = await next(args);
    if (context.commandName === 'UploadPartCommand') {
      process.stdout.write(`part ${++parts}\n`);
      await new Promise((r) => setTimeout(r, 300));
    }
    return out;
  },
  { step: 'initialize' },
);
const uploader = new Uploader({ journals: new JournalStore(spoolDir), store, location, logger: createTestLoggers().app });
await uploader.upload({ sessionId, segment: 1 });
process.stdout.write('done\n');
