import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GuacamoleParser, parseAll } from '../../src/protocol/index.js';
import type { SegmentRef } from '../../src/pipeline/contracts.js';
import { sessionDir } from '../../src/recording/journal.js';
import { directWrites } from '../../src/recording/page-cache.js';
import { directIoHere } from '../support/direct-io.js';
import { fixture, makeRecorder, sha256, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bytes of the complete instructions at the start of `buf`. */
function completePrefix(buf: Buffer): number {
  let n = 0;
  const p = new GuacamoleParser((ins) => (n += ins.raw.length));
  p.push(buf);
  return n;
}

/** Size of the highest-numbered segment file in `dir`. */
function newestSegmentBytes(dir: string): number {
  const names = readdirSync(dir)
    .filter((n) => /^\d{6}\.guac$/.test(n))
    .sort();
  return names.length === 0 ? 0 : statSync(join(dir, names[names.length - 1]!)).size;
}

// A live session's segments are written buffered; a fast one's mostly directly (O_DIRECT, while
// 256 KiB or more wait), so the kill also lands on direct writes in flight.
describe.each([
  ['a live session', 'killed', 20, 1, 512 * 1024],
  ['a fast session, written directly', 'killed-fast', 100, 4, 1024 * 1024],
] as const)('kill -9 of a process recording %s', (_name, id, perTick, loops, limit) => {
  it('loses nothing that reached the file up to the last complete instruction', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/recorder-child.ts', spool.dir, 'vnc-desktop', id, String(limit), String(perTick), String(loops)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    let sealed = 0;
    let sawClosed = false;
    let direct = 0;
    // Kill once two segments are sealed and the third has been written to for a while.
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      let fedAfter = 0;
      lines.on('line', (line) => {
        if (line.startsWith('sealed ')) sealed = Number(line.slice(7));
        if (line.startsWith('direct ')) direct += Number(line.slice(7));
        if (line === 'closed') sawClosed = true;
        if (sealed >= 2 && line.startsWith('fed ') && ++fedAfter === 25) {
          // Kill while the newest segment has bytes on disk (a segment just opened by a roll
          // holds none for up to SegmentWriter's write delay, and recovery would only remove it).
          const killWhenWritten = (): void => {
            if (newestSegmentBytes(sessionDir(spool.dir, id)) > 0) {
              child.kill('SIGKILL');
              resolve();
            } else setTimeout(killWhenWritten, 1);
          };
          killWhenWritten();
        }
      });
      child.on('exit', () => resolve());
      child.on('error', reject);
    });
    expect(await exited).toBe('SIGKILL');
    expect(sawClosed).toBe(false);
    if (perTick > 20 && directIoHere(spool.dir, directWrites!) !== 'none') expect(direct).toBeGreaterThan(0);

    const dir = sessionDir(spool.dir, id);
    const before = new Map(
      readdirSync(dir)
        .filter((n) => /^\d{6}\.guac$/.test(n))
        .map((n) => [n, readFileSync(join(dir, n))]),
    );
    expect(before.size).toBeGreaterThanOrEqual(3);

    const t = makeRecorder(spool.dir);
    const report = await t.recorder.recover();
    const j = await t.journals.get(id);
    const segs = j.data.segments;
    expect(segs.every((s) => s.state === 'sealed')).toBe(true);
    // The spool is shared with the other case's session: look at this one's segments.
    const mine = (refs: SegmentRef[]): number[] => refs.filter((r) => r.sessionId === id).map((r) => r.segment);
    expect(mine(report.sealed).length).toBeGreaterThanOrEqual(1);
    expect(mine(report.pending)).toEqual(segs.map((s) => s.number));

    const files: Buffer[] = [];
    for (const s of segs) {
      const was = before.get(s.file)!;
      const now = readFileSync(join(dir, s.file));
      // Every complete instruction that was on disk is still there, nothing else.
      expect(now.length).toBe(completePrefix(was));
      expect(now.equals(was.subarray(0, now.length))).toBe(true);
      expect(s.bytes).toBe(now.length);
      expect(s.sha256).toBe(sha256(now));
      files.push(now);
    }
    // Segments in order are the start of the stream the child was fed, without a gap.
    const all = Buffer.concat(files);
    expect(all.length).toBeGreaterThan(2 * 0.9 * limit);
    const fed = Buffer.concat(Array.from({ length: loops }, () => fixture('vnc-desktop')));
    expect(all.equals(fed.subarray(0, all.length))).toBe(true);
    expect(parseAll(all).length).toBeGreaterThan(100);
  });
});
