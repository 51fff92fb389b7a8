import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { computeBacklog } from '../../src/pipeline/backlog.js';
import { JournalStore } from '../../src/recording/journal.js';
import { makeEncodedSession } from '../support/encoded-segment.js';

let spool: string;
beforeEach(async () => {
  spool = await mkdtemp(join(tmpdir(), 'recgw-backlog-'));
});
afterEach(async () => {
  await rm(spool, { recursive: true, force: true });
});

describe('computeBacklog', () => {
  test('an empty spool', async () => {
    const b = await computeBacklog(new JournalStore(spool), new Date());
    expect(b).toMatchObject({ bytes_waiting_upload: 0, oldest_waiting_age_seconds: null, upload_failures: 0, next_retry_at: null, sessions: 0 });
    expect(Object.values(b.segments_by_state).every((n) => n === 0)).toBe(true);
  });

  test('counts states, bytes waiting, the oldest wait, failures and the next retry', async () => {
    const journals = new JournalStore(spool);
    const now = new Date('2026-11-23T12:00:00.000Z');
    const a = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [1000, 2000, 3000], sealedAt: new Date('2026-11-23T11:00:00.000Z') });
    await a.journal.updateSegment(2, (s) => {
      s.state = 'failed';
      s.failed_stage = 'upload';
      s.next_attempt_at = '2026-11-23T12:05:00.000Z';
    });
    await a.journal.updateSegment(3, (s) => {
      s.state = 'uploaded';
    });
    const b = await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [500, 700], sealedAt: new Date('2026-11-23T11:30:00.000Z') });
    await b.journal.updateSegment(1, (s) => {
      s.state = 'failed';
      s.failed_stage = 'encode';
      s.next_attempt_at = '2026-11-23T12:01:00.000Z';
    });
    await b.journal.updateSegment(2, (s) => {
      s.state = 'sealed';
    });
    await makeEncodedSession({ spoolDir: spool, journals, clipBytes: [100], state: 'uploaded' });
    // a broken journal is named, not fatal
    await mkdir(join(spool, 'sessions', 'broken'), { recursive: true });
    await writeFile(join(spool, 'sessions', 'broken', 'session.json'), '{ nope');

    const backlog = await computeBacklog(journals, now);
    expect(backlog.segments_by_state).toMatchObject({ encoded: 1, failed: 2, uploaded: 2, sealed: 1, recording: 0, expired: 0 });
    expect(backlog.bytes_waiting_upload).toBe(1000 + 2000);
    expect(backlog.bytes_waiting_encode).toBe(b.segments[0]!.raw.length + b.segments[1]!.raw.length);
    expect(backlog.oldest_waiting_age_seconds).toBe(3600);
    expect(backlog.upload_failures).toBe(1);
    expect(backlog.encode_failures).toBe(1);
    expect(backlog.next_retry_at).toBe('2026-11-23T12:01:00.000Z');
    expect(backlog.sessions).toBe(3);
    expect(backlog.sessions_waiting).toBe(2);
    expect(backlog.unreadable_sessions).toEqual(['broken']);
    expect(JSON.parse(JSON.stringify(backlog))).toEqual(backlog);
  });
});
