import type { Config } from '../config/config.js';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { GuacStatus, RecgwError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { SegmentRef, SegmentSealedListener } from '../pipeline/contracts.js';
import {
  segmentBaseName,
  type JournalStore,
  type SegmentRecord,
  type SegmentState,
  type SessionJournal,
  type SessionJournalData,
} from './journal.js';
import { directWrites, pageCache } from './page-cache.js';
import { SegmentWriter } from './segment-writer.js';
import { SessionRecording } from './session-recording.js';
import { recoverSession, sessionFolders } from './spool-recovery.js';

export { SessionRecording } from './session-recording.js';

export interface RecorderOptions {
  spoolDir: string;
  segmentBytes: number;
  includeKeys: boolean;
  includeClipboard: boolean;
  includeAudio: boolean;
  /**
   * Write segments behind and keep them out of the page cache (page-cache.ts), where
   * native/page-cache is available. Default true.
   */
  dropPageCache?: boolean;
  /**
   * Large writes of fast sessions go straight from guacd's read arenas to the disk with
   * O_DIRECT (direct-write.ts), where native/page-cache is available. Default true.
   */
  directWrites?: boolean;
  journals: JournalStore;
  logger: Logger;
  onSealed: SegmentSealedListener;
  /**
   * Most bytes a recording may have waiting for the disk before it fails (default 64 MiB);
   * see SessionRecording for why it fails rather than pauses.
   */
  maxPendingBytes?: number;
  /** Monotonic milliseconds, for the mouse-move clock (tests pin it). Default performance.now. */
  now?: () => number;
}

/** The recorder's part of the configuration (RECORDING_*), for every place that builds one. */
export function recorderSettings(
  c: Config['recording'],
): Pick<RecorderOptions, 'spoolDir' | 'segmentBytes' | 'includeKeys' | 'includeClipboard' | 'includeAudio' | 'dropPageCache' | 'directWrites'> {
  return {
    spoolDir: c.spoolDir,
    segmentBytes: c.segmentBytes,
    includeKeys: c.includeKeys,
    includeClipboard: c.includeClipboard,
    includeAudio: c.includeAudio,
    dropPageCache: c.dropPageCache,
    directWrites: c.directWrites,
  };
}

export interface SessionStartInfo {
  sessionId: string;
  protocol: string;
  userId?: string;
  username?: string;
  imageId?: string;
  imageFriendlyName?: string;
  clientIp: string;
  forwardedForClientIp?: string;
  userAgent?: string;
  /** guacd's connection id (`$…` from `ready`), when known. */
  connectionId?: string;
}

export interface RecoveryReport {
  /** Segments that were left `recording` by an unclean stop and are sealed now. */
  sealed: SegmentRef[];
  /**
   * Every segment the pipeline must carry on with, by state (sealed → encode, encoded → upload,
   * failed → retry when due); includes the ones in `sealed`. recover() does not call onSealed:
   * this list is the one hand-over, so nothing is queued twice.
   */
  pending: Array<SegmentRef & { state: SegmentState }>;
}

const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * Records sessions into the spool: one SessionRecording per relayed connection, one journal and
 * folder per session id; scans the spool at start-up.
 */
export class Recorder {
  readonly #opts: RecorderOptions;
  readonly #log: Logger;
  readonly #active = new Set<SessionRecording>();
  /** Session ids with a recording starting or running in this process. */
  readonly #busy = new Set<string>();

  constructor(opts: RecorderOptions) {
    if (!Number.isSafeInteger(opts.segmentBytes) || opts.segmentBytes <= 0) {
      throw new RecgwError('RECGW_ERR_CONFIG', `segment size must be a positive number of bytes, got ${opts.segmentBytes}`);
    }
    this.#opts = opts;
    this.#log = opts.logger;
  }

  /** Recordings running now. */
  get active(): ReadonlySet<SessionRecording> {
    return this.#active;
  }

  /** Throws RECGW_ERR_SPOOL_UNWRITABLE unless a file can be created, written and synced in the spool. */
  async checkWritable(): Promise<void> {
    const dir = join(this.#opts.spoolDir, 'sessions');
    const probe = join(dir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(probe, 'wx', 0o600);
      try {
        await fh.writeFile('recgw');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new RecgwError(
        'RECGW_ERR_SPOOL_UNWRITABLE',
        `the recording spool ${this.#opts.spoolDir} is not writable (${code}); make RECORDING_SPOOL_DIR a folder the gateway's user can write`,
        { cause: err, guacStatus: GuacStatus.SERVER_ERROR },
      );
    }
  }

  /**
   * Starts recording one connection: creates the session's journal, or continues an existing
   * session (numbering goes on after its last segment, a new connection entry is added), and
   * opens the first segment file. Throws RecgwError when the recording cannot start; the
   * gateway must then refuse the connection.
   */
  async start(info: SessionStartInfo): Promise<SessionRecording> {
    const id = info.sessionId;
    if (!isSafeSessionId(id)) {
      throw new RecgwError('RECGW_ERR_INPUT', 'session id must be 1-128 letters, digits, dot, dash or underscore and not start with a dot', {
        guacStatus: GuacStatus.CLIENT_BAD_REQUEST,
      });
    }
    if (this.#busy.has(id)) {
      // Two connections writing one session's segments would interleave their numbering and
      // break the encoder's segment-after-segment state chain.
      throw new RecgwError('RECGW_ERR_INPUT', `session ${id} is already being recorded; wait until its connection ends`, {
        guacStatus: GuacStatus.SESSION_CONFLICT,
      });
    }
    this.#busy.add(id);
    try {
      return await this.#start(info);
    } catch (err) {
      this.#busy.delete(id);
      if (err instanceof RecgwError) throw err;
      throw new RecgwError(
        'RECGW_ERR_SPOOL_UNWRITABLE',
        `cannot start recording session ${id}: ${errorMessage(err)}; check RECORDING_SPOOL_DIR`,
        { cause: err, guacStatus: GuacStatus.SERVER_ERROR },
      );
    }
  }

  async #start(info: SessionStartInfo): Promise<SessionRecording> {
    const o = this.#opts;
    const id = info.sessionId;
    const now = new Date().toISOString();
    const journal = await o.journals.getOrCreate(id, () => initialJournal(info, now));
    // A session continued after a crash may still have segments marked `recording`; no
    // connection of this process writes them (the session was not busy), so seal them first.
    if (journal.data.segments.some((s) => s.state === 'recording') || (await hasUnlistedFiles(journal))) {
      await recoverSession(journal, { logger: this.#log, resetInFlight: false });
    }
    const segment = Math.max(0, ...journal.data.segments.map((s) => s.number)) + 1;
    const file = `${segmentBaseName(segment)}.guac`;
    const record: SegmentRecord = { number: segment, file, state: 'recording', bytes: 0, started_at: now, attempts: 0 };
    const connectionIndex = await journal.update((d) => {
      d.connections.push({
        client_ip: info.clientIp,
        started_at: now,
        ...(info.connectionId ? { connection_id: info.connectionId } : {}),
        ...(info.forwardedForClientIp ? { forwarded_for_client_ip: info.forwardedForClientIp } : {}),
        ...(info.userAgent ? { user_agent: info.userAgent } : {}),
      });
      delete d.ended_at;
      d.segments.push(record);
      return d.connections.length - 1;
    });

    const writerOptions = {
      pageCache: o.dropPageCache === false ? undefined : pageCache,
      direct: o.directWrites === false ? undefined : directWrites,
    };
    const writer = new SegmentWriter(join(journal.dir, file), writerOptions);
    const opened = await writer.opened().then(
      () => undefined,
      (err: NodeJS.ErrnoException) => err,
    );
    if (opened) {
      await writer.discard();
      await journal
        .update((d) => {
          d.segments = d.segments.filter((s) => s.number !== segment);
          const c = d.connections[connectionIndex];
          if (c) {
            c.ended_at = new Date().toISOString();
            c.end_reason = `recording could not start: ${opened.code ?? opened.message}`;
          }
        })
        .catch(() => undefined);
      throw new RecgwError(
        'RECGW_ERR_SEGMENT_WRITE',
        `cannot create ${writer.path} (${opened.code ?? opened.message}); check RECORDING_SPOOL_DIR`,
        { cause: opened, guacStatus: GuacStatus.SERVER_ERROR },
      );
    }

    const logger = o.logger.child({
      session_id: id,
      protocol: info.protocol,
      ...(info.userId ? { user_id: info.userId } : {}),
      ...(info.username ? { user_name: info.username } : {}),
    });
    const rec = new SessionRecording(id, segment, writer, {
      journal,
      logger,
      segmentBytes: o.segmentBytes,
      includeKeys: o.includeKeys,
      includeClipboard: o.includeClipboard,
      includeAudio: o.includeAudio,
      maxPendingBytes: o.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES,
      writerOptions,
      onSealed: o.onSealed,
      now: o.now ?? (() => performance.now()),
      connectionIndex,
      onClosed: (r) => {
        this.#active.delete(r);
        this.#busy.delete(r.sessionId);
      },
    });
    this.#active.add(rec);
    logger.info({ segment, continued: segment > 1 }, 'recording started');
    return rec;
  }

  /** Seals every open segment (shutdown). */
  async closeAll(reason: string): Promise<void> {
    await Promise.all([...this.#active].map((r) => r.close(reason)));
  }

  /**
   * Start-up spool scan: seals what an unclean stop left open, puts interrupted pipeline
   * stages back, and reports every segment the pipeline must carry on with. A session folder
   * whose journal is missing or unreadable is logged and skipped, never fatal.
   */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { sealed: [], pending: [] };
    for (const id of await sessionFolders(this.#opts.spoolDir)) {
      if (this.#busy.has(id)) continue; // live in this process: not a leftover
      let journal: SessionJournal;
      try {
        journal = await this.#opts.journals.get(id);
      } catch (err) {
        this.#log.error(
          { session_id: id, reason: errorMessage(err) },
          'session folder has no readable journal; skipped (its files are left as they are)',
        );
        continue;
      }
      try {
        const r = await recoverSession(journal, { logger: this.#log, resetInFlight: true });
        report.sealed.push(...r.sealed);
        report.pending.push(...r.pending);
      } catch (err) {
        this.#log.error({ session_id: id, reason: errorMessage(err) }, 'cannot recover session; skipped');
      }
    }
    if (report.sealed.length > 0 || report.pending.length > 0) {
      this.#log.info({ sealed: report.sealed.length, pending: report.pending.length }, 'spool recovered');
    }
    return report;
  }
}

function initialJournal(info: SessionStartInfo, now: string): SessionJournalData {
  return {
    version: 1,
    session_id: info.sessionId,
    ...(info.userId ? { user_id: info.userId } : {}),
    ...(info.username ? { username: info.username } : {}),
    ...(info.imageId ? { image_id: info.imageId } : {}),
    ...(info.imageFriendlyName ? { image_friendly_name: info.imageFriendlyName } : {}),
    protocol: info.protocol,
    created_at: now,
    started_at: now,
    connections: [],
    segments: [],
  };
}

async function hasUnlistedFiles(journal: SessionJournal): Promise<boolean> {
  const listed = new Set(journal.data.segments.map((s) => s.file));
  return (await readdir(journal.dir)).some((n) => /^\d{6}\.guac$/.test(n) && !listed.has(n));
}

/** A session id becomes a folder name: no separators, no `..`, nothing hidden. */
function isSafeSessionId(id: string): boolean {
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(id);
}
