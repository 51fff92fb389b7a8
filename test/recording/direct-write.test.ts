import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARENA_BYTES, ArenaReader } from '../../src/protocol/read-arenas.js';
import { allocateBounce, DIRECT_BLOCK, planDirectWrite, type DirectWriteSupport } from '../../src/recording/direct-write.js';
import { directWrites, pageCache, type PageCacheAdvice } from '../../src/recording/page-cache.js';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import { directIoHere } from '../support/direct-io.js';
import { sha256, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());
const MiB = 1024 * 1024;

/** The addon is built for the tests (pretest); page-cache.test.ts checks that it loads. */
function support(): DirectWriteSupport {
  expect(directWrites).toBeDefined();
  return directWrites!;
}

/** A small deterministic generator, so a failing layout can be run again. */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

interface Layout {
  stream: Buffer;
  pieces: Buffer[];
  /** Where a view of one of the pieces' memory lies in the stream (the file). */
  fileOffsetOf: (view: Uint8Array) => number;
}

/**
 * `total` bytes laid out the way the relay hands them to a segment writer: runs in 128 KiB
 * arenas, each placed so its bytes sit on the grid of their file offsets (as ArenaReader.alignTo
 * places them), cut into consecutive pieces; now and then a small piece from elsewhere (a mouse
 * line) or a run placed off the grid (after a roll or a left-out stream), per `offGrid` (0..1).
 */
function layout(total: number, seed: number, offGrid: number, s: DirectWriteSupport): Layout {
  const rand = random(seed);
  const stream = randomBytes(total);
  const pieces: Buffer[] = [];
  /** Per memory block: the file offset its byte 0 would have. */
  const base = new Map<ArrayBufferLike, number>();
  let pos = 0;
  while (pos < total) {
    if (rand(100) < 10) {
      const n = Math.min(total - pos, 1 + rand(200));
      const small = Buffer.allocUnsafeSlow(n); // memory of its own (not the pool), for fileOffsetOf
      stream.copy(small, 0, pos, pos + n);
      base.set(small.buffer, pos - small.byteOffset);
      pieces.push(small);
      pos += n;
      continue;
    }
    const arena = allocateBounce(ARENA_BYTES, s);
    const placed = rand(1000) >= offGrid * 1000;
    const start = placed ? pos % DIRECT_BLOCK : rand(DIRECT_BLOCK);
    // Most arenas are read full; some end early (a session's last read, a pause).
    const room = ARENA_BYTES - start;
    const n = Math.min(total - pos, rand(4) === 0 ? 1 + rand(room) : room - rand(16 * 1024));
    stream.copy(arena, start, pos, pos + n);
    base.set(arena.buffer, pos - (arena.byteOffset + start));
    // Consecutive reads of one arena: adjacent views, as the tap queues them.
    for (let at = 0; at < n; ) {
      const len = Math.min(n - at, 1 + rand(64 * 1024));
      pieces.push(arena.subarray(start + at, start + at + len));
      at += len;
    }
    pos += n;
  }
  return { stream, pieces, fileOffsetOf: (view) => base.get(view.buffer)! + view.byteOffset };
}

describe('planDirectWrite', () => {
  it.each([
    ['arenas on the grid', 1, 0],
    ['a third of the arenas off the grid', 2, 0.33],
    ['every arena off the grid', 3, 1],
  ])('covers the stream exactly, every piece on the grid (%s)', (_name, seed, offGrid) => {
    const s = support();
    const { stream, pieces } = layout(12 * MiB + 777, seed, offGrid, s);
    const bounce = allocateBounce(256 * 1024, s);
    let queue = pieces;
    let head = 0;
    let pos = 0;
    let bounced = 0;
    let writes = 0;
    for (;;) {
      const plan = planDirectWrite(queue, head, 4 * MiB, 1024, bounce, s);
      if (plan.bytes === 0) break;
      writes++;
      expect(plan.bytes % DIRECT_BLOCK).toBe(0);
      expect(plan.bytes).toBeLessThanOrEqual(4 * MiB);
      for (const v of plan.iovecs) {
        expect(s.addressPhase(v)).toBe(0);
        expect(v.length % DIRECT_BLOCK).toBe(0);
      }
      const bytes = Buffer.concat(plan.iovecs);
      expect(bytes.length).toBe(plan.bytes);
      expect(bytes.equals(stream.subarray(pos, pos + plan.bytes))).toBe(true);
      expect(plan.bounced).toBe(plan.iovecs.filter((v) => v.buffer === bounce.buffer).reduce((n, v) => n + v.length, 0));
      bounced += plan.bounced;
      pos += plan.bytes;
      // What the writer does after the write: drop whole pieces, keep the rest of a cut one.
      let left = plan.bytes;
      let k = 0;
      while (left > 0 && left >= queue[k]!.length - head) {
        left -= queue[k]!.length - head;
        head = 0;
        k++;
      }
      head += left;
      queue = queue.slice(k);
    }
    // Everything but the last partial block went, in writes of at most 4 MiB.
    expect(pos).toBe(stream.length - (stream.length % DIRECT_BLOCK));
    expect(writes).toBeGreaterThanOrEqual(3);
    if (offGrid === 0) {
      // Only the blocks around seams were copied: a few percent of the bytes.
      expect(bounced).toBeLessThan(pos * 0.1);
    } else if (offGrid === 1) {
      // Off the grid nothing can go directly: every block was copied.
      expect(bounced / pos).toBeGreaterThan(0.9);
    }
  });

  it('stops where the bounce buffer or the iovec limit runs out, and plans nothing for less than a block', () => {
    const s = support();
    const { pieces } = layout(2 * MiB, 4, 1, s);
    const small = allocateBounce(2 * DIRECT_BLOCK, s);
    const plan = planDirectWrite(pieces, 0, 4 * MiB, 1024, small, s);
    expect(plan.bytes).toBe(2 * DIRECT_BLOCK);
    expect(plan.bounced).toBe(2 * DIRECT_BLOCK);
    const onGrid = layout(2 * MiB, 5, 0, s);
    const few = planDirectWrite(onGrid.pieces, 0, 4 * MiB, 3, allocateBounce(64 * 1024, s), s);
    expect(few.iovecs.length).toBeLessThanOrEqual(3);
    expect(few.bytes).toBeGreaterThan(0);
    expect(planDirectWrite([Buffer.alloc(DIRECT_BLOCK - 1)], 0, 4 * MiB, 1024, small, s).bytes).toBe(0);
    expect(planDirectWrite([Buffer.alloc(DIRECT_BLOCK + 10)], 11, 4 * MiB, 1024, small, s).bytes).toBe(0);
  });
});

/** Appends the layout's pieces a few at a time, across event-loop turns, as reads arrive. */
async function feed(w: SegmentWriter, pieces: Buffer[]): Promise<void> {
  for (let i = 0; i < pieces.length; i++) {
    w.append(pieces[i]!);
    if (i % 8 === 7) await new Promise((r) => setImmediate(r));
  }
}

describe('SegmentWriter with direct writes', () => {
  it('writes a fast stream exactly, most of it straight from the pieces where the file system takes it', async () => {
    const s = support();
    const here = directIoHere(spool.dir, s);
    const { stream, pieces } = layout(24 * MiB + 123, 6, 0.1, s);
    const path = join(spool.dir, 'direct.guac');
    const w = new SegmentWriter(path, { direct: s });
    await feed(w, pieces);
    const done = await w.finish();
    const file = readFileSync(path);
    expect(file.equals(stream)).toBe(true);
    expect(done.bytes).toBe(stream.length);
    expect(done.sha256).toBe(sha256(stream));
    if (here === 'none') {
      expect(done.directBytes).toBe(0);
    } else {
      // This feed outruns the disk at times; a backlog over 16 MiB goes buffered.
      expect(done.directBytes).toBeGreaterThan(stream.length / 2);
      // A tenth of the arenas off the grid, small pieces and seams: copied; the rest was not.
      expect(done.bouncedBytes).toBeGreaterThan(0);
      expect(done.bouncedBytes).toBeLessThan(done.directBytes * 0.3);
    }
  });

  it('falls back to buffered writes, losing nothing, where the file system refuses the alignment', async () => {
    const s = support();
    const here = directIoHere(spool.dir, s);
    // Memory off the grid, and a support that says every piece is on it: its direct writes come
    // from misaligned memory, which a disk refuses (EINVAL) before writing anything.
    const { stream, pieces, fileOffsetOf } = layout(8 * MiB + 5, 7, 1, s);
    const lying: DirectWriteSupport = {
      addressPhase: (b) => (pieces.some((p) => p.buffer === b.buffer) ? fileOffsetOf(b) % DIRECT_BLOCK : s.addressPhase(b)),
    };
    const path = join(spool.dir, 'refused.guac');
    const w = new SegmentWriter(path, { direct: lying });
    await feed(w, pieces);
    const done = await w.finish();
    expect(readFileSync(path).equals(stream)).toBe(true);
    expect(done.bytes).toBe(stream.length);
    expect(done.error).toBeUndefined();
    if (here !== 'any') expect(done.directBytes).toBe(0);
  });

  it('writes a backlog beyond 16 MiB buffered until it is down, so a slow disk cannot end the session', async () => {
    const s = support();
    const here = directIoHere(spool.dir, s);
    const { stream, pieces } = layout(40 * MiB, 10, 0, s);
    const path = join(spool.dir, 'backlog.guac');
    const w = new SegmentWriter(path, { direct: s });
    // All at once: 40 MiB wait before the first write.
    for (const p of pieces) w.append(p);
    const done = await w.finish();
    expect(readFileSync(path).equals(stream)).toBe(true);
    if (here === 'none') {
      expect(done.directBytes).toBe(0);
    } else {
      // 4 MiB buffered writes bring 40 MiB down to 16; the rest goes directly.
      expect(done.directBytes).toBeGreaterThan(12 * MiB);
      expect(done.directBytes).toBeLessThanOrEqual(16 * MiB);
    }
  });

  it('asks for page-cache advice only per 8 MiB written buffered, not for what went directly', async () => {
    const s = support();
    expect(pageCache).toBeDefined();
    let calls = 0;
    const counting: PageCacheAdvice = {
      addonPath: pageCache!.addonPath,
      flushBehind: (...args) => {
        calls++;
        return pageCache!.flushBehind(...args);
      },
    };
    const { stream, pieces } = layout(48 * MiB, 11, 0, s);
    const path = join(spool.dir, 'advice.guac');
    const w = new SegmentWriter(path, { direct: s, pageCache: counting });
    await feed(w, pieces);
    const done = await w.finish();
    expect(readFileSync(path).equals(stream)).toBe(true);
    const buffered = done.bytes - done.directBytes;
    // One call per 8 MiB written buffered at most (written behind as before); written directly,
    // 48 MiB used to mean six.
    expect(calls).toBeLessThanOrEqual(Math.floor(buffered / (8 * MiB)));
    if (done.directBytes > 40 * MiB) expect(calls).toBeLessThanOrEqual(1);
  });

  it('writes live-sized appends buffered: no direct write below 256 KiB pending', async () => {
    const s = support();
    const path = join(spool.dir, 'live.guac');
    const w = new SegmentWriter(path, { direct: s });
    const parts: Buffer[] = [];
    for (let k = 0; k < 300; k++) {
      const b = Buffer.from(`4.sync,${String(k).length}.${k};3.img,1.1,${'x'.repeat(4000)};`);
      parts.push(b);
      w.append(b);
      await new Promise((r) => setTimeout(r, k % 50 === 0 ? 30 : 0));
    }
    const done = await w.finish();
    expect(readFileSync(path).equals(Buffer.concat(parts))).toBe(true);
    expect(done.directBytes).toBe(0);
  });
});

describe('ArenaReader.alignTo', () => {
  it("places a fresh arena's first byte, and an instruction carried into it, on the grid of its file offset", () => {
    const s = support();
    const carried = Buffer.from('4.blob,1.1,12.partial-data');
    let next = 12_345;
    const pending = {
      pendingBytes: 0,
      movePending: (target: Buffer) => {
        carried.copy(target);
      },
    };
    const reader = new ArenaReader(pending);
    reader.alignTo({ nextOffset: () => next, addressPhase: (b) => s.addressPhase(b) });
    let slot = reader.nextSlot();
    expect(s.addressPhase(slot)).toBe(next % DIRECT_BLOCK);
    const first = slot;
    // Fill the arena until the next read needs a fresh one, with an instruction left incomplete.
    reader.took(slot.length);
    slot = reader.nextSlot();
    expect(slot.buffer).toBe(first.buffer);
    reader.took(slot.length);
    next = 777_777;
    pending.pendingBytes = carried.length;
    slot = reader.nextSlot();
    expect(slot.buffer).not.toBe(first.buffer);
    // The carried bytes sit right before the slot, starting on the grid of `next`.
    const carry = Buffer.from(slot.buffer, slot.byteOffset - carried.length, carried.length);
    expect(carry.equals(carried)).toBe(true);
    expect(s.addressPhase(carry)).toBe(next % DIRECT_BLOCK);
    expect(slot.length).toBe(64 * 1024);
    reader.took(0);
    reader.close();
  });
});
