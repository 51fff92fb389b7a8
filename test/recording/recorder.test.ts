import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { isRecgwError, type RecgwError } from '../../src/errors.js';
import { byteRuns } from '../../src/protocol/byte-runs.js';
import { encodeInstruction, parseAll, type Instruction } from '../../src/protocol/index.js';
import { sessionDir } from '../../src/recording/journal.js';
import { SegmentWriter } from '../../src/recording/segment-writer.js';
import type { SessionRecording } from '../../src/recording/session-recording.js';
import { FIXTURES, fixture, makeRecorder, sha256, startInfo, tempSpool, type TestRecorder } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

const MARK_X = '4321'; // x of the test's own mouse moves; the fixtures never use it

function ins(text: string): Instruction[] {
  return parseAll(Buffer.from(text));
}

function segmentFiles(sessionId: string): string[] {
  return readdirSync(sessionDir(spool.dir, sessionId))
    .filter((n) => /^\d{6}\.guac$/.test(n))
    .sort();
}

describe('SessionRecording with the real recordings', () => {
  it.each(FIXTURES)('%s: rolling segments hold the stream plus the client mouse moves', async (name) => {
    const data = fixture(name);
    const limit = name === 'ssh-terminal' ? 128 * 1024 : 1024 * 1024;
    const t = makeRecorder(spool.dir, { segmentBytes: limit });
    const id = `replay-${name}`;
    const rec = await t.recorder.start(startInfo(id, { protocol: name.split('-')[0]! }));
    expect(t.recorder.active.has(rec)).toBe(true);

    const input = parseAll(data);
    let syncs = 0;
    let mice = 0;
    // A client move before the first sync has nothing to be timed by: never recorded.
    rec.clientInstruction(ins(`5.mouse,4.${MARK_X},1.1,1.0;`)[0]!);
    for (const i of input) {
      rec.serverInstruction(i);
      if (i.opcode === 'sync' && ++syncs % 7 === 0) {
        // Newer clients send a 4th element; it must not reach the recording.
        rec.clientInstruction(ins(encodeInstruction('mouse', MARK_X, String(syncs), '1', 'x'))[0]!);
        rec.clientInstruction(ins('0.,4.ping,13.1700000000000;')[0]!); // tunnel-internal: never recorded
        rec.clientInstruction(ins(encodeInstruction('key', '65', '1'))[0]!); // keys are off
        mice++;
      }
    }
    await rec.close('client closed');
    expect(t.recorder.active.size).toBe(0);

    const journal = await t.journals.get(id);
    const segs = journal.data.segments;
    expect(segs.length).toBeGreaterThanOrEqual(3);
    expect(segs.map((s) => s.number)).toEqual(segs.map((_, k) => k + 1));
    expect(t.sealed).toEqual(segs.map((s) => ({ sessionId: id, segment: s.number })));
    expect(segmentFiles(id)).toEqual(segs.map((s) => s.file));

    const files = segs.map((s) => readFileSync(join(journal.dir, s.file)));
    for (const [k, s] of segs.entries()) {
      const f = files[k]!;
      expect(s.state).toBe('sealed');
      expect(s.bytes).toBe(f.length);
      expect(s.sha256).toBe(sha256(f));
      expect(f.length).toBeLessThanOrEqual(limit);
      expect(f[f.length - 1]).toBe(0x3b); // ';'
      expect(s.sealed_at).toBeTruthy();
      const parsed = parseAll(f); // every segment is whole instructions
      const syncTs = parsed.filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
      expect([s.first_sync, s.last_sync]).toEqual([syncTs[0], syncTs.at(-1)]);
      if (k < segs.length - 1) {
        // Rolled right after a sync, or because the next instruction would not fit.
        const next = parseAll(files[k + 1]!)[0]!;
        expect(parsed.at(-1)!.opcode === 'sync' || f.length + next.raw.length > limit).toBe(true);
      }
    }

    const out = parseAll(Buffer.concat(files));
    const ours = out.filter((i) => i.opcode === 'mouse' && i.arg(0) === MARK_X);
    expect(ours.length).toBe(mice);
    const theirs = out.filter((i) => !(i.opcode === 'mouse' && i.arg(0) === MARK_X));
    expect(Buffer.concat(theirs.map((i) => i.raw)).equals(data)).toBe(true);
    expect(out.some((i) => i.opcode === 'key' && i.argCount === 3 && i.arg(0) === '65')).toBe(false);

    // Each of our moves: `mouse,x,y,mask,timestamp`, never before the sync it follows, never
    // earlier than the move before it.
    let lastSync = -Infinity;
    let lastMouse = -Infinity;
    for (const i of out) {
      if (i.opcode === 'sync') lastSync = i.intArg(0);
      if (i.opcode === 'mouse' && i.arg(0) === MARK_X) {
        expect(i.argCount).toBe(4);
        expect(i.arg(2)).toBe('1');
        const ts = i.intArg(3);
        expect(ts).toBeGreaterThanOrEqual(lastSync);
        expect(ts).toBeGreaterThanOrEqual(lastMouse);
        lastMouse = ts;
      }
    }

    const d = journal.data;
    expect(d.session_id).toBe(id);
    expect(d.username).toBe('alice');
    expect(d.user_id).toBe('u-1');
    expect(d.image_friendly_name).toBe('Desktop');
    expect(d.connections).toHaveLength(1);
    expect(d.connections[0]).toMatchObject({
      client_ip: '203.0.113.7',
      forwarded_for_client_ip: '198.51.100.2',
      user_agent: 'vitest',
      end_reason: 'client closed',
    });
    expect(d.ended_at).toBeTruthy();
    const firstSize = input.find((i) => i.opcode === 'size' && i.arg(0) === '0')!;
    expect([d.width, d.height]).toEqual([firstSize.intArg(1), firstSize.intArg(2)]);

    const sealedLogs = t.logs.filter((l) => l.metric_name === 'recording.segment.sealed');
    expect(sealedLogs).toHaveLength(segs.length);
    expect(sealedLogs[0]).toMatchObject({ session_id: id, segment: 1, bytes: segs[0]!.bytes, protocol: name.split('-')[0], user_name: 'alice' });
    for (const line of t.rawLogs) expect(line.match(/"session_id":/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });
});

describe('reads handed over with their views', () => {
  /** The instructions of `data` in reads of about 16 KiB, as a relay's socket reads deliver them. */
  function inReads(data: Buffer): Instruction[][] {
    const reads: Instruction[][] = [];
    let cur: Instruction[] = [];
    let bytes = 0;
    for (const i of parseAll(data)) {
      cur.push(i);
      bytes += i.raw.length;
      if (bytes >= 16 * 1024) {
        reads.push(cur);
        cur = [];
        bytes = 0;
      }
    }
    if (cur.length > 0) reads.push(cur);
    return reads;
  }
  const withViews = (rec: SessionRecording, read: Instruction[]) => rec.serverBatch(read, byteRuns(read.map((i) => i.raw)));
  const oneByOne = (rec: SessionRecording, read: Instruction[]) => rec.serverBatch(read);

  /** Records `reads` fed by `feed`; the number of pieces the segment writers were handed. */
  async function record(t: TestRecorder, id: string, protocol: string, reads: Instruction[][], feed: typeof withViews): Promise<number> {
    const queued = vi.spyOn(SegmentWriter.prototype, 'queue');
    try {
      const rec = await t.recorder.start(startInfo(id, { protocol }));
      for (const read of reads) feed(rec, read);
      await rec.close('done');
      return queued.mock.calls.length;
    } finally {
      queued.mockRestore();
    }
  }

  it.each(FIXTURES)('%s: recorded exactly as instruction by instruction, rolls and left-out streams included', async (name) => {
    // The real recording with an audio stream or a clipboard stream spliced in after every
    // 50th sync, each spanning a few reads, and segments small enough to roll inside reads.
    const parts: Buffer[] = [];
    let syncs = 0;
    let open = '';
    for (const i of parseAll(fixture(name))) {
      parts.push(i.raw);
      if (i.opcode !== 'sync') continue;
      syncs++;
      if (syncs % 50 === 0) {
        open = syncs % 100 === 0 ? '7' : '8';
        parts.push(Buffer.from(syncs % 100 === 0 ? '5.audio,1.7,9.audio/L16;' : '9.clipboard,1.8,10.text/plain;'));
      } else if (open !== '' && syncs % 50 === 2) {
        parts.push(Buffer.from(`3.end,1.${open};`));
        open = '';
      } else if (open !== '') {
        parts.push(Buffer.from(`4.blob,1.${open},4.AAAA;`));
      }
    }
    const reads = inReads(Buffer.concat(parts));
    const t = makeRecorder(spool.dir, { segmentBytes: 256 * 1024, now: () => 0 });
    const protocol = name.split('-')[0]!;
    await record(t, `views-${name}`, protocol, reads, withViews);
    await record(t, `each-${name}`, protocol, reads, oneByOne);

    const a = (await t.journals.get(`views-${name}`)).data.segments;
    const b = (await t.journals.get(`each-${name}`)).data.segments;
    expect(a.length).toBeGreaterThanOrEqual(3);
    const strip = (s: (typeof a)[number]) => ({ bytes: s.bytes, sha256: s.sha256, first_sync: s.first_sync, last_sync: s.last_sync, state: s.state });
    expect(a.map(strip)).toEqual(b.map(strip));
    const files = (id: string, segs: typeof a) => Buffer.concat(segs.map((s) => readFileSync(join(sessionDir(spool.dir, id), s.file))));
    const recorded = files(`views-${name}`, a);
    expect(recorded.equals(files(`each-${name}`, b))).toBe(true);
    expect(recorded.includes('audio/L16') || recorded.includes('text/plain')).toBe(false);
  });

  it.each(FIXTURES)('%s: a read with nothing to leave out goes to the writer as its views, not instruction by instruction', async (name) => {
    const reads = inReads(fixture(name));
    const t = makeRecorder(spool.dir, { segmentBytes: 150 * 1024 * 1024 });
    const protocol = name.split('-')[0]!;
    const pieces = await record(t, `pieces-${name}`, protocol, reads, withViews);
    // One view per read, but for the first read, which holds the display's size (noted in the
    // journal, so looked at instruction by instruction).
    expect(pieces).toBeLessThanOrEqual(reads.length - 1 + reads[0]!.length);
    expect(await record(t, `pieces-each-${name}`, protocol, reads, oneByOne)).toBe(reads.reduce((n, r) => n + r.length, 0));
  });
});

describe('left-out streams', () => {
  // audio on stream 1 spans an img stream on 2 and a clipboard stream on 3; after the clipboard's
  // end, index 3 is reused by an img stream, which must be kept.
  const parts = [
    ['keep', '4.size,1.0,3.640,3.480;'],
    ['internal', '0.,5.$abcd;'], // a relay's tunnel-internal instruction: never recorded
    ['keep', '4.sync,4.1000;'],
    ['audio', '5.audio,1.1,31.audio/L16;rate=44100,channels=2;'],
    ['audio', '4.blob,1.1,4.AAAA;'],
    ['keep', '3.img,1.2,2.14,1.0,9.image/png,1.0,1.0;'],
    ['keep', '4.blob,1.2,4.iVBO;'],
    ['clip', '9.clipboard,1.3,10.text/plain;'],
    ['clip', '4.blob,1.3,8.c2VjcmV0;'],
    ['audio', '4.blob,1.1,4.BBBB;'],
    ['clip', '3.end,1.3;'],
    ['keep', '3.img,1.3,2.14,1.0,9.image/png,2.10,2.10;'],
    ['keep', '4.blob,1.3,4.iVBO;'],
    ['keep', '3.end,1.3;'],
    ['audio', '3.end,1.1;'],
    ['keep', '3.end,1.2;'],
    ['keep', '4.blob,1.1,4.CCCC;'], // index 1 closed: a stray blob is not ours to drop
    ['keep', '4.sync,4.1010;'],
  ] as const;
  const stream = parts.map((p) => p[1]).join('');

  // Fed one by one, as reads of three instructions with their views (the relay's way: a read
  // with nothing to leave out is queued whole), and as one read.
  const feeds = {
    each: (rec: SessionRecording, all: Instruction[]) => {
      for (const i of all) rec.serverInstruction(i);
    },
    threes: (rec: SessionRecording, all: Instruction[]) => {
      for (let k = 0; k < all.length; k += 3) {
        const batch = all.slice(k, k + 3);
        rec.serverBatch(batch, byteRuns(batch.map((i) => i.raw)));
      }
    },
    whole: (rec: SessionRecording, all: Instruction[]) => rec.serverBatch(all, byteRuns(all.map((i) => i.raw))),
  };
  it.each(
    (['each', 'threes', 'whole'] as const).flatMap((feed) =>
      (
        [
          [false, false, ['keep']],
          [true, false, ['keep', 'audio']],
          [false, true, ['keep', 'clip']],
          [true, true, ['keep', 'audio', 'clip']],
        ] as const
      ).map(([a, c, kinds]) => [a, c, feed, kinds] as const),
    ),
  )('audio kept: %s, clipboard kept: %s, fed %s', async (includeAudio, includeClipboard, feed, kinds) => {
    const t = makeRecorder(spool.dir, { includeAudio, includeClipboard });
    const id = `streams-${String(includeAudio)}-${String(includeClipboard)}-${feed}`;
    const rec = await t.recorder.start(startInfo(id));
    feeds[feed](rec, ins(stream));
    await rec.close('done');
    const expected = parts.filter((p) => (kinds as readonly string[]).includes(p[0])).map((p) => p[1]).join('');
    expect(readFileSync(join(sessionDir(spool.dir, id), '000001.guac'), 'utf8')).toBe(expected);
  });
});

describe('client input on the sync clock', () => {
  it('stamps moves with the last sync plus elapsed time, never going backwards; keys only when enabled', async () => {
    let now = 0;
    const t = makeRecorder(spool.dir, { includeKeys: true, now: () => now });
    const rec = await t.recorder.start(startInfo('clock'));
    const mouse = (x: number) => rec.clientInstruction(ins(encodeInstruction('mouse', x, 5, 0))[0]!);
    mouse(1); // before any sync: dropped
    rec.clientInstruction(ins(encodeInstruction('key', 65307, 1))[0]!); // likewise
    rec.serverInstruction(ins('4.sync,4.1000;')[0]!);
    now = 30;
    mouse(2); // 1030
    now = 35;
    rec.serverInstruction(ins('4.sync,4.1010;')[0]!); // guacd's clock lags ours
    now = 36;
    mouse(3); // 1011 by the sync, but 1030 was given already
    rec.clientInstruction(ins(encodeInstruction('key', 65307, 1))[0]!);
    now = 100;
    rec.serverInstruction(ins('4.sync,4.1010;')[0]!); // repeated timestamp
    now = 150.7;
    mouse(4); // 1060
    rec.clientInstruction(ins('3.nop;')[0]!);
    rec.clientInstruction(ins('4.sync,4.1010;')[0]!); // client's sync ack: not recorded
    rec.clientInstruction(ins('5.mouse,1.a,1.5,1.0;')[0]!); // garbage coordinates: not recorded
    await rec.close('done');
    expect(readFileSync(join(sessionDir(spool.dir, 'clock'), '000001.guac'), 'utf8')).toBe(
      [
        '4.sync,4.1000;',
        '5.mouse,1.2,1.5,1.0,4.1030;',
        '4.sync,4.1010;',
        '5.mouse,1.3,1.5,1.0,4.1030;',
        '3.key,5.65307,1.1,4.1030;',
        '4.sync,4.1010;',
        '5.mouse,1.4,1.5,1.0,4.1060;',
      ].join(''),
    );
  });
  it('reads the clock once per batch of guacd instructions, however many syncs it holds', async () => {
    let reads = 0;
    let now = 0;
    const t = makeRecorder(spool.dir, { now: () => (reads++, now) });
    const rec = await t.recorder.start(startInfo('clock-batch'));
    const before = reads;
    const batch = ins('4.sync,4.1000;4.sync,4.1001;3.nop;4.sync,4.1002;');
    rec.serverBatch(batch, byteRuns(batch.map((i) => i.raw)));
    expect(reads - before).toBe(1);
    rec.serverBatch(ins('3.nop;'));
    expect(reads - before).toBe(1); // no sync, no read
    now = 20;
    rec.clientInstruction(ins(encodeInstruction('mouse', 1, 1, 0))[0]!);
    await rec.close('done');
    // The last sync of the batch counts from the batch's arrival (0): 1002 + 20.
    expect(readFileSync(join(sessionDir(spool.dir, 'clock-batch'), '000001.guac'), 'utf8')).toContain('5.mouse,1.1,1.1,1.0,4.1022;');
  });
});

describe('segment boundaries', () => {
  it('gives an instruction bigger than the limit a segment of its own', async () => {
    const t = makeRecorder(spool.dir, { segmentBytes: 1000 });
    const rec = await t.recorder.start(startInfo('huge'));
    const small = '4.sync,3.100;'; // 13 bytes
    const big = encodeInstruction('blob', '5', 'A'.repeat(3000));
    for (let k = 0; k < 40; k++) rec.serverInstruction(ins(small)[0]!);
    rec.serverInstruction(ins(big)[0]!);
    for (let k = 0; k < 10; k++) rec.serverInstruction(ins(small)[0]!);
    await rec.close('done');
    const dir = sessionDir(spool.dir, 'huge');
    const files = segmentFiles('huge').map((f) => readFileSync(join(dir, f), 'utf8'));
    expect(files).toEqual([small.repeat(40), big, small.repeat(10)]);
  });

  it('rolls right after a sync once a segment is past 90% of the limit', async () => {
    const t = makeRecorder(spool.dir, { segmentBytes: 1000 });
    const rec = await t.recorder.start(startInfo('after-sync'));
    const rect = '4.rect,1.0,1.0,1.0,1.1,1.1;'; // 27 bytes
    for (let k = 0; k < 34; k++) rec.serverInstruction(ins(rect)[0]!); // 918 bytes
    rec.serverInstruction(ins('4.sync,3.100;')[0]!); // 931 ≥ 900: roll here
    rec.serverInstruction(ins(rect)[0]!);
    await rec.close('done');
    const dir = sessionDir(spool.dir, 'after-sync');
    const files = segmentFiles('after-sync').map((f) => readFileSync(join(dir, f), 'utf8'));
    expect(files).toEqual([rect.repeat(34) + '4.sync,3.100;', rect]);
  });

  it('removes a segment left empty at close and seals nothing for it', async () => {
    const t = makeRecorder(spool.dir, { segmentBytes: 1000 });
    const rec = await t.recorder.start(startInfo('empty-tail'));
    for (let k = 0; k < 70; k++) rec.serverInstruction(ins('4.sync,3.100;')[0]!); // 910 bytes, then roll
    expect(rec.segment).toBe(2);
    expect(rec.bytes).toBe(0);
    await rec.close('done');
    const j = await t.journals.get('empty-tail');
    expect(j.data.segments.map((s) => [s.number, s.state])).toEqual([[1, 'sealed']]);
    expect(existsSync(join(j.dir, '000002.guac'))).toBe(false);
    expect(t.sealed).toEqual([{ sessionId: 'empty-tail', segment: 1 }]);
    await rec.close('again'); // idempotent
    expect(j.data.connections[0]!.end_reason).toBe('done');
  });
});

describe('Recorder admission', () => {
  it('checkWritable passes on a real folder and fails with RECGW_ERR_SPOOL_UNWRITABLE under a file', async () => {
    await makeRecorder(spool.dir).recorder.checkWritable();
    const file = join(spool.dir, 'plain-file');
    writeFileSync(file, 'x');
    const err = await makeRecorder(join(file, 'spool'))
      .recorder.checkWritable()
      .catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_SPOOL_UNWRITABLE')).toBe(true);
    expect((err as RecgwError).message).toMatch(/RECORDING_SPOOL_DIR/);
  });

  it('refuses unsafe session ids and a second live recording of one session', async () => {
    const t = makeRecorder(spool.dir);
    for (const bad of ['../x', 'a/b', '.hidden', '']) {
      const err = await t.recorder.start(startInfo(bad)).catch((e: unknown) => e);
      expect(isRecgwError(err, 'RECGW_ERR_INPUT')).toBe(true);
    }
    const rec = await t.recorder.start(startInfo('busy'));
    const err = await t.recorder.start(startInfo('busy')).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_INPUT')).toBe(true);
    await rec.close('done');
    const again = await t.recorder.start(startInfo('busy'));
    expect(again.segment).toBe(1); // the first connection recorded nothing, so 1 was removed
    await t.recorder.closeAll('shutdown');
    expect(t.recorder.active.size).toBe(0);
    expect((await t.journals.get('busy')).data.connections.map((c) => c.end_reason)).toEqual(['done', 'shutdown']);
  });

  it('fails a recording that cannot keep up instead of holding unbounded memory', async () => {
    const t = makeRecorder(spool.dir, { maxPendingBytes: 4096 });
    const rec = await t.recorder.start(startInfo('slow-disk'));
    const failures: RecgwError[] = [];
    rec.onFailure((e) => failures.push(e));
    const blob = ins(encodeInstruction('blob', '1', 'A'.repeat(1000)))[0]!;
    for (let k = 0; k < 10; k++) rec.serverInstruction(blob); // all in one tick: nothing written yet
    expect(failures).toHaveLength(1);
    expect(failures[0]!.code).toBe('RECGW_ERR_SEGMENT_WRITE');
    expect(failures[0]!.message).toMatch(/cannot keep up/);
    await rec.close('x');
    const j = await t.journals.get('slow-disk');
    expect(j.data.connections[0]!.end_reason).toMatch(/RECGW_ERR_SEGMENT_WRITE/);
  });
});
