import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { isRecgwError } from '../../src/errors.js';
import { JournalStore } from '../../src/recording/journal.js';
import { makeEncodedSession } from '../support/encoded-segment.js';
import { exists } from '../support/files.js';

let spool: string;
beforeEach(async () => {
  spool = await mkdtemp(join(tmpdir(), 'recgw-journals-'));
});
afterEach(async () => {
  await rm(spool, { recursive: true, force: true });
});

describe('JournalStore', () => {
  test('hands out one instance per session; lets go of settled ones; a reconnect takes them back', async () => {
    const journals = new JournalStore(spool);
    const s = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100, 200], state: 'uploaded' });
    const id = s.sessionId;
    const j = await journals.get(id);
    expect(j).toBe(s.journal);
    expect(await journals.getOrCreate(id, () => { throw new Error('it exists'); })).toBe(j);

    // A connection still open, or a segment still waiting: not settled.
    await j.update((d) => void d.connections.push({ client_ip: '192.0.2.1', started_at: new Date().toISOString() }));
    expect(journals.settle(id, j)).toBe(false);
    await j.update((d) => void (d.connections[0]!.ended_at = new Date().toISOString()));
    await j.updateSegment(2, (seg) => void (seg.state = 'encoded'));
    expect(journals.settle(id, j)).toBe(false);
    expect(journals.heldCount).toBe(1);

    await j.updateSegment(2, (seg) => void (seg.state = 'expired'));
    expect(journals.settle(id, j)).toBe(true);
    expect(journals.heldCount).toBe(0);
    expect(journals.settledSummary(id)).toEqual({ uploaded: 1, expired: 1 });

    // Still referenced (here): the same instance comes back, and the session is live again.
    expect(await journals.getOrCreate(id, () => { throw new Error('it exists'); })).toBe(j);
    expect(journals.settledSummary(id)).toBeUndefined();
    expect(journals.heldCount).toBe(1);
  });

  test('lists each session folder with a journal, checking new names only once', async () => {
    const journals = new JournalStore(spool);
    expect(await journals.list()).toEqual([]);
    const a = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [10] });
    const b = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [10] });
    expect(await journals.list()).toEqual([a.sessionId, b.sessionId].sort());
    // A new store (another process) finds them too.
    expect(await new JournalStore(spool).list()).toEqual([a.sessionId, b.sessionId].sort());
  });
});

describe('JournalStore: finished sessions', () => {
  test('moves a settled session to finished/, out of list(); asking for it by id moves it back', async () => {
    const journals = new JournalStore(spool);
    const s = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100, 200], state: 'uploaded' });
    const id = s.sessionId;
    const j = await journals.get(id);
    expect(await journals.moveToFinished(id)).toBe(false); // not settled: stays
    expect(journals.settle(id, j)).toBe(true);
    expect(journals.settledSince(id)).toBe(Date.parse('2026-11-23T10:05:00.000Z'));

    expect(await journals.moveToFinished(id)).toBe(true);
    expect(await exists(join(spool, 'sessions', id))).toBe(false);
    expect(JSON.parse(await readFile(join(spool, 'finished', id, 'session.json'), 'utf8')).session_id).toBe(id);
    expect(await journals.list()).toEqual([]);
    expect(journals.settledSince(id)).toBeUndefined();
    // The instance still held here is stale now: it refuses changes instead of writing nowhere.
    await expect(j.update(() => undefined)).rejects.toThrow(/moved to .*finished/);

    const back = await journals.get(id);
    expect(back).not.toBe(j);
    expect(back.data.segments.map((x) => x.number)).toEqual([1, 2]);
    expect(await exists(join(spool, 'finished', id))).toBe(false);
    expect(await journals.list()).toEqual([id]);
    expect(journals.heldCount).toBe(1);
  });

  test('a get() during the move waits for it and then moves the folder back', async () => {
    const journals = new JournalStore(spool);
    const s = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100], state: 'uploaded' });
    const id = s.sessionId;
    expect(journals.settle(id, await journals.get(id))).toBe(true);
    const moved = journals.moveToFinished(id);
    const reconnect = journals.getOrCreate(id, () => {
      throw new Error('the session exists: it must not be created anew');
    });
    expect(await moved).toBe(true);
    const j = await reconnect;
    expect(j.data.segments).toHaveLength(1);
    expect(await journals.list()).toEqual([id]);
    await j.update((d) => void (d.username = 'bob')); // a live instance again
  });

  test('getOrCreate makes a new journal only when the id is in neither folder', async () => {
    const journals = new JournalStore(spool);
    const created = await journals.getOrCreate('brand-new', () => ({
      version: 1,
      session_id: 'brand-new',
      protocol: 'ssh',
      created_at: '2026-11-23T10:00:00.000Z',
      started_at: '2026-11-23T10:00:00.000Z',
      connections: [],
      segments: [],
    }));
    expect(created.data.protocol).toBe('ssh');
    await expect(journals.get('never-seen')).rejects.toThrow(/cannot read/);
  });
});

describe('JournalStore: a finished session that cannot come back', () => {
  test('is an error, never a new session numbered from 1', async () => {
    const journals = new JournalStore(spool);
    const s = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100], state: 'uploaded' });
    const id = s.sessionId;
    expect(journals.settle(id, await journals.get(id))).toBe(true);
    expect(await journals.moveToFinished(id)).toBe(true);
    // Something in the way of the move back: a folder without a journal where it would go.
    await mkdir(join(spool, 'sessions', id), { recursive: true });
    await writeFile(join(spool, 'sessions', id, 'stray.txt'), 'in the way');
    const err = await journals.getOrCreate(id, () => { throw new Error('must not create'); }).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_JOURNAL')).toBe(true);
    expect((err as Error).message).toMatch(/cannot move .*finished/);
    expect(await exists(join(spool, 'finished', id, 'session.json'))).toBe(true);
  });
});
