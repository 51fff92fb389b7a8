import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256OfFile } from '../../src/recording/file-hasher.js';
import { allocateBounce } from '../../src/recording/direct-write.js';
import { directWrites, pageCache, pageCacheStatus, type PageCacheAdvice } from '../../src/recording/page-cache.js';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import { sha256 } from './helpers.js';

const MiB = 1024 * 1024;
const TMPFS_MAGIC = 0x01021994;

/**
 * A folder on a disk file system: tmpfs pages are the file itself and cannot be dropped, so on a
 * machine whose /tmp is tmpfs the files go under ./data (ignored by git) instead.
 */
function diskFolder(): { dir: string; cleanup: () => void } {
  const base = statfsSync(tmpdir()).type === TMPFS_MAGIC ? join(process.cwd(), 'data') : tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'recgw-page-cache-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Bytes of `path` in the page cache, as util-linux's fincore counts them. */
function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

/**
 * Appends `data` in 256 KiB pieces, each a buffer of its own as socket reads are (slices of one
 * buffer would be joined into a single write), a turn of the event loop between pieces.
 */
async function writeThrough(w: SegmentWriter, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 256 * 1024) {
    w.append(Buffer.from(data.subarray(at, Math.min(data.length, at + 256 * 1024))));
    await new Promise((r) => setImmediate(r));
  }
  while (w.pendingBytes > 0) await new Promise((r) => setTimeout(r, 5));
}

const folder = diskFolder();
afterAll(() => folder.cleanup());
const onLinux = process.platform === 'linux';

describe('native/page-cache', () => {
  it.runIf(onLinux)('is built and loaded on Linux (npm ci builds it; npm test builds it when missing)', () => {
    expect(pageCacheStatus).toBe('on');
    expect(pageCache).toBeDefined();
    expect(directWrites).toBeDefined();
  });

  it.runIf(onLinux)('tells where memory starts on the 4096 grid, for direct writes', () => {
    const aligned = allocateBounce(8192, directWrites!);
    expect(directWrites!.addressPhase(aligned)).toBe(0);
    expect(directWrites!.addressPhase(aligned.subarray(1))).toBe(1);
    expect(directWrites!.addressPhase(aligned.subarray(4097))).toBe(1);
    expect(directWrites!.addressPhase(new Uint8Array(aligned.buffer, aligned.byteOffset + 12, 2))).toBe(12);
    expect(() => directWrites!.addressPhase({} as Uint8Array)).toThrow(TypeError);
  });

  it.runIf(onLinux)('refuses bad arguments with a TypeError and reports a bad descriptor as EBADF', async () => {
    const addon = createRequire(import.meta.url)(pageCache!.addonPath) as {
      flushBehind: (...args: unknown[]) => void;
      dropCachedSync: (...args: unknown[]) => number;
    };
    expect(() => addon.flushBehind(1, 0, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.flushBehind(-1, 0, 0, 0, 0, () => undefined)).toThrow(/file descriptor/);
    expect(() => addon.flushBehind(1, 0.5, 0, 0, 0, () => undefined)).toThrow(/whole numbers/);
    expect(() => addon.dropCachedSync(1, 'x', 0)).toThrow(TypeError);
    const path = join(folder.dir, 'closed.guac');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r');
    closeSync(fd);
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => addon.flushBehind(fd, 0, 4096, 0, 4096, resolve));
    expect(err).toMatchObject({ code: 'EBADF', syscall: 'sync_file_range' });
    expect(addon.dropCachedSync(fd, 0, 0)).toBe(9 /* EBADF */);
  });

  it.runIf(onLinux)('keeps a segment being written to a few MiB of cache, and none of it once sealed', async () => {
    const data = randomBytes(48 * MiB);
    const behind = new SegmentWriter(join(folder.dir, 'behind.guac'), { pageCache });
    const plain = new SegmentWriter(join(folder.dir, 'plain.guac'));
    await writeThrough(behind, data);
    await writeThrough(plain, data);
    // Written, not yet sealed: the plain file is in the cache (the kernel had no reason to evict
    // it; a VM that pages out cold memory on its own, as this one does with DAMON, may take a
    // little), the one written behind only its last steps (two of 8 MiB, plus what was not clean
    // yet when its step came).
    expect(residentBytes(plain.path)).toBeGreaterThan(36 * MiB);
    expect(residentBytes(behind.path)).toBeLessThan(32 * MiB);
    const [b, p] = await Promise.all([behind.finish(), plain.finish()]);
    expect(b).toEqual({ bytes: data.length, sha256: sha256(data), directBytes: 0, bouncedBytes: 0 });
    expect(p).toEqual(b);
    // Sealed: hashing read it back and dropped it as it went; nothing of it stays cached.
    expect(residentBytes(behind.path)).toBeLessThan(MiB);
    expect(readFileSync(behind.path).equals(data)).toBe(true);
  });

  it.runIf(onLinux)('has the hash worker drop a file behind its read only when asked', async () => {
    const data = randomBytes(24 * MiB);
    const kept = join(folder.dir, 'kept.guac');
    const dropped = join(folder.dir, 'dropped.guac');
    // Written and fsynced, as a sealed segment is: dirty pages are never dropped.
    for (const path of [kept, dropped]) {
      const fd = openSync(path, 'w');
      writeSync(fd, data);
      fsyncSync(fd);
      closeSync(fd);
    }
    expect(await sha256OfFile(kept, data.length)).toBe(sha256(data));
    expect(await sha256OfFile(dropped, data.length, { dropCache: true })).toBe(sha256(data));
    // Kept: still in the cache (all of it, unless the VM paged a little out on its own).
    expect(residentBytes(kept)).toBeGreaterThanOrEqual((data.length * 3) / 4);
    expect(residentBytes(dropped)).toBeLessThan(MiB);
  });
});

/** Advice that records its calls; `busy` makes it answer as if another file's call were running. */
function recordingAdvice(): PageCacheAdvice & { calls: number[][]; busy: boolean; failNext: boolean } {
  const advice = {
    addonPath: '',
    calls: [] as number[][],
    busy: false,
    failNext: false,
    flushBehind(fd: number, writeOffset: number, writeLength: number, dropOffset: number, dropLength: number): Promise<void> | undefined {
      if (advice.busy) return undefined;
      advice.calls.push([writeOffset, writeLength, dropOffset, dropLength]);
      if (advice.failNext) {
        advice.failNext = false;
        return Promise.reject(Object.assign(new Error('sync_file_range: Illegal seek'), { code: 'ESPIPE' }));
      }
      return Promise.resolve();
    },
  };
  return advice;
}

describe('SegmentWriter writing behind', () => {
  it('starts writeback of each new 8 MiB step at a page boundary and drops the step before it', async () => {
    const advice = recordingAdvice();
    const w = new SegmentWriter(join(folder.dir, 'steps.guac'), { pageCache: advice });
    const data = Buffer.alloc(40 * MiB + 12345, 0x78);
    // One 256 KiB write at a time, so the steps fall exactly on the 8 MiB marks (writes that a
    // busy machine lets pile up would carry a step up to 4 MiB past its mark: same rules, fewer
    // calls).
    for (let at = 0; at < data.length; at += 256 * 1024) {
      w.append(Buffer.from(data.subarray(at, Math.min(data.length, at + 256 * 1024))));
      while (w.pendingBytes > 0) await new Promise((r) => setTimeout(r, 1));
    }
    expect((await w.finish()).bytes).toBe(data.length);
    expect(advice.calls.map((c) => c[0]! + c[1]!)).toEqual([8, 16, 24, 32, 40].map((m) => m * MiB));
    let flushedTo = 0;
    let droppedTo = 0;
    for (const [writeOffset, writeLength, dropOffset, dropLength] of advice.calls) {
      // Writeback goes on where the last call left off, in whole pages, at least a step at a time...
      expect(writeOffset).toBe(flushedTo);
      expect((writeOffset! + writeLength!) % 4096).toBe(0);
      expect(writeLength).toBeGreaterThanOrEqual(8 * MiB);
      // ...and what is dropped is exactly what the previous call sent to the disk.
      expect([dropOffset, dropOffset! + dropLength!]).toEqual([droppedTo, flushedTo]);
      droppedTo = flushedTo;
      flushedTo = writeOffset! + writeLength!;
    }
    expect(flushedTo).toBeLessThanOrEqual(data.length);
  });

  it('tries again after its next write while another file holds the advice, and gives up on a refusal', async () => {
    const advice = recordingAdvice();
    advice.busy = true;
    const w = new SegmentWriter(join(folder.dir, 'busy.guac'), { pageCache: advice });
    await writeThrough(w, Buffer.alloc(10 * MiB, 0x61));
    expect(advice.calls).toEqual([]);
    advice.busy = false;
    await writeThrough(w, Buffer.alloc(MiB, 0x62));
    // The skipped step is taken whole by the first call that gets through.
    expect(advice.calls[0]?.[0]).toBe(0);
    expect(advice.calls[0]?.[1]).toBeGreaterThanOrEqual(10 * MiB);
    expect(advice.calls[0]?.[1]! % 4096).toBe(0);

    const refused = recordingAdvice();
    refused.failNext = true;
    const r = new SegmentWriter(join(folder.dir, 'refused.guac'), { pageCache: refused });
    const data = Buffer.alloc(30 * MiB, 0x63);
    await writeThrough(r, data);
    const done = await r.finish();
    // Advice refused: the file is written as a plain one, complete and without an error.
    expect(done).toEqual({ bytes: data.length, sha256: sha256(data), directBytes: 0, bouncedBytes: 0 });
    expect(refused.calls.length).toBe(1);
  });
});

describe('pageCache.flushBehind', () => {
  it.runIf(onLinux)('runs one call at a time and frees its slot after a refusal', async () => {
    const path = join(folder.dir, 'slot.guac');
    writeFileSync(path, Buffer.alloc(4 * MiB, 0x64));
    const fd = openSync(path, 'r+');
    try {
      const first = pageCache!.flushBehind(fd, 0, 4 * MiB, 0, 0);
      expect(first).toBeInstanceOf(Promise);
      // While the first runs, a second is declined rather than queued behind it.
      expect(pageCache!.flushBehind(fd, 0, 4 * MiB, 0, 0)).toBeUndefined();
      await first;
      // Arguments the addon refuses: rejected, and the slot is free again afterwards.
      await expect(pageCache!.flushBehind(fd, -1, 0, 0, 0)).rejects.toThrow(TypeError);
      await expect(pageCache!.flushBehind(fd, 0, 4 * MiB, 0, 4 * MiB)).resolves.toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });
});
