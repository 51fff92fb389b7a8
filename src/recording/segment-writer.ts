import { constants, writev } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { holdBytes, releaseBytes } from '../protocol/read-arenas.js';
import { allocateBounce, DIRECT_BLOCK, planDirectWrite, type DirectWriteSupport } from './direct-write.js';
import { sha256OfFile } from './file-hasher.js';
import type { PageCacheAdvice } from './page-cache.js';
import { writeWindow, type WriteWindow } from './write-window.js';

/** What a finished segment file holds: exactly `bytes` bytes whose sha256 is `sha256`. */
export interface WrittenSegment {
  bytes: number;
  /** Of the bytes read back from the file; '' when they could not be read back (then `error` says why). */
  sha256: string;
  /** Of `bytes`, how many went to the disk by direct writes (SegmentWriterOptions.direct). */
  directBytes: number;
  /** Of `directBytes`, how many were copied to line up on the grid first (direct-write.ts). */
  bouncedBytes: number;
  /** The error that stopped writing early, if any; `bytes`/`sha256` describe what reached the file. */
  error?: NodeJS.ErrnoException;
}

export interface SegmentWriterOptions {
  /** Most pieces handed to one writev call (default and upper bound: IOV_MAX, 1024 on Linux). */
  maxPieces?: number;
  /** Bytes worth a write of their own right away (next event-loop turn); fewer wait up to maxDelayMs. */
  minWriteBytes?: number;
  /** Longest a small amount of appended bytes waits before it is written. */
  maxDelayMs?: number;
  /**
   * Write the file behind (page-cache.ts says why): start writeback every FLUSH_BEHIND_BYTES and
   * drop what is on disk from the page cache, here and when the hash reads it back. Default: none.
   */
  pageCache?: PageCacheAdvice | undefined;
  /**
   * The previous segment's writer's written(): nothing is written here before it resolves, and
   * nothing at all if it resolves false, so that what a recording keeps is always the stream
   * from its start without a hole (a later segment written while an earlier one's last bytes
   * failed would leave one).
   */
  after?: Promise<boolean> | undefined;
  /**
   * Write large amounts straight from the appended bytes with O_DIRECT (direct-write.ts says
   * why and when). Default: never. Where the file system refuses, the file is written buffered.
   */
  direct?: DirectWriteSupport | undefined;
}

/** Most bytes handed to one writev call. */
const MAX_WRITE_BYTES = 4 * 1024 * 1024;
/** Linux's IOV_MAX: writev refuses more pieces than this in one call. */
const IOV_MAX = 1024;
/**
 * A write per socket read costs a writev round trip through libuv's pool each, and handing work
 * to the pool is not free on the event loop. Waiting for 256 KiB cut the relay process's CPU
 * with recording on by about a tenth in bench/relay.ts (one fast session). Live sessions send
 * little and often (a sync every ~50 ms, more when busy): there the wait is what bounds the writes,
 * and 25 ms instead of 4 cut what recording adds to the relay's CPU by half (bench/latency.ts:
 * 20 sessions at 8x, 2 rounds: 2.4 s → 1.1 s over recording off; 100 ms saved nothing more),
 * with the round trip of every sync unchanged. What a kill -9 can lose stays a few hundredths
 * of a second of the stream. The waits of all files end together (write-window.ts): a quarter
 * to two fifths less of what recording adds again (bench/latency.ts, side by side with a wait
 * per file: 20 sessions 2.05 → 1.24 s, 50 sessions 4.12 → 3.16 s over recording off).
 */
const DEFAULT_MIN_WRITE_BYTES = 256 * 1024;
const DEFAULT_MAX_DELAY_MS = 25;
/**
 * Writeback is started for every this many bytes written, and the bytes whose writeback was
 * started one step earlier are dropped from the cache then, so a file being written keeps about
 * twice this in the page cache. Small enough to stay in the CPU's reach, large enough that a
 * fast session asks a dozen times per 100 MB (live sessions: once in minutes).
 */
const FLUSH_BEHIND_BYTES = 8 * 1024 * 1024;
const PAGE_BYTES = 4096;
/**
 * Pending bytes worth a direct write: a fast session's. Fewer are written buffered, because a
 * direct write waits for the device and would turn every small live write into a disk write.
 */
const DIRECT_MIN_BYTES = 256 * 1024;
/**
 * Pending bytes beyond which writes go buffered again until the backlog is down: a direct write
 * waits for the device, one at a time, so a disk that slows down (a busy host) would let the
 * backlog run up to maxPendingBytes and end the session; the page cache takes a buffered write
 * at memory speed. Seen with 1 MiB direct writes on this machine's virtual disk.
 */
const DIRECT_MAX_PENDING_BYTES = 16 * 1024 * 1024;
/**
 * Aligned memory for the blocks of a direct write that cannot come straight from the pieces,
 * allocated by a writer's first direct write. It bounds a direct write of memory off the grid:
 * at 256 KiB such writes (bench/recorder.ts, whose feed is all off the grid) sealed at 287 MB/s
 * end to end, at 1 MiB at 420-433 MB/s (buffered: 470).
 */
const BOUNCE_BYTES = 1024 * 1024;

/**
 * Appends whole instructions to one segment file without ever blocking the caller.
 *
 * append() is synchronous and copies nothing: it keeps a reference to the caller's bytes (slices
 * of guacd's read arenas, held until written: read-arenas.ts), joining a slice that directly
 * follows the previous one in the same parent buffer into one view, so consecutive reads of a
 * connection usually become one piece per arena. A pump started on a later turn of the event
 * loop hands up to IOV_MAX pieces (MAX_WRITE_BYTES) to one writev; when a fast session has
 * DIRECT_MIN_BYTES waiting, it writes the whole 4 KiB blocks with O_DIRECT instead, straight
 * from the pieces (direct-write.ts), so a write may end inside a piece. Every piece holds whole
 * instructions, so after an error the file can be cut back to `committedBytes`, the end of the
 * last piece written whole: an instruction boundary.
 *
 * The sha256 is not computed here as bytes pass: finish() has the file read back and hashed off
 * the event loop (file-hasher.ts says why), so it is the hash of what the file really holds.
 */
export class SegmentWriter {
  readonly path: string;
  readonly #maxPieces: number;
  readonly #opened: Promise<FileHandle>;

  /** Closed pieces waiting for the disk, in order; the first may be partly written (#head). */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /** Bytes of #queue[0] already on the file (a write may end inside a piece). */
  #head = 0;
  /** The open run: bytes [#runStart, #runEnd) of #runParent, not yet a view of its own. */
  #runParent: ArrayBufferLike | undefined;
  #runStart = 0;
  #runEnd = 0;
  #appended = 0;
  #committed = 0;
  #pumping: Promise<void> | undefined;
  #scheduled = false;
  /** Waiting in #window for its few bytes to be written. */
  #waiting = false;
  readonly #window: WriteWindow;
  readonly #minWriteBytes: number;
  #error: NodeJS.ErrnoException | undefined;
  #finished: Promise<WrittenSegment> | undefined;
  #onError: ((err: NodeJS.ErrnoException) => void) | undefined;
  #pageCache: PageCacheAdvice | undefined;
  /** Writeback was started for [0, #flushedTo) (a page boundary); the cache before #droppedTo was dropped. */
  #flushedTo = 0;
  #droppedTo = 0;
  /**
   * Bytes written buffered, and their count at the last advice: only those take page-cache
   * pages, so writing directly asks for none (a drop over pages that are still dirty, such as a
   * fresh write up to the grid, also makes the kernel drain every CPU's page lists).
   */
  #bufferedBytes = 0;
  #bufferedAtAdvice = 0;
  #advising: Promise<void> | undefined;
  #after: Promise<boolean> | undefined;
  #direct: DirectWriteSupport | undefined;
  /** The file opened a second time with O_DIRECT, once a direct write is first worth it. */
  #directFile: Promise<FileHandle | undefined> | undefined;
  #bounce: Buffer | undefined;
  #directBytes = 0;
  #bouncedBytes = 0;
  readonly #written: Promise<boolean>;
  #settleWritten!: (allWritten: boolean) => void;

  /** Opens (creating or truncating) `path`; an open error surfaces like a write error. */
  constructor(path: string, options: SegmentWriterOptions = {}) {
    this.path = path;
    this.#maxPieces = Math.max(1, Math.min(IOV_MAX, options.maxPieces ?? IOV_MAX));
    this.#minWriteBytes = options.minWriteBytes ?? DEFAULT_MIN_WRITE_BYTES;
    this.#window = writeWindow(options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS);
    this.#pageCache = options.pageCache;
    this.#after = options.after;
    this.#direct = options.direct;
    this.#written = new Promise((resolve) => (this.#settleWritten = resolve));
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
    return this.#queuedBytes - this.#head + (this.#runEnd - this.#runStart);
  }

  get failed(): boolean {
    return this.#error !== undefined;
  }

  /**
   * Resolves once every byte appended before finish() has reached the file (true), or once
   * writing has failed (false); before fsync and the hash. The next segment's `after`.
   */
  written(): Promise<boolean> {
    return this.#written;
  }

  /** Called once, on the first open or write error. */
  onError(listener: (err: NodeJS.ErrnoException) => void): void {
    this.#onError = listener;
    if (this.#error) listener(this.#error);
  }

  /**
   * Queues whole instructions and has them written soon; ignored after an error or finish().
   * Keeps a reference to `bytes` until they are written (holding them if they are a read
   * arena's): the caller must never change them afterwards.
   */
  append(bytes: Buffer): void {
    this.queue(bytes);
    this.writeSoon();
  }

  /** append() without arranging the write: for a batch, call writeSoon() once after it. */
  queue(bytes: Buffer): void {
    if (this.#error || this.#finished) return;
    const length = bytes.length;
    if (length === 0) return;
    this.#appended += length;
    const parent = bytes.buffer;
    const offset = bytes.byteOffset;
    if (parent === this.#runParent && offset === this.#runEnd) {
      // The next instruction of the same read: the run grows, nothing is allocated.
      this.#runEnd += length;
    } else {
      this.#closeRun();
      holdBytes(bytes); // for the run; released once the run's piece is written
      this.#runParent = parent;
      this.#runStart = offset;
      this.#runEnd = offset + length;
    }
  }

  /** Arranges for the queued bytes to be written: soon if they are many, within maxDelayMs if few. */
  writeSoon(): void {
    if (this.#error || this.#finished) return;
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
    this.#leaveWindow();
    this.#closeRun();
    let fh: FileHandle;
    try {
      fh = await this.#opened;
    } catch {
      this.#settleWritten(false);
      return { bytes: 0, sha256: await sha256OfFile(this.path, 0), directBytes: 0, bouncedBytes: 0, ...(this.#error ? { error: this.#error } : {}) };
    }
    await this.#drain();
    this.#settleWritten(this.#error === undefined);
    const direct = await this.#directFile;
    await direct?.close().catch(() => undefined);
    this.#bounce = undefined;
    // The advice must not outlive the descriptor: a number reused for another file would get it.
    await this.#advising;
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
    let sha256: string;
    try {
      sha256 = await sha256OfFile(this.path, this.#committed, { dropCache: this.#pageCache !== undefined });
    } catch (err) {
      // The file does not give back what was written to it: as bad as a failed write.
      this.#setError(err as NodeJS.ErrnoException);
      sha256 = '';
    }
    const directBytes = Math.min(this.#directBytes, this.#committed);
    const bouncedBytes = Math.min(this.#bouncedBytes, directBytes);
    return { bytes: this.#committed, sha256, directBytes, bouncedBytes, ...(this.#error ? { error: this.#error } : {}) };
  }

  /** Turns the open run into a queued view of its parent buffer (no copy). */
  #closeRun(): void {
    const parent = this.#runParent;
    if (parent === undefined) return;
    const length = this.#runEnd - this.#runStart;
    this.#queue.push(Buffer.from(parent, this.#runStart, length));
    this.#queuedBytes += length;
    this.#runParent = undefined;
    this.#runStart = this.#runEnd = 0;
  }

  /** Arranges for the queued bytes to be written: soon if they are many, within maxDelayMs if few. */
  #schedule(): void {
    // Called for every instruction: the common cases (a write already arranged) return at once.
    if (this.#pumping || this.#scheduled) return;
    if (this.#waiting) {
      if (this.pendingBytes < this.#minWriteBytes) return;
      this.#leaveWindow();
    } else if (this.pendingBytes < this.#minWriteBytes) {
      // Written when the window of all files' small writes closes: within maxDelayMs.
      this.#waiting = true;
      this.#window.add(this.#onTimer);
      return;
    }
    this.#scheduled = true;
    // setImmediate, not a microtask: everything appended while handling one socket read is
    // written together.
    setImmediate(this.#onImmediate);
  }

  /** No longer waiting for the window: written sooner, or finished. */
  #leaveWindow(): void {
    if (!this.#waiting) return;
    this.#window.delete(this.#onTimer);
    this.#waiting = false;
  }

  readonly #onTimer = (): void => {
    this.#waiting = false;
    this.#startPump();
  };

  readonly #onImmediate = (): void => {
    this.#scheduled = false;
    this.#startPump();
  };

  #startPump(): void {
    if (this.#pumping) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
    });
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#pumping) await this.#pumping;
      if (this.#error || (this.#queue.length === 0 && this.#runParent === undefined)) return;
      this.#closeRun();
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
    if (this.#after) {
      // The previous segment's last writes are usually done long before this; if they failed,
      // this file stays empty (and is then discarded as such).
      const previousWritten = await this.#after;
      this.#after = undefined;
      if (!previousWritten) {
        this.#setError(Object.assign(new Error('an earlier segment of this recording could not be written, so nothing after it is'), { code: 'ECANCELED' }));
        return;
      }
    }
    while (!this.#error) {
      this.#closeRun();
      if (this.#queue.length === 0) return;
      const at = this.#committed + this.#head;
      try {
        const pending = this.pendingBytes;
        const direct = pending >= DIRECT_MIN_BYTES && pending <= DIRECT_MAX_PENDING_BYTES ? await this.#directHandle() : undefined;
        if (direct !== undefined && at % DIRECT_BLOCK === 0 && (await this.#writeDirect(direct, at))) continue;
        // Bounded so that the pieces of a backlog are handed back as they are written (a read
        // arena is reused only then), not all at the end of one huge call. Before a direct
        // write, only up to the grid, so that the direct write can start there.
        const toGrid = direct !== undefined && at % DIRECT_BLOCK !== 0 ? DIRECT_BLOCK - (at % DIRECT_BLOCK) : 0;
        const bytesWritten = await writevAt(fh.fd, this.#gather(toGrid), at);
        // A short write (a full disk fills mid-call) leaves the rest for the next round, where
        // the kernel reports the error itself.
        this.#advance(bytesWritten);
        this.#bufferedBytes += bytesWritten;
        this.#flushBehind(fh.fd);
      } catch (err) {
        this.#setError(err as NodeJS.ErrnoException);
        return;
      }
    }
  }

  /**
   * The queued bytes from #head on for one buffered writev: whole pieces up to IOV_MAX and
   * MAX_WRITE_BYTES, or exactly `upTo` bytes when that is given.
   */
  #gather(upTo: number): Buffer[] {
    const queue = this.#queue;
    const limit = upTo > 0 ? upTo : MAX_WRITE_BYTES;
    const bufs: Buffer[] = [];
    let bytes = 0;
    for (let i = 0; i < queue.length && i < this.#maxPieces && bytes < limit; i++) {
      let piece = queue[i]!;
      if (i === 0 && this.#head > 0) piece = piece.subarray(this.#head);
      if (upTo > 0 && bytes + piece.length > upTo) piece = piece.subarray(0, upTo - bytes);
      bufs.push(piece);
      bytes += piece.length;
    }
    return bufs;
  }

  /**
   * One direct write of the whole blocks queued; false (nothing written) when not one block is
   * queued, or when the file system refuses direct writes (the file is then written buffered
   * from here on).
   */
  async #writeDirect(direct: FileHandle, at: number): Promise<boolean> {
    const support = this.#direct;
    if (support === undefined) return false;
    this.#bounce ??= allocateBounce(BOUNCE_BYTES, support);
    const plan = planDirectWrite(this.#queue, this.#head, MAX_WRITE_BYTES, this.#maxPieces, this.#bounce, support);
    // Even a plan of copies only (memory off the grid: after a mouse line, a roll) is cheaper
    // than a buffered write, whose copy comes with the page cache's and ext4's per-page work.
    if (plan.bytes === 0) return false;
    let bytesWritten: number;
    try {
      bytesWritten = await writevAt(direct.fd, plan.iovecs, at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Refused before anything was written: alignment this file system does not take.
      if (code !== 'EINVAL' && code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') throw err;
      this.#direct = undefined;
      return false;
    }
    this.#directBytes += bytesWritten;
    // A short write: count its copies as written, near enough for a figure in a log line.
    this.#bouncedBytes += Math.min(plan.bounced, bytesWritten);
    this.#advance(bytesWritten);
    return true;
  }

  /** The O_DIRECT handle, opened the first time it is asked for; undefined where refused. */
  async #directHandle(): Promise<FileHandle | undefined> {
    if (this.#direct === undefined) return undefined;
    this.#directFile ??= open(this.path, constants.O_WRONLY | constants.O_DIRECT).catch(() => {
      this.#direct = undefined;
      return undefined;
    });
    const handle = await this.#directFile;
    return this.#direct === undefined ? undefined : handle;
  }

  /** `bytesWritten` more bytes from #head on reached the file: hands back the pieces now whole on it. */
  #advance(bytesWritten: number): void {
    const queue = this.#queue;
    let left = bytesWritten;
    let done = 0;
    while (left > 0 && done < queue.length) {
      const piece = queue[done]!;
      const rest = piece.length - this.#head;
      if (left < rest) {
        this.#head += left;
        break;
      }
      left -= rest;
      this.#head = 0;
      this.#committed += piece.length;
      this.#queuedBytes -= piece.length;
      releaseBytes(piece);
      done++;
    }
    if (done === queue.length) this.#queue = [];
    else if (done > 0) queue.splice(0, done);
  }

  /** After a buffered write: every FLUSH_BEHIND_BYTES of them, start writeback of the new bytes and drop the previous step's. */
  #flushBehind(fd: number): void {
    const advice = this.#pageCache;
    if (advice === undefined || this.#advising || this.#bufferedBytes - this.#bufferedAtAdvice < FLUSH_BEHIND_BYTES) return;
    const flushTo = this.#committed - (this.#committed % PAGE_BYTES);
    const dropTo = this.#flushedTo;
    const started = advice.flushBehind(fd, this.#flushedTo, flushTo - this.#flushedTo, this.#droppedTo, dropTo - this.#droppedTo);
    // Another file's advice is running: this one tries again after its next write.
    if (started === undefined) return;
    this.#flushedTo = flushTo;
    this.#droppedTo = dropTo;
    this.#bufferedAtAdvice = this.#bufferedBytes;
    this.#advising = started
      .catch(() => {
        // Advice only, and refused only where it cannot apply (a device such as /dev/full, a file
        // system without it): the file is written as a plain one from here on. A real disk error
        // is reported by the writes and the fsync, which are what decide a recording's fate.
        this.#pageCache = undefined;
      })
      .finally(() => {
        this.#advising = undefined;
      });
  }

  #setError(err: NodeJS.ErrnoException): void {
    if (this.#error) return;
    this.#error = err;
    this.#settleWritten(false);
    // Nothing queued can be written any more; let go of it.
    for (const piece of this.#queue) releaseBytes(piece);
    if (this.#runParent !== undefined) releaseBytes(new Uint8Array(this.#runParent, this.#runStart, 0));
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#head = 0;
    this.#runParent = undefined;
    this.#runStart = this.#runEnd = 0;
    this.#onError?.(err);
  }
}

/**
 * fs.writev with a callback: FileHandle.writev's promise-based request cost the relay's event
 * loop noticeably more per call (bench/relay.ts, profiled), and this runs for every write.
 * Every call has bytes to write, so one that wrote none is an error (EIO), never a retry loop.
 */
function writevAt(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers, position, (err, bytesWritten) => {
      if (err) reject(err);
      else if (bytesWritten === 0) reject(Object.assign(new Error('write made no progress'), { code: 'EIO' }));
      else resolve(bytesWritten);
    });
  });
}
