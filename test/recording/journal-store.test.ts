import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { JournalStore } from '../../src/recording/journal.js';
import { makeEncodedSession } from '../support/encoded-segment.js';

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
