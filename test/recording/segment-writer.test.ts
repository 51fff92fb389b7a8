import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import { writeWindow } from '../../src/recording/write-window.js';
import { sha256, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

describe('SegmentWriter', () => {
  it('writes small and chunk-sized buffers in order across event-loop turns, hashing as it goes', async () => {
    const path = join(spool.dir, 'mixed.guac');
    const w = new SegmentWriter(path, { maxPieces: 3 });
    await w.opened();
    const parts: Buffer[] = [];
    for (let k = 0; k < 200; k++) {
      const b = Buffer.from(k % 17 === 0 ? `4.blob,1.1,100.${'x'.repeat(100)};` : `4.sync,${String(k).length}.${k};`);
      parts.push(b);
      w.append(b);
      if (k % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(w.bytes).toBe(Buffer.concat(parts).length);
    const done = await w.finish();
    w.append(Buffer.from('4.sync,1.0;')); // after finish: ignored
    const file = readFileSync(path);
    expect(file.equals(Buffer.concat(parts))).toBe(true);
    expect(done).toEqual({ bytes: file.length, sha256: sha256(file), directBytes: 0, bouncedBytes: 0 });
    expect(w.committedBytes).toBe(file.length);
    expect(w.pendingBytes).toBe(0);
    expect(await w.finish()).toBe(done); // idempotent
  });

  it('writes slices of shared parent buffers (with gaps, interleaved, more pieces than IOV_MAX) exactly, before finish()', async () => {
    const path = join(spool.dir, 'slices.guac');
    const w = new SegmentWriter(path);
    await w.opened();
    // Two "socket chunks" of instructions; every third instruction of chunk A is left out (a gap),
    // and chunk B's slices are interleaved with A's, so adjacency must be checked per parent.
    const make = (tag: string, n: number): { parent: Buffer; slices: Buffer[] } => {
      const texts = Array.from({ length: n }, (_, k) => `3.img,${String(k).length}.${k},${tag.length}.${tag};`);
      const parent = Buffer.from(texts.join(''));
      const slices: Buffer[] = [];
      let at = 0;
      for (const t of texts) {
        slices.push(parent.subarray(at, at + t.length));
        at += t.length;
      }
      return { parent, slices };
    };
    const a = make('a', 3000);
    const b = make('bb', 3000);
    const expected: Buffer[] = [];
    for (let k = 0; k < 3000; k++) {
      if (k % 3 !== 2) {
        w.append(a.slices[k]!);
        expected.push(a.slices[k]!);
      }
      if (k % 500 < 300) {
        // runs of B long enough to join, broken up by A often enough to pass 1024 pieces in one turn
        w.append(b.slices[k]!);
        expected.push(b.slices[k]!);
      }
    }
    const want = Buffer.concat(expected);
    expect(w.pendingBytes).toBe(want.length);
    // The bytes reach the OS within a few event-loop turns, without finish() (the deadline is
    // only there to end the wait on a machine that is very busy).
    const deadline = Date.now() + 10_000;
    // (The bytes can be in the file a moment before the write's completion reaches this thread,
    // so wait for both.)
    while ((readFileSync(path).length < want.length || w.pendingBytes > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(readFileSync(path).equals(want)).toBe(true);
    expect(w.pendingBytes).toBe(0);
    expect(w.committedBytes).toBe(want.length);
    const done = await w.finish();
    expect(done).toEqual({ bytes: want.length, sha256: sha256(want), directBytes: 0, bouncedBytes: 0 });
  });

  it('reports ENOSPC once and says nothing reached the file', async () => {
    const path = join(spool.dir, 'full.guac');
    symlinkSync('/dev/full', path);
    const w = new SegmentWriter(path);
    const errors: string[] = [];
    w.onError((e) => errors.push(e.code ?? ''));
    w.append(Buffer.from('4.sync,1.1;'));
    w.append(Buffer.from('4.sync,1.2;'));
    const done = await w.finish();
    expect(errors).toEqual(['ENOSPC']);
    expect(done.bytes).toBe(0);
    expect(done.error?.code).toBe('ENOSPC');
    expect(w.failed).toBe(true);
    await w.discard();
  });

  it('writes nothing before the previous segment has written all of its bytes, and nothing at all if it could not', async () => {
    // The previous segment: its bytes go to /dev/full, so its last write fails.
    const fullPath = join(spool.dir, 'prev-full.guac');
    symlinkSync('/dev/full', fullPath);
    const prevFailing = new SegmentWriter(fullPath);
    prevFailing.append(Buffer.from('4.sync,1.1;'));
    const afterFailed = new SegmentWriter(join(spool.dir, 'after-failed.guac'), { after: prevFailing.written() });
    const errors: string[] = [];
    afterFailed.onError((e) => errors.push(e.code ?? ''));
    afterFailed.append(Buffer.from('4.sync,1.2;'));
    await prevFailing.finish();
    expect(await prevFailing.written()).toBe(false);
    const done = await afterFailed.finish();
    expect(errors).toEqual(['ECANCELED']);
    expect(done.bytes).toBe(0);
    expect(readFileSync(join(spool.dir, 'after-failed.guac')).length).toBe(0);
    await afterFailed.discard();
    await prevFailing.discard();

    // A previous segment still writing: the next one's bytes wait in memory, then follow.
    let release!: (ok: boolean) => void;
    const gate = new Promise<boolean>((resolve) => (release = resolve));
    const path = join(spool.dir, 'after-gate.guac');
    const waiting = new SegmentWriter(path, { after: gate, minWriteBytes: 1 });
    waiting.append(Buffer.from('4.sync,1.3;'));
    await new Promise((r) => setTimeout(r, 50));
    expect(waiting.committedBytes).toBe(0);
    expect(readFileSync(path).length).toBe(0);
    release(true);
    const written = await waiting.finish();
    expect(readFileSync(path, 'utf8')).toBe('4.sync,1.3;');
    expect(written.bytes).toBe(11);
    expect(await waiting.written()).toBe(true);
  });

  it('has the small writes of all its files wait in one window, so they are written together', async () => {
    const window = writeWindow(25);
    const before = window.size;
    const a = new SegmentWriter(join(spool.dir, 'window-a.guac'));
    const b = new SegmentWriter(join(spool.dir, 'window-b.guac'));
    await Promise.all([a.opened(), b.opened()]);
    a.append(Buffer.from('4.sync,1.1;'));
    b.append(Buffer.from('4.sync,1.2;'));
    a.append(Buffer.from('4.sync,1.3;')); // already waiting
    expect(window.size).toBe(before + 2);
    // Written when the window closes, without finish().
    while (a.pendingBytes + b.pendingBytes > 0 || a.committedBytes + b.committedBytes < 33) await new Promise((r) => setTimeout(r, 5));
    expect(window.size).toBe(before);
    expect(readFileSync(a.path, 'utf8')).toBe('4.sync,1.1;4.sync,1.3;');
    expect(readFileSync(b.path, 'utf8')).toBe('4.sync,1.2;');
    // A file finished while it waits leaves the window.
    b.append(Buffer.from('4.sync,1.4;'));
    expect(window.size).toBe(before + 1);
    await b.finish();
    expect(window.size).toBe(before);
    expect(readFileSync(b.path, 'utf8')).toBe('4.sync,1.2;4.sync,1.4;');
    await a.finish();
  });
});
