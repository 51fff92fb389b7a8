import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuacamoleParser, type Instruction } from '../../src/protocol/index.js';
import { ARENA_BYTES, ArenaReader, holdBytes, releaseBytes, setArenaPoisoning } from '../../src/protocol/read-arenas.js';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import { tempSpool } from '../recording/helpers.js';

const spool = tempSpool();
beforeAll(() => setArenaPoisoning(true));
afterAll(() => {
  setArenaPoisoning(false);
  spool.cleanup();
});

/** Simulates one socket read of `data` through the reader, as net's onread does. */
function read(reader: ArenaReader, data: Buffer): Buffer {
  const slot = reader.nextSlot();
  expect(data.length).toBeLessThanOrEqual(slot.length);
  data.copy(slot);
  return reader.took(data.length);
}

describe('ArenaReader', () => {
  it('puts consecutive reads side by side in one arena, then starts a fresh one', () => {
    const reader = new ArenaReader();
    const a = read(reader, Buffer.alloc(40_000, 0x61));
    const b = read(reader, Buffer.alloc(50_000, 0x62));
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + a.length);
    // Less than a useful read is left after this one: the next goes to another arena.
    const c = read(reader, Buffer.alloc(ARENA_BYTES - 90_000 - 1000, 0x63).subarray(0, Math.min(ARENA_BYTES - 90_000 - 1000, 64 * 1024)));
    expect(c.buffer).toBe(a.buffer);
    const d = read(reader, Buffer.from('x'));
    // A fresh start; nothing held the old arena, so it may well be the same memory again.
    expect(d.byteOffset).toBe(0);
    reader.close();
  });

  it('reuses an arena only after every hold on it is released, and poisons it then', () => {
    const reader = new ArenaReader();
    const first = read(reader, Buffer.from('4.sync,1.1;'));
    holdBytes(first); // e.g. a frame still being sent
    reader.close(); // the socket is gone; the hold keeps the arena
    const other = new ArenaReader();
    const slot = other.nextSlot();
    expect(slot.buffer).not.toBe(first.buffer);
    expect(first.toString()).toBe('4.sync,1.1;');
    other.close();
    releaseBytes(first);
    expect(first.toString()).toBe('!'.repeat(first.length)); // freed: poisoned, so late use shows
    const third = new ArenaReader();
    expect(third.nextSlot().buffer).toBe(first.buffer); // and reused
    third.close();
  });

  it('refuses a release without a hold (poisoning on, as in tests)', () => {
    const reader = new ArenaReader();
    const bytes = read(reader, Buffer.from('3.nop;'));
    reader.close();
    expect(() => releaseBytes(bytes)).toThrow(/released more often than held/);
  });

  it('ignores buffers that are not from an arena', () => {
    const plain = Buffer.from('4.sync,1.1;');
    holdBytes(plain);
    releaseBytes(plain);
    releaseBytes(plain);
    expect(plain.toString()).toBe('4.sync,1.1;');
  });
});

describe('GuacamoleParser over read arenas', () => {
  it('gives an instruction split across reads of one arena as one view, without a copy', () => {
    const reader = new ArenaReader();
    const got: Instruction[] = [];
    const parser = new GuacamoleParser((ins) => got.push(ins));
    const text = '4.sync,4.1234;3.img,5.hello;';
    const first = read(reader, Buffer.from(text.slice(0, 20)));
    parser.push(first);
    parser.push(read(reader, Buffer.from(text.slice(20))));
    expect(got.map((i) => i.raw.toString())).toEqual(['4.sync,4.1234;', '3.img,5.hello;']);
    expect(got[1]!.raw.buffer).toBe(first.buffer);
    reader.close();
  });

  it('keeps the arena of a pending partial instruction from reuse until it completes', () => {
    const reader = new ArenaReader();
    const got: string[] = [];
    const parser = new GuacamoleParser((ins) => got.push(ins.raw.toString()));
    // Nearly fill the arena, the last read ending in `5.mouse,` (pending): the next read
    // starts a fresh arena.
    const blob = (n: number): string => `4.blob,1.0,${n}.${'A'.repeat(n)};`;
    parser.push(read(reader, Buffer.from(blob(60_000))));
    parser.push(read(reader, Buffer.from(blob(50_000))));
    const tail = read(reader, Buffer.from(`${blob(5_000)}5.mouse,`));
    expect(ARENA_BYTES - (tail.byteOffset + tail.length)).toBeLessThan(16 * 1024);
    parser.push(tail);
    const next = read(reader, Buffer.from('1.1,1.2,1.0;'));
    expect(next.buffer).not.toBe(tail.buffer); // a fresh arena: the reader let go of the old one
    // Another connection takes arenas meanwhile; it must not get the one holding `5.mouse,`.
    const other = new ArenaReader();
    expect(other.nextSlot().buffer).not.toBe(tail.buffer);
    parser.push(next);
    expect(got.at(-1)).toBe('5.mouse,1.1,1.2,1.0;');
    other.close();
    reader.close();
  });
});

describe('SegmentWriter over read arenas', () => {
  it('writes arena bytes exactly and hands the arena back once they are on the file', async () => {
    const reader = new ArenaReader();
    const path = join(spool.dir, 'arena.guac');
    const w = new SegmentWriter(path);
    await w.opened();
    const parser = new GuacamoleParser((ins) => w.append(ins.raw));
    const text = Array.from({ length: 200 }, (_, k) => `4.sync,${String(k).length}.${k};`).join('');
    for (let off = 0; off < text.length; off += 333) parser.push(read(reader, Buffer.from(text.slice(off, off + 333))));
    const arena = reader.nextSlot().buffer;
    reader.close(); // the socket closes first: the writer's hold keeps the bytes intact
    const other = new ArenaReader();
    expect(other.nextSlot().buffer).not.toBe(arena);
    other.close();
    await w.finish();
    expect(readFileSync(path, 'utf8')).toBe(text);
    const after = new ArenaReader();
    expect(after.nextSlot().buffer).toBe(arena); // written and released: reused
    after.close();
  });
});

describe('ArenaReader with a parser (guacd-client.ts wires them so)', () => {
  const blob = (n: number): string => `4.blob,1.0,${n}.${'A'.repeat(n)};`;

  it('moves an instruction cut by the end of an arena to the front of the next, so it stays one view', () => {
    const got: Instruction[] = [];
    const parser = new GuacamoleParser((ins) => got.push(ins));
    const reader = new ArenaReader(parser);
    parser.push(read(reader, Buffer.from(blob(60_000))));
    parser.push(read(reader, Buffer.from(blob(50_000))));
    const cut = blob(9_000);
    const tail = read(reader, Buffer.from(`${blob(5_000)}${cut.slice(0, 4_000)}`));
    parser.push(tail);
    expect(parser.pendingBytes).toBe(4_000);
    const next = read(reader, Buffer.from(`${cut.slice(4_000)}3.nop;`));
    expect(next.buffer).not.toBe(tail.buffer); // a fresh arena ...
    expect(next.byteOffset).toBe(4_000); // ... whose front holds the moved start
    // The old arena is no longer held by anyone: freed (poisoned) and taken by the next reader.
    const other = new ArenaReader();
    expect(other.nextSlot().buffer).toBe(tail.buffer);
    parser.push(next);
    const moved = got.at(-2)!;
    expect(moved.raw.toString()).toBe(cut);
    expect(moved.raw.buffer).toBe(next.buffer); // one view, not a joined copy
    expect(moved.raw.byteOffset).toBe(0);
    expect(got.at(-1)!.raw.toString()).toBe('3.nop;');
    other.close();
    reader.close();
  });

  it('leaves an instruction too long to move where it is and joins it as before', () => {
    const got: string[] = [];
    const parser = new GuacamoleParser((ins) => got.push(ins.raw.toString()));
    const reader = new ArenaReader(parser);
    const big = blob(119_990); // 120 010 bytes: two reads nearly fill the arena
    parser.push(read(reader, Buffer.from(big.slice(0, 60_000))));
    parser.push(read(reader, Buffer.from(big.slice(60_000, 120_000))));
    const next = read(reader, Buffer.from(big.slice(120_000)));
    expect(next.byteOffset).toBe(0); // nothing moved: 120 000 bytes would not leave room for a read
    parser.push(next);
    expect(got).toEqual([big]);
    reader.close();
  });

  it('refuses a target of the wrong size', () => {
    const parser = new GuacamoleParser(() => undefined);
    parser.push(Buffer.from('4.sync,'));
    expect(() => parser.movePending(Buffer.alloc(3))).toThrow(RangeError);
  });
});
