import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { GuacamoleParser, parseAll } from '../../src/protocol/index.js';
import { sessionDir } from '../../src/recording/journal.js';
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

describe('kill -9 of a recording process', () => {
  it('loses nothing that reached the file up to the last complete instruction', async () => {
    const id = 'killed';
    const limit = 512 * 1024;
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/recorder-child.ts', spool.dir, 'vnc-desktop', id, String(limit)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    let sealed = 0;
    let sawClosed = false;
    // Kill once two segments are sealed and the third has been written to for a while.
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      let fedAfter = 0;
      lines.on('line', (line) => {
        if (line.startsWith('sealed ')) sealed = Number(line.slice(7));
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
    expect(report.sealed.length).toBeGreaterThanOrEqual(1);
    expect(report.pending.map((p) => p.segment)).toEqual(segs.map((s) => s.number));

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
    expect(all.equals(fixture('vnc-desktop').subarray(0, all.length))).toBe(true);
    expect(parseAll(all).length).toBeGreaterThan(100);
  });
});
