/**
 * Memory that guacd's bytes are read into, reused once nothing refers to it any more.
 *
 * Why: by default every socket read gets a fresh buffer. With recording on, those buffers stay
 * referenced until their bytes reach the disk, which is long enough for V8 to promote them and
 * free them only in full collections; the collector then cost the relay more than the writes
 * (bench/relay.ts, profiled). Copying them into reusable buffers instead cost as much again in
 * memcpy. Reading straight into reused memory avoids both, and consecutive reads of one
 * connection land side by side, so a run of instructions that crosses reads is still one slice:
 * sent as one frame, written as one piece.
 *
 * Rules: a view handed out by an ArenaReader (and any slice of it) is valid until the read
 * callback that received it returns. Whoever keeps such bytes longer calls holdBytes() on them
 * first and releaseBytes() exactly once when done (a frame sent, a piece written). Buffers that
 * are not from an arena are ignored by both, so callers need not tell them apart. A missed
 * release only keeps an arena from being reused (the garbage collector frees it); a release
 * too many would corrupt data, so every hold is paired with one release where it is taken.
 */

/** One arena per guacd connection at a time: what an idle session keeps allocated. */
export const ARENA_BYTES = 128 * 1024;
/** Largest single read (Node's own default read size). */
const MAX_READ = 64 * 1024;
/** A fresh arena is started when less than this is left in the current one. */
const MIN_READ = 16 * 1024;
/**
 * The grid a recording's direct writes need memory, file offsets and lengths on
 * (recording/direct-write.ts takes it from here as DIRECT_BLOCK).
 */
export const ALIGN_GRID = 4096;
/**
 * Largest incomplete instruction moved to the front of a fresh arena: a whole read still fits
 * after it, also when the arena's first byte is placed up to ALIGN_GRID - 1 bytes in.
 */
const MAX_CARRY = ARENA_BYTES - MAX_READ - ALIGN_GRID;
/**
 * Arenas kept for reuse. While a fast session's bytes wait for the disk, hundreds can be in
 * flight; dropping them when they come back made the collector busy again. Those not needed
 * for a whole TRIM_MS are let go, down to KEEP_FREE.
 */
const MAX_FREE = 512;
export const KEEP_FREE = 16;
export const TRIM_MS = 10_000;

class Arena {
  readonly bytes: Buffer;
  refs = 0;
  /** Where `bytes` starts in memory modulo ALIGN_GRID; -1 until asked. */
  phase = -1;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
}

const byBuffer = new WeakMap<ArrayBufferLike, Arena>();
const free: Arena[] = [];
/** Fewest arenas the free list held since the last trim: that many were never needed. */
let lowWater = 0;
let trimTimer: NodeJS.Timeout | undefined;
let poison = false;

/** Keeps the arena behind `bytes` from reuse until releaseBytes(bytes); no-op for other buffers. */
export function holdBytes(bytes: Uint8Array): void {
  const arena = byBuffer.get(bytes.buffer);
  if (arena) arena.refs++;
}

/** Ends one holdBytes() on the same arena. */
export function releaseBytes(bytes: Uint8Array): void {
  const arena = byBuffer.get(bytes.buffer);
  if (arena) unref(arena);
}

/**
 * Tests: fill arenas with '!' when they are freed, so bytes used after their release show up
 * as corrupt data instead of passing unnoticed.
 */
export function setArenaPoisoning(on: boolean): void {
  poison = on;
}

function unref(arena: Arena): void {
  if (arena.refs <= 0) {
    // A bug on our side; tests (poisoning on) fail on it, a live gateway keeps its sessions.
    if (poison) throw new Error('read arena released more often than held');
    return;
  }
  if (--arena.refs > 0) return;
  if (poison) arena.bytes.fill(0x21);
  if (free.length >= MAX_FREE) return;
  free.push(arena);
  if (trimTimer === undefined && free.length > KEEP_FREE) {
    lowWater = free.length;
    trimTimer = setInterval(trim, TRIM_MS).unref();
  }
}

function trim(): void {
  const surplus = Math.min(lowWater, free.length - KEEP_FREE);
  if (surplus > 0) free.splice(0, surplus);
  lowWater = free.length;
  if (free.length <= KEEP_FREE) {
    clearInterval(trimTimer);
    trimTimer = undefined;
  }
}

function takeArena(): Arena {
  const reused = free.pop();
  if (free.length < lowWater) lowWater = free.length;
  const arena = reused ?? new Arena(Buffer.allocUnsafeSlow(ARENA_BYTES));
  if (!reused) byBuffer.set(arena.bytes.buffer, arena);
  arena.refs = 1; // the reader's own
  return arena;
}

/**
 * Whoever consumes a reader's views and may be left holding the start of an instruction whose
 * end has not arrived yet (the parser).
 */
export interface PendingBytes {
  /** Bytes at the end of what was read so far that wait for the rest of their instruction. */
  readonly pendingBytes: number;
  /** Copies those bytes into `target` (exactly pendingBytes long) and keeps that copy instead. */
  movePending(target: Buffer): void;
}

/**
 * Where a recording will write the bytes read next, so that they can be placed in memory on the
 * same grid as their place in the file (recording/direct-write.ts: then they go to the disk
 * straight from the arena).
 */
export interface ReadAlignment {
  /** The file offset the next byte read will be written at, if nothing is added or left out first. */
  nextOffset(): number;
  /** Where `bytes` starts in memory, modulo ALIGN_GRID (native/page-cache). */
  addressPhase(bytes: Uint8Array): number;
}

/**
 * Hands a socket consecutive slices of an arena to read into (net.connect's `onread`): the
 * next slice starts where the last read ended.
 *
 * When an arena is used up in the middle of an instruction, the instruction's start is moved to
 * the front of the next arena and the next read lands right after it, so the instruction is
 * still one view once complete. Without that, every instruction crossing arenas was joined into
 * a freshly allocated buffer: an allocation per arena, which with recording on (arenas held
 * until written) showed up in the relay's profile as allocation and collector time.
 */
export class ArenaReader {
  #arena: Arena | undefined;
  #pos = 0;
  #slot: Buffer | undefined;
  #closed = false;
  readonly #pending: PendingBytes | undefined;
  #align: ReadAlignment | undefined;

  /** @param pending the consumer whose incomplete instruction moves along to a fresh arena. */
  constructor(pending?: PendingBytes) {
    this.#pending = pending;
  }

  /**
   * From the next fresh arena on, places its first byte (the moved instruction's, or the next
   * read's) on the memory grid of the file offset `align` says it will be recorded at. The reads
   * after it follow on directly, so a whole arena's bytes usually share that grid.
   */
  alignTo(align: ReadAlignment | undefined): void {
    this.#align = align;
  }

  /** For onread.buffer: where the next read goes. */
  readonly nextSlot = (): Buffer => {
    if (this.#closed) {
      // Reads after close() (a socket still draining) get memory of their own.
      this.#slot = Buffer.allocUnsafe(MAX_READ);
      return this.#slot;
    }
    if (this.#arena === undefined || ARENA_BYTES - this.#pos < MIN_READ) {
      const old = this.#arena;
      const arena = takeArena();
      this.#arena = arena;
      this.#pos = 0;
      const align = this.#align;
      if (align !== undefined) {
        if (arena.phase < 0) arena.phase = align.addressPhase(arena.bytes);
        const skip = (align.nextOffset() - arena.phase) % ALIGN_GRID;
        this.#pos = skip < 0 ? skip + ALIGN_GRID : skip;
      }
      const carry = old === undefined ? 0 : (this.#pending?.pendingBytes ?? 0);
      if (carry > 0 && carry <= MAX_CARRY) {
        this.#pending!.movePending(arena.bytes.subarray(this.#pos, this.#pos + carry));
        this.#pos += carry;
      }
      if (old) unref(old);
    }
    this.#slot = this.#arena.bytes.subarray(this.#pos, Math.min(this.#pos + MAX_READ, ARENA_BYTES));
    return this.#slot;
  };

  /** For onread.callback: the `n` bytes just read into the slot last handed out, as a view. */
  took(n: number): Buffer {
    const slot = this.#slot!;
    if (n > slot.length) throw new Error('read past the slot handed out');
    if (slot.buffer === this.#arena?.bytes.buffer) this.#pos += n;
    return slot.subarray(0, n);
  }

  /** The socket is gone: the reader lets go of its arena (holders keep it until they release). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#arena) unref(this.#arena);
    this.#arena = undefined;
  }
}
