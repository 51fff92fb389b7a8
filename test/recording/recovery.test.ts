import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAll } from '../../src/protocol/index.js';
import { SessionJournal, sessionDir, type SegmentRecord, type SessionJournalData } from '../../src/recording/journal.js';
import { cutToLastInstruction } from '../../src/recording/spool-recovery.js';
import { fixture, makeRecorder, sha256, startInfo, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

function seg(number: number, state: SegmentRecord['state'], extra: Partial<SegmentRecord> = {}): SegmentRecord {
  return {
    number,
    file: `${String(number).padStart(6, '0')}.guac`,
    state,
    bytes: 0,
    started_at: '2026-11-23T10:00:00.000Z',
    attempts: 0,
    ...extra,
  };
}

function journalData(id: string, segments: SegmentRecord[]): SessionJournalData {
  return {
    version: 1,
    session_id: id,
    username: 'bob',
    protocol: 'rdp',
    created_at: '2026-11-23T10:00:00.000Z',
    started_at: '2026-11-23T10:00:00.000Z',
    connections: [{ client_ip: '192.0.2.1', started_at: '2026-11-23T10:00:00.000Z' }],
    segments,
  };
}

/** The first `n` instructions of a fixture, as bytes. */
function firstInstructions(name: string, from: number, n: number): Buffer {
  return Buffer.concat(parseAll(fixture(name)).slice(from, from + n).map((i) => i.raw));
}

describe('cutToLastInstruction', () => {
  it('cuts a torn last instruction and hashes what is kept, streaming the file', async () => {
    const dir = join(spool.dir, 'cut');
    mkdirSync(dir, { recursive: true });
    const whole = firstInstructions('rdp-desktop', 0, 400);
    const torn = Buffer.concat([whole, Buffer.from('4.blob,1.7,100.AAAA')]);
    const path = join(dir, 'a.guac');
    writeFileSync(path, torn);
    const cut = await cutToLastInstruction(path);
    expect(cut).toMatchObject({ fileBytes: torn.length, keptBytes: whole.length, sha256: sha256(whole) });
    expect(cut.malformed).toBeUndefined();
    expect(readFileSync(path).equals(whole)).toBe(true);
    const syncs = parseAll(whole).filter((i) => i.opcode === 'sync');
    expect([cut.firstSync, cut.lastSync]).toEqual([syncs[0]!.intArg(0), syncs.at(-1)!.intArg(0)]);
  });

  it('keeps the bytes after malformed input aside instead of destroying them', async () => {
    const dir = join(spool.dir, 'cut');
    mkdirSync(dir, { recursive: true });
    const good = Buffer.from('4.sync,2.10;4.rect,1.0,1.0,1.0,1.1,1.1;');
    const rest = Buffer.from('garbage!4.sync,2.20;');
    const path = join(dir, 'b.guac');
    writeFileSync(path, Buffer.concat([good, rest]));
    const cut = await cutToLastInstruction(path);
    expect(cut.keptBytes).toBe(good.length);
    expect(cut.malformed?.code).toBe('RECGW_ERR_PROTOCOL');
    expect(readFileSync(path).equals(good)).toBe(true);
    expect(readFileSync(cut.savedTail!).equals(rest)).toBe(true);
  });
});

describe('Recorder.recover', () => {
  it('seals open segments, adds unlisted files, puts interrupted stages back, and continues numbering', async () => {
    const id = 'crashed';
    const dir = sessionDir(spool.dir, id);
    const s1 = firstInstructions('rdp-desktop', 0, 300);
    const s2 = firstInstructions('rdp-desktop', 300, 300);
    const s3 = firstInstructions('rdp-desktop', 600, 300);
    const s4 = firstInstructions('rdp-desktop', 900, 50);
    await SessionJournal.create(
      dir,
      journalData(id, [
        seg(1, 'encoding', { bytes: s1.length, sha256: sha256(s1) }),
        seg(2, 'uploading', { bytes: s2.length, sha256: sha256(s2) }),
        seg(3, 'recording'),
      ]),
    );
    writeFileSync(join(dir, '000001.guac'), s1);
    writeFileSync(join(dir, '000002.guac'), s2);
    // As after kill -9 mid-write: the last instruction is half there.
    const half = parseAll(fixture('rdp-desktop'))[900]!.raw;
    writeFileSync(join(dir, '000003.guac'), Buffer.concat([s3, half.subarray(0, half.length >> 1)]));
    // Segment 4's file was opened, its journal entry never written.
    writeFileSync(join(dir, '000004.guac'), s4);

    // A session folder with garbage for a journal, and one with no journal: logged, skipped.
    mkdirSync(sessionDir(spool.dir, 'corrupt'), { recursive: true });
    writeFileSync(join(sessionDir(spool.dir, 'corrupt'), 'session.json'), '{"version":1,"segm');
    mkdirSync(sessionDir(spool.dir, 'no-journal'), { recursive: true });
    writeFileSync(join(sessionDir(spool.dir, 'no-journal'), '000001.guac'), s1);

    const t = makeRecorder(spool.dir);
    const report = await t.recorder.recover();
    expect(report.sealed).toEqual([
      { sessionId: id, segment: 3 },
      { sessionId: id, segment: 4 },
    ]);
    expect(report.pending).toEqual([
      { sessionId: id, segment: 1, state: 'sealed' },
      { sessionId: id, segment: 2, state: 'encoded' },
      { sessionId: id, segment: 3, state: 'sealed' },
      { sessionId: id, segment: 4, state: 'sealed' },
    ]);
    expect(t.sealed).toEqual([]); // the report is the one hand-over to the pipeline

    const j = await t.journals.get(id);
    const segs = j.data.segments;
    expect(segs.map((s) => s.state)).toEqual(['sealed', 'encoded', 'sealed', 'sealed']);
    expect(readFileSync(join(dir, '000003.guac')).equals(s3)).toBe(true);
    expect(segs[2]).toMatchObject({ bytes: s3.length, sha256: sha256(s3) });
    expect(segs[3]).toMatchObject({ bytes: s4.length, sha256: sha256(s4), file: '000004.guac' });
    expect(j.data.connections[0]!.end_reason).toMatch(/uncleanly/);
    expect(j.data.ended_at).toBeTruthy();

    const recovered = t.logs.filter((l) => l.metric_name === 'recording.segment.sealed');
    expect(recovered).toHaveLength(2);
    expect(recovered[0]).toMatchObject({ level: 'warn', session_id: id, segment: 3, bytes: s3.length, bytes_cut: half.length >> 1 });
    expect(t.logs.filter((l) => l.level === 'error').map((l) => l.session_id).sort()).toEqual(['corrupt', 'no-journal']);
    expect(readFileSync(join(sessionDir(spool.dir, 'corrupt'), 'session.json'), 'utf8')).toBe('{"version":1,"segm');

    // Recovering again changes nothing.
    const again = await makeRecorder(spool.dir).recorder.recover();
    expect(again.sealed).toEqual([]);
    expect(again.pending).toEqual(report.pending);

    // Reconnecting with the same session id continues the numbering in the same journal.
    const rec = await t.recorder.start(startInfo(id, { clientIp: '192.0.2.99' }));
    expect(rec.segment).toBe(5);
    for (const i of parseAll(Buffer.from('4.sync,7.9999999;'))) rec.serverInstruction(i);
    await rec.close('done');
    const after = (await t.journals.get(id)).data;
    expect(after.segments.map((s) => [s.number, s.state])).toEqual([
      [1, 'sealed'],
      [2, 'encoded'],
      [3, 'sealed'],
      [4, 'sealed'],
      [5, 'sealed'],
    ]);
    expect(after.connections.map((c) => c.client_ip)).toEqual(['192.0.2.1', '192.0.2.99']);
    expect(after.username).toBe('bob');
    expect(t.sealed).toEqual([{ sessionId: id, segment: 5 }]);
  });

  it('seals a continued session’s leftover open segment before numbering on, and drops an empty one', async () => {
    const id = 'continued-after-crash';
    const dir = sessionDir(spool.dir, id);
    const s1 = firstInstructions('ssh-terminal', 0, 100);
    await SessionJournal.create(dir, journalData(id, [seg(1, 'recording'), seg(2, 'recording')]));
    writeFileSync(join(dir, '000001.guac'), Buffer.concat([s1, Buffer.from('4.sy')]));
    writeFileSync(join(dir, '000002.guac'), Buffer.from('3.en')); // nothing whole in it
    const t = makeRecorder(spool.dir);
    const rec = await t.recorder.start(startInfo(id));
    expect(rec.segment).toBe(2);
    await rec.close('done'); // nothing written: segment 2 removed again
    const d = (await t.journals.get(id)).data;
    expect(d.segments.map((s) => [s.number, s.state, s.bytes])).toEqual([[1, 'sealed', s1.length]]);
    expect(readFileSync(join(dir, '000001.guac')).equals(s1)).toBe(true);
    expect(existsSync(join(dir, '000002.guac'))).toBe(false);
  });
});
