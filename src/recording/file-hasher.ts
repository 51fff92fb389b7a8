import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { pageCache } from './page-cache.js';

export interface HashOptions {
  /**
   * Drop the file's pages from the page cache behind the read, and all of them at the end
   * (page-cache.ts says why), where native/page-cache is available. For files written behind:
   * what is left of them in the cache is read once more here and is of no use after.
   */
  dropCache?: boolean;
}

/**
 * sha256 of a file's first `bytes` bytes, computed off the event loop.
 *
 * Why re-read instead of hashing as we write: on the relay path sha256 was the largest single
 * cost of recording (≈ 0.1 CPU s per 100 MB on the event loop, measured with bench/relay.ts),
 * and the event loop is what limits the relay's throughput. Reading the sealed segment back is
 * done here by a worker thread together with the hashing (from the disk where the segment was
 * written behind, else a memory copy from the page cache); the hash is then of the bytes that
 * reached the file, which also checks them.
 *
 * The worker is one per process, started on first use, and keeps the process alive only while
 * it has work. It runs at the lowest CPU priority (nice 19, that thread only), so on a busy
 * machine the relay's event loop and writes go first and only the seal waits. Its code is
 * inline (eval) so it runs the same from src/ under vitest and from dist/. If it cannot run,
 * the file is hashed on this thread instead.
 */
export async function sha256OfFile(path: string, bytes: number, options: HashOptions = {}): Promise<string> {
  if (bytes === 0) return EMPTY_SHA256;
  const drop = options.dropCache === true && pageCache !== undefined;
  try {
    return await pool.hash(path, bytes, drop);
  } catch (err) {
    if (err instanceof ReadBackError) throw err.cause;
    // The worker could not start or died: same result, on this thread.
    return sha256OnThisThread(path, bytes, drop);
  }
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');
const READ_BYTES = 1024 * 1024;
/**
 * Dropping right behind the read leaves pages in place (the kernel reads ahead in large folios
 * that reach past the chunk just read); a few MiB further back they all go.
 */
const DROP_LAG_BYTES = 4 * 1024 * 1024;

/** Plain CommonJS: eval workers get `require`, not ES module imports. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buf = Buffer.allocUnsafe(${READ_BYTES});
// The page-cache addon, when the main thread has it (page-cache.ts); without it nothing is dropped.
let addon;
if (workerData && workerData.addonPath) {
  try { addon = require(workerData.addonPath); } catch {}
}
// Lowest CPU priority for this thread only (Linux: setpriority on its thread id): a seal can
// wait, the relay's event loop and libuv's writes cannot. Best effort; elsewhere nothing changes.
try {
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0 && tid !== process.pid) require('node:os').setPriority(tid, 19);
} catch {}
parentPort.on('message', ({ id, path, bytes, drop }) => {
  let fd;
  try {
    fd = openSync(path, 'r');
    const hash = createHash('sha256');
    const dropping = drop && addon !== undefined;
    let pos = 0;
    let dropped = 0;
    while (pos < bytes) {
      if (dropping && pos - ${DROP_LAG_BYTES} > dropped) {
        addon.dropCachedSync(fd, dropped, pos - ${DROP_LAG_BYTES} - dropped);
        dropped = pos - ${DROP_LAG_BYTES};
      }
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - pos), pos);
      if (n === 0) {
        const e = new Error(path + ' holds ' + pos + ' bytes, ' + bytes + ' expected');
        e.code = 'ESHORT';
        throw e;
      }
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    if (dropping) addon.dropCachedSync(fd, 0, 0);
    parentPort.postMessage({ id, sha256: hash.digest('hex') });
  } catch (err) {
    parentPort.postMessage({ id, error: { message: String(err && err.message), code: err && err.code } });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
});
`;

/** The file itself could not be read back (as opposed to the worker failing). */
class ReadBackError extends Error {
  override readonly cause: NodeJS.ErrnoException;
  constructor(cause: NodeJS.ErrnoException) {
    super(cause.message);
    this.cause = cause;
  }
}

interface Job {
  resolve: (sha256: string) => void;
  reject: (err: Error) => void;
}

interface Reply {
  id: number;
  sha256?: string;
  error?: { message: string; code?: string };
}

class HashWorker {
  #worker: Worker | undefined;
  #nextId = 1;
  readonly #jobs = new Map<number, Job>();

  hash(path: string, bytes: number, drop: boolean): Promise<string> {
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject });
      if (this.#jobs.size === 1) worker.ref();
      worker.postMessage({ id, path, bytes, drop });
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      name: 'recgw-segment-hash',
      workerData: { addonPath: pageCache?.addonPath },
    });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const job = this.#jobs.get(reply.id);
      if (!job) return;
      this.#jobs.delete(reply.id);
      if (this.#jobs.size === 0) worker.unref();
      if (reply.sha256 !== undefined) job.resolve(reply.sha256);
      else job.reject(new ReadBackError(Object.assign(new Error(reply.error?.message ?? 'read failed'), { code: reply.error?.code })));
    });
    const lost = (err: Error): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const jobs = [...this.#jobs.values()];
      this.#jobs.clear();
      for (const j of jobs) j.reject(err);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`hash worker exited (${code})`)));
    this.#worker = worker;
    return worker;
  }
}

const pool = new HashWorker();

async function sha256OnThisThread(path: string, bytes: number, drop: boolean): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let pos = 0;
    while (pos < bytes) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, bytes - pos), pos);
      if (bytesRead === 0) {
        throw Object.assign(new Error(`${path} holds ${pos} bytes, ${bytes} expected`), { code: 'ESHORT' });
      }
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    // Best effort, all at once: this is the fallback path.
    if (drop) await pageCache?.flushBehind(fh.fd, 0, 0, 0, bytes)?.catch(() => undefined);
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}
