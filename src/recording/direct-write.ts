import { ALIGN_GRID } from '../protocol/read-arenas.js';

/**
 * Direct writes (O_DIRECT) of a segment's bytes straight from the memory they were read into.
 *
 * Why: a buffered write copies every recorded byte into the page cache, and ext4 then does its
 * bookkeeping per 4 KiB block; writing behind (page-cache.ts) keeps those pages few, but the copy
 * and the bookkeeping remained the largest part of what recording cost a fast session
 * (bench/relay.ts, profiled: the write calls, starting writeback and dropping pages, on the same
 * cores as the relay). A direct write hands the pages of guacd's read arenas to the disk as they
 * are: no copy on our side at all.
 *
 * The price is alignment: the file offset, the length and every memory piece of a direct write
 * must sit on the device's grid. recgw uses 4096 for all three (no Linux file system or disk
 * asks for more), so a piece of memory can be written directly only where its address and its
 * place in the file agree modulo 4096. The relay arranges that (ArenaReader.alignTo places each
 * fresh arena's first byte on the grid of the file offset it will be recorded at), so the bytes
 * of one arena usually are; where they are not (a roll, a mouse line added, a stream left out),
 * and around the seams between pieces, the 4 KiB blocks concerned are copied into an aligned
 * bounce buffer instead. Live sessions, which write a few hundred bytes at a time, never come
 * here: only a write of at least DIRECT_MIN_BYTES does (segment-writer.ts).
 */

/** The grid: file offsets, lengths and memory of a direct write are multiples of this. */
export const DIRECT_BLOCK = ALIGN_GRID;

/** What the native addon (native/page-cache) tells about memory. */
export interface DirectWriteSupport {
  /** Where `bytes` starts in memory, modulo DIRECT_BLOCK. */
  addressPhase(bytes: Uint8Array): number;
}

/** A direct write ready to go: `iovecs` hold exactly `bytes` bytes, all on the grid. */
export interface DirectWritePlan {
  iovecs: Buffer[];
  /** A multiple of DIRECT_BLOCK; 0 when not one whole block could be planned. */
  bytes: number;
  /** Of `bytes`, how many were copied into the bounce buffer. */
  bounced: number;
}

/**
 * Plans a direct write of the bytes queued in `pieces`, starting `head` bytes into pieces[0],
 * at a file offset on the grid: as many whole blocks as are queued, at most `maxBytes` (a
 * multiple of DIRECT_BLOCK) and `maxIovecs` pieces. Blocks whose bytes lie in one piece at an
 * address on the grid are written from that piece; every other block is copied into `bounce`
 * (aligned, a multiple of DIRECT_BLOCK long), and planning stops when that is full. The bytes
 * after the last whole block stay for a later write.
 */
export function planDirectWrite(
  pieces: readonly Buffer[],
  head: number,
  maxBytes: number,
  maxIovecs: number,
  bounce: Buffer,
  support: DirectWriteSupport,
): DirectWritePlan {
  let queued = -head;
  for (let i = 0; i < pieces.length && queued < maxBytes; i++) queued += pieces[i]!.length;
  const limit = Math.min(maxBytes, queued - (queued % DIRECT_BLOCK));
  const iovecs: Buffer[] = [];
  let planned = 0;
  let bounced = 0;
  let k = 0;
  let off = head;
  /** Where pieces[k]'s phase was read, and the phase: one native call per piece. */
  let phaseOf = -1;
  let phase = 0;
  while (planned < limit) {
    const piece = pieces[k]!;
    if (phaseOf !== k) {
      phase = support.addressPhase(piece);
      phaseOf = k;
    }
    // At a block boundary of the file: direct when this piece is on the grid here and, with the
    // pieces that directly follow it in the same memory (one arena's reads), holds a block.
    if ((phase + off) % DIRECT_BLOCK === 0) {
      const want = limit - planned;
      let span = piece.length - off;
      for (let j = k; span < want && j + 1 < pieces.length; j++) {
        const a = pieces[j]!;
        const b = pieces[j + 1]!;
        if (b.buffer !== a.buffer || b.byteOffset !== a.byteOffset + a.length) break;
        span += b.length;
      }
      if (span >= DIRECT_BLOCK) {
        if (iovecs.length === maxIovecs) break;
        const n = Math.min(span - (span % DIRECT_BLOCK), want);
        iovecs.push(Buffer.from(piece.buffer, piece.byteOffset + off, n));
        planned += n;
        for (let m = n; m > 0; ) {
          const rest = pieces[k]!.length - off;
          if (m < rest) {
            off += m;
            break;
          }
          m -= rest;
          k++;
          off = 0;
        }
        continue;
      }
    }
    // One block through the bounce buffer, from as many pieces as it takes.
    if (bounced + DIRECT_BLOCK > bounce.length) break;
    const last = iovecs.length > 0 ? iovecs[iovecs.length - 1]! : undefined;
    const extendsLast = last !== undefined && last.buffer === bounce.buffer && last.byteOffset + last.length === bounce.byteOffset + bounced;
    if (!extendsLast && iovecs.length === maxIovecs) break;
    let need = DIRECT_BLOCK;
    let at = bounced;
    while (need > 0) {
      const p = pieces[k]!;
      const take = Math.min(need, p.length - off);
      p.copy(bounce, at, off, off + take);
      at += take;
      need -= take;
      off += take;
      if (off === p.length) {
        k++;
        off = 0;
      }
    }
    if (extendsLast) iovecs[iovecs.length - 1] = bounce.subarray(last.byteOffset - bounce.byteOffset, at);
    else iovecs.push(bounce.subarray(bounced, at));
    bounced = at;
    planned += DIRECT_BLOCK;
  }
  return { iovecs, bytes: planned, bounced };
}

/**
 * An aligned buffer of `bytes` (a multiple of DIRECT_BLOCK) for planDirectWrite's bounce blocks.
 */
export function allocateBounce(bytes: number, support: DirectWriteSupport): Buffer {
  const raw = Buffer.allocUnsafeSlow(bytes + DIRECT_BLOCK);
  const skip = (DIRECT_BLOCK - support.addressPhase(raw)) % DIRECT_BLOCK;
  return raw.subarray(skip, skip + bytes);
}
