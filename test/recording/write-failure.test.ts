import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RecgwError } from '../../src/errors.js';
import { parseAll } from '../../src/protocol/index.js';
import { sessionDir } from '../../src/recording/journal.js';
import { fixture, makeRecorder, sha256, startInfo, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

describe('a segment write that fails mid-session (real ENOSPC)', () => {
  it('tells the listener once, keeps the earlier segment sealed and intact, and records why the session ended', async () => {
    const limit = 256 * 1024;
    const t = makeRecorder(spool.dir, { segmentBytes: limit });
    const id = 'enospc';
    const rec = await t.recorder.start(startInfo(id));
    // The next segment's file is /dev/full: every write to it fails with ENOSPC, as on a full disk.
    const dir = sessionDir(spool.dir, id);
    mkdirSync(dir, { recursive: true });
    symlinkSync('/dev/full', join(dir, '000002.guac'));

    const failures: RecgwError[] = [];
    const failed = new Promise<void>((resolve) =>
      rec.onFailure((e) => {
        failures.push(e);
        resolve();
      }),
    );
    const input = parseAll(fixture('vnc-desktop'));
    let fed = 0;
    // Feed in socket-sized batches across event-loop turns, like the relay, until it fails.
    while (failures.length === 0 && fed < input.length) {
      for (const end = Math.min(fed + 50, input.length); fed < end; fed++) rec.serverInstruction(input[fed]!);
      await new Promise((r) => setImmediate(r));
    }
    await failed;
    for (let k = fed; k < input.length; k++) rec.serverInstruction(input[k]!); // ignored now
    await rec.close('relay ended after the failure');
    // A listener added late still hears about it, once.
    let late = 0;
    rec.onFailure(() => late++);

    expect(failures).toHaveLength(1);
    expect(late).toBe(1);
    expect(failures[0]!.code).toBe('RECGW_ERR_SEGMENT_WRITE');
    expect(failures[0]!.message).toMatch(/ENOSPC/);
    expect(rec.failure).toBe(failures[0]);

    const j = await t.journals.get(id);
    const segs = j.data.segments;
    // Segment 2 never got a byte: removed from the journal, and its file (the symlink) with it.
    // The error reaches the recorder asynchronously (the write runs in libuv's pool), so the
    // relay may have rolled into segments 3.. before it; those write only after segment 2 has,
    // so they hold nothing either: what is kept is the stream's start, without a hole.
    expect(segs.map((s) => s.number)).toEqual([1]);
    expect(segs.every((s) => s.state === 'sealed')).toBe(true);
    expect(() => lstatSync(join(dir, '000002.guac'))).toThrow(/ENOENT/);
    const data = fixture('vnc-desktop');
    let prevEnd = 0;
    for (const s of segs) {
      const f = readFileSync(join(dir, s.file));
      expect(s.bytes).toBe(f.length);
      expect(s.sha256).toBe(sha256(f));
      expect(f.length).toBeLessThanOrEqual(limit);
      // Each segment is a run of the stream, in order: segment 1 its very start.
      const at = s.number === 1 ? 0 : data.indexOf(f, prevEnd);
      expect(at).toBeGreaterThanOrEqual(prevEnd);
      expect(f.equals(data.subarray(at, at + f.length))).toBe(true);
      prevEnd = at + f.length;
    }
    expect(t.sealed).toEqual(segs.map((s) => ({ sessionId: id, segment: s.number })));
    expect(j.data.connections[0]!.end_reason).toMatch(/RECGW_ERR_SEGMENT_WRITE/);
    expect(t.recorder.active.size).toBe(0);
    expect(t.logs.some((l) => l.level === 'error' && l.err_code === 'RECGW_ERR_SEGMENT_WRITE')).toBe(true);
  });

  it('keeps no later segment after one whose bytes could not be written, however far the relay got', async () => {
    const limit = 64 * 1024;
    const t = makeRecorder(spool.dir, { segmentBytes: limit });
    const id = 'enospc-burst';
    const rec = await t.recorder.start(startInfo(id));
    const dir = sessionDir(spool.dir, id);
    symlinkSync('/dev/full', join(dir, '000002.guac'));
    const failed = new Promise<RecgwError>((resolve) => rec.onFailure(resolve));
    // About a megabyte in one turn of the event loop: the relay rolls through segments 2 to ~16
    // before a single write has run.
    const input = parseAll(fixture('vnc-desktop'));
    let fed = 0;
    for (let bytes = 0; bytes < 1024 * 1024; fed++) {
      rec.serverInstruction(input[fed]!);
      bytes += input[fed]!.raw.length;
    }
    expect(rec.segment).toBeGreaterThan(10);
    expect((await failed).message).toMatch(/ENOSPC/);
    await rec.close('relay ended after the failure');

    const segs = (await t.journals.get(id)).data.segments;
    expect(segs.map((s) => s.number)).toEqual([1]);
    const first = readFileSync(join(dir, '000001.guac'));
    expect(first.equals(fixture('vnc-desktop').subarray(0, first.length))).toBe(true);
    expect(first.length).toBeGreaterThan(limit / 2);
    expect(readdirSync(dir).filter((n) => n.endsWith('.guac'))).toEqual(['000001.guac']);
    // Each later segment says it was left empty because an earlier one failed.
    expect(t.logs.filter((l) => l.msg === 'segment write failed; sealing what reached the disk' && l.err_code === 'ECANCELED').length).toBe(rec.segment - 2);
  });

  it('fails the first segment of a session whose folder cannot hold files, before anything is relayed', async () => {
    const t = makeRecorder(spool.dir);
    const id = 'no-file';
    const dir = sessionDir(spool.dir, id);
    mkdirSync(dir, { recursive: true });
    // The first segment's path leads into a folder that does not exist: open fails (ENOENT).
    symlinkSync(join(spool.dir, 'missing', 'x.guac'), join(dir, '000001.guac'));
    const err = await t.recorder.start(startInfo(id)).catch((e: unknown) => e as RecgwError);
    expect((err as RecgwError).code).toBe('RECGW_ERR_SEGMENT_WRITE');
    expect(t.recorder.active.size).toBe(0);
    const j = await t.journals.get(id);
    expect(j.data.segments).toEqual([]);
    expect(j.data.connections[0]!.end_reason).toMatch(/could not start: ENOENT/);
  });
});
