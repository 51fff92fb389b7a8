import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import { sha256, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

describe('SegmentWriter', () => {
  it('writes small and chunk-sized buffers in order across event-loop turns, hashing as it goes', async () => {
    const path = join(spool.dir, 'mixed.guac');
    const w = new SegmentWriter(path, { chunkBytes: 64, batchChunks: 3 });
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
    expect(done).toEqual({ bytes: file.length, sha256: sha256(file) });
    expect(w.committedBytes).toBe(file.length);
    expect(w.pendingBytes).toBe(0);
    expect(await w.finish()).toBe(done); // idempotent
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
});
