import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errorMessage, ProtocolError } from '../errors.js';
import { MetricName, type Logger } from '../observability/logger.js';
import { GuacamoleParser, hasOpcode } from '../protocol/index.js';
import type { SegmentRef } from '../pipeline/contracts.js';
import { segmentBaseName, type SegmentRecord, type SegmentState, type SessionJournal } from './journal.js';

/** What a segment file holds once cut back to its last complete instruction. */
export interface CutSegment {
  /** Size of the file before the cut. */
  fileBytes: number;
  /** Bytes kept: every complete instruction from the start. */
  keptBytes: number;
  sha256: string;
  firstSync?: number;
  lastSync?: number;
  /** Set when the file holds malformed bytes (not just a torn last instruction). */
  malformed?: ProtocolError;
  /** Where the bytes cut off after malformed input were saved, if any. */
  savedTail?: string;
}

/**
 * Cuts a segment file back to its last complete instruction (a torn write after kill -9 leaves
 * part of one behind), fsyncs it and returns the kept bytes' sha256. Streams the file once:
 * bytes are hashed as soon as the parser shows they belong to complete instructions, so only
 * the tail of an unfinished instruction is ever held.
 */
export async function cutToLastInstruction(path: string): Promise<CutSegment> {
  const hash = createHash('sha256');
  let complete = 0; // bytes of complete instructions seen
  let hashed = 0;
  let unhashed: Buffer[] = [];
  let firstSync: number | undefined;
  let lastSync: number | undefined;
  let malformed: ProtocolError | undefined;
  let fileBytes = 0;

  const parser = new GuacamoleParser((ins) => {
    complete += ins.raw.length;
    if (hasOpcode(ins.raw, 'sync')) {
      const ts = ins.intArg(0);
      if (Number.isFinite(ts)) {
        firstSync ??= ts;
        lastSync = ts;
      }
    }
  });
  const hashUpTo = (target: number): void => {
    while (hashed < target && unhashed.length > 0) {
      const head = unhashed[0]!;
      const need = target - hashed;
      if (head.length <= need) {
        hash.update(head);
        hashed += head.length;
        unhashed.shift();
      } else {
        hash.update(head.subarray(0, need));
        hashed += need;
        unhashed[0] = head.subarray(need);
      }
    }
  };

  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
    const buf = chunk as Buffer;
    fileBytes += buf.length;
    if (malformed) continue; // count the rest of the file, nothing more
    unhashed.push(buf);
    try {
      parser.push(buf);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      malformed = err;
    }
    hashUpTo(complete);
    if (malformed) unhashed = [];
  }

  const result: CutSegment = { fileBytes, keptBytes: complete, sha256: '', ...(malformed ? { malformed } : {}) };
  if (complete < fileBytes) {
    if (malformed) {
      // Corrupt bytes in the middle are not a torn write: keep what follows them beside the
      // segment for a person to look at, rather than destroying it.
      const tail = `${path}.cut`;
      await pipeline(createReadStream(path, { start: complete }), createWriteStream(tail));
      result.savedTail = tail;
    }
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(complete);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  result.sha256 = hash.digest('hex');
  if (firstSync !== undefined) result.firstSync = firstSync;
  if (lastSync !== undefined) result.lastSync = lastSync;
  return result;
}

export interface SessionRecoveryOptions {
  logger: Logger;
  /** Also put segments a crashed pipeline left mid-stage back (encoding → sealed, uploading → encoded). */
  resetInFlight: boolean;
}

export interface SessionRecoveryResult {
  /** Segments sealed by this recovery. */
  sealed: SegmentRef[];
  /** Segments the pipeline must carry on with, after recovery. */
  pending: Array<SegmentRef & { state: SegmentState }>;
}

const SEGMENT_FILE = /^(\d{6})\.guac$/;

/**
 * Brings one session's journal in line with its folder after an unclean stop: every segment
 * still `recording` (and every segment file the journal does not list) is cut back to its last
 * complete instruction and sealed; an empty one is removed. The caller guarantees no live
 * recording of this session exists in the process.
 */
export async function recoverSession(journal: SessionJournal, opts: SessionRecoveryOptions): Promise<SessionRecoveryResult> {
  const log = opts.logger;
  const sessionId = journal.sessionId;
  const listed = new Set(journal.data.segments.map((s) => s.number));

  // Files the journal never heard of: the file of a new segment is opened alongside its
  // journal entry, so a crash can leave one without the other.
  const orphans: SegmentRecord[] = [];
  for (const name of await readdir(journal.dir)) {
    const m = SEGMENT_FILE.exec(name);
    if (!m) continue;
    const n = Number(m[1]);
    if (listed.has(n)) continue;
    const info = await lstat(join(journal.dir, name));
    orphans.push({ number: n, file: name, state: 'recording', bytes: 0, started_at: info.mtime.toISOString(), attempts: 0 });
  }
  if (orphans.length > 0) {
    await journal.update((d) => {
      d.segments.push(...orphans);
      d.segments.sort((a, b) => a.number - b.number);
    });
    for (const o of orphans) {
      log.warn({ session_id: sessionId, segment: o.number }, 'segment file not in the journal; adding it');
    }
  }

  const sealed: SegmentRef[] = [];
  let lastWrite: Date | undefined;
  for (const seg of journal.data.segments) {
    if (seg.state !== 'recording') continue;
    const path = join(journal.dir, seg.file || `${segmentBaseName(seg.number)}.guac`);
    let cut: CutSegment;
    try {
      const info = await stat(path);
      if (!lastWrite || info.mtime > lastWrite) lastWrite = info.mtime;
      cut = await cutToLastInstruction(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await journal.update((d) => {
        d.segments = d.segments.filter((s) => s.number !== seg.number);
      });
      log.warn({ session_id: sessionId, segment: seg.number }, 'segment in the journal has no file (nothing was written); removed');
      continue;
    }
    if (cut.malformed) {
      log.error(
        { session_id: sessionId, segment: seg.number, bytes: cut.keptBytes, bytes_cut: cut.fileBytes - cut.keptBytes, saved_to: cut.savedTail, reason: cut.malformed.message },
        'segment holds malformed bytes; kept the instructions before them',
      );
    }
    if (cut.keptBytes === 0 && !cut.savedTail) {
      await unlink(path).catch(() => undefined);
      await journal.update((d) => {
        d.segments = d.segments.filter((s) => s.number !== seg.number);
      });
      log.warn({ session_id: sessionId, segment: seg.number, bytes_cut: cut.fileBytes }, 'empty segment removed');
      continue;
    }
    const sealedAt = new Date().toISOString();
    await journal.updateSegment(seg.number, (s) => {
      s.state = 'sealed';
      s.bytes = cut.keptBytes;
      s.sha256 = cut.sha256;
      s.sealed_at = sealedAt;
      if (cut.firstSync !== undefined) s.first_sync = cut.firstSync;
      if (cut.lastSync !== undefined) s.last_sync = cut.lastSync;
    });
    sealed.push({ sessionId, segment: seg.number });
    log.warn(
      {
        session_id: sessionId,
        segment: seg.number,
        bytes: cut.keptBytes,
        bytes_cut: cut.fileBytes - cut.keptBytes,
        metric_name: MetricName.segmentSealed,
      },
      'recovered segment left open by an unclean stop',
    );
  }

  if (opts.resetInFlight) {
    await journal.update((d) => {
      for (const s of d.segments) {
        // A stage interrupted mid-way starts over from its input, which is still on disk.
        if (s.state === 'encoding') s.state = 'sealed';
        else if (s.state === 'uploading') s.state = 'encoded';
      }
    });
  }

  // Connections the crash cut off never got an end; the last write is the best guess of when.
  const data = journal.data;
  if (data.connections.some((c) => !c.ended_at) || (sealed.length > 0 && !data.ended_at)) {
    const endedAt = (lastWrite ?? new Date()).toISOString();
    await journal.update((d) => {
      for (const c of d.connections) {
        if (!c.ended_at) {
          c.ended_at = endedAt;
          c.end_reason = 'gateway stopped uncleanly; recovered at start-up';
        }
      }
      d.ended_at ??= endedAt;
    });
  }

  const pending = journal.data.segments
    .filter((s) => s.state === 'sealed' || s.state === 'encoded' || s.state === 'failed')
    .map((s) => ({ sessionId, segment: s.number, state: s.state }));
  return { sealed, pending };
}

/** Session folders in the spool (whether or not their journal can be read). */
export async function sessionFolders(spoolDir: string): Promise<string[]> {
  try {
    const entries = await readdir(join(spoolDir, 'sessions'), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot list ${join(spoolDir, 'sessions')}: ${errorMessage(err)}`, { cause: err });
  }
}
