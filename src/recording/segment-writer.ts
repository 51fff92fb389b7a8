import { createHash, type Hash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';

/** What a finished segment file holds: exactly `bytes` bytes whose sha256 is `sha256`. */
export interface WrittenSegment {
  bytes: number;
  sha256: string;
  /** The error that stopped writing early, if any; `bytes`/`sha256` describe what reached the file. */
  error?: NodeJS.ErrnoException;
}

export interface SegmentWriterOptions {
  /** Bytes copied into one write buffer before it is queued for the disk. */
  chunkBytes?: number;
  /** Most buffers handed to one writev call. */
  batchChunks?: number;
}

const DEFAULT_CHUNK_BYTES = 256 * 1024;
const DEFAULT_BATCH_CHUNKS = 16;

/**
 * Appends whole instructions to one segment file without ever blocking the caller.
 *
 * append() is synchronous: it copies the bytes into a write buffer and returns; a pump started
 * on the next turn of the event loop writes full buffers with writev, so the many instructions
 * of one TCP chunk reach the disk in one system call. Every buffer holds whole instructions
 * only, and the sha256 is updated with a buffer once all of it is on the file, so after an error
 * the file can be cut back to `committedBytes` — an instruction boundary whose hash is known —
 * without reading anything back.
 */
export class SegmentWriter {
  readonly path: string;
  readonly #chunkBytes: number;
  readonly #batchChunks: number;
  readonly #hash: Hash = createHash('sha256');
  readonly #opened: Promise<FileHandle>;

  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #fill: Buffer | undefined;
  #fillUsed = 0;
  #appended = 0;
  #committed = 0;
  #pumping: Promise<void> | undefined;
  #scheduled = false;
  #error: NodeJS.ErrnoException | undefined;
  #finished: Promise<WrittenSegment> | undefined;
  #onError: ((err: NodeJS.ErrnoException) => void) | undefined;

  /** Opens (creating or truncating) `path`; an open error surfaces like a write error. */
  constructor(path: string, options: SegmentWriterOptions = {}) {
    this.path = path;
    this.#chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.#batchChunks = options.batchChunks ?? DEFAULT_BATCH_CHUNKS;
    // 'w', not 'wx': the journal, not the file system, decides which numbers are free, and a
    // stale file under a number the journal hands out again holds nothing anyone can use.
    this.#opened = open(path, 'w', 0o640);
    this.#opened.catch((err: NodeJS.ErrnoException) => this.#setError(err));
  }

  /** Resolves once the file is open; rejects with the open error. */
  async opened(): Promise<void> {
    await this.#opened;
  }

  /** Bytes handed to append() so far. */
  get bytes(): number {
    return this.#appended;
  }

  /** Bytes that reached the file, whole instructions only. */
  get committedBytes(): number {
    return this.#committed;
  }

  /** Bytes appended but not yet written. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#fillUsed;
  }

  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** Called once, on the first open or write error. */
  onError(listener: (err: NodeJS.ErrnoException) => void): void {
    this.#onError = listener;
    if (this.#error) listener(this.#error);
  }

  /** Queues whole instructions; ignored after an error or finish(). */
  append(bytes: Buffer): void {
    if (this.#error || this.#finished || bytes.length === 0) return;
    this.#appended += bytes.length;
    if (bytes.length >= this.#chunkBytes) {
      // Big enough to be a write of its own; copying would only cost time.
      this.#flushFill();
      this.#enqueue(Buffer.from(bytes));
    } else {
      if (this.#fill && this.#fillUsed + bytes.length > this.#fill.length) this.#flushFill();
      if (!this.#fill) {
        this.#fill = Buffer.allocUnsafe(this.#chunkBytes);
        this.#fillUsed = 0;
      }
      // TypedArray#set, not Buffer#copy: copy() makes a view object per call, which shows up
      // as garbage-collector time at tens of thousands of instructions a second.
      this.#fill.set(bytes, this.#fillUsed);
      this.#fillUsed += bytes.length;
    }
    this.#schedule();
  }

  /**
   * Writes what is queued, fsyncs and closes. After an error, cuts the file back to the last
   * whole instruction that reached it. Resolves with what the file holds; never rejects.
   */
  finish(): Promise<WrittenSegment> {
    this.#finished ??= this.#finish();
    return this.#finished;
  }

  /** Finishes and removes the file (a segment that ended empty). */
  async discard(): Promise<void> {
    await this.finish();
    await unlink(this.path).catch(() => undefined);
  }

  async #finish(): Promise<WrittenSegment> {
    this.#flushFill();
    let fh: FileHandle;
    try {
      fh = await this.#opened;
    } catch {
      return { bytes: 0, sha256: this.#hash.digest('hex'), ...(this.#error ? { error: this.#error } : {}) };
    }
    await this.#drain();
    if (this.#error) {
      // A short write may have left part of an instruction behind; what precedes it is intact.
      await fh.truncate(this.#committed).catch(() => undefined);
    }
    try {
      await fh.sync();
    } catch (err) {
      // Character devices (/dev/full in tests) refuse fsync with EINVAL; that is not data loss.
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'EINVAL') this.#setError(e);
    }
    await fh.close().catch(() => undefined);
    return { bytes: this.#committed, sha256: this.#hash.digest('hex'), ...(this.#error ? { error: this.#error } : {}) };
  }

  #enqueue(buf: Buffer): void {
    this.#queue.push(buf);
    this.#queuedBytes += buf.length;
  }

  #flushFill(): void {
    if (this.#fill && this.#fillUsed > 0) {
      this.#enqueue(this.#fill.subarray(0, this.#fillUsed));
      this.#fill = undefined;
      this.#fillUsed = 0;
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#pumping) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: everything appended while handling one socket read is
    // written together.
    setImmediate(() => {
      this.#scheduled = false;
      this.#startPump();
    });
  }

  #startPump(): void {
    if (this.#pumping) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
    });
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#pumping) await this.#pumping;
      if (this.#error || (this.#queue.length === 0 && this.#fillUsed === 0)) return;
      this.#flushFill();
      this.#startPump();
    }
  }

  async #pump(): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await this.#opened;
    } catch {
      return;
    }
    while (!this.#error) {
      if (this.#queue.length === 0) this.#flushFill();
      if (this.#queue.length === 0) return;
      const batch = this.#queue.splice(0, this.#batchChunks);
      try {
        await this.#writeBatch(fh, batch);
      } catch (err) {
        this.#setError(err as NodeJS.ErrnoException);
        return;
      }
    }
  }

  async #writeBatch(fh: FileHandle, batch: Buffer[]): Promise<void> {
    let k = 0;
    let partial = 0; // bytes of batch[k] already on the file
    while (k < batch.length) {
      const bufs = batch.slice(k);
      if (partial > 0) bufs[0] = bufs[0]!.subarray(partial);
      const { bytesWritten } = await fh.writev(bufs, this.#appendPosition(partial));
      if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      // A short write (a full disk fills mid-call) leaves the rest for the next round, where
      // the kernel reports the error itself.
      let left = bytesWritten;
      while (left > 0 && k < batch.length) {
        const rest = batch[k]!.length - partial;
        if (left >= rest) {
          left -= rest;
          this.#hash.update(batch[k]!);
          this.#committed += batch[k]!.length;
          this.#queuedBytes -= batch[k]!.length;
          k++;
          partial = 0;
        } else {
          partial += left;
          left = 0;
        }
      }
    }
  }

  /** Explicit positions keep the file exact after a short write; devices ignore them. */
  #appendPosition(partial: number): number {
    return this.#committed + partial;
  }

  #setError(err: NodeJS.ErrnoException): void {
    if (this.#error) return;
    this.#error = err;
    // Nothing queued can be written any more; let go of it.
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#fill = undefined;
    this.#fillUsed = 0;
    this.#onError?.(err);
  }
}
