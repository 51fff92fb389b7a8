import { errorMessage } from '../errors.js';
import { MetricName, type Logger } from '../observability/logger.js';
import type { JournalStore, SegmentRecord, SegmentState, SessionJournal } from '../recording/journal.js';
import type { SegmentEncoder, SegmentRef, SegmentUploader } from './contracts.js';
import { mediaFiles, releasableStateFiles, removeFiles } from './local-files.js';

/**
 * The uploader as the pipeline sees it: the stage contract plus, when offered, a way to store a
 * session's journal after changes no upload carries (retention), so storage tells the whole story.
 */
export type PipelineUploader = SegmentUploader & {
  storeJournal?(sessionId: string): Promise<void>;
  retryStaleJournals?(): Promise<void>;
  /** True while the session's journal still has to reach storage. */
  journalPending?(sessionId: string): boolean;
};

export interface PipelineOptions {
  journals: JournalStore;
  encoder: SegmentEncoder;
  uploader: PipelineUploader;
  /** RECORDING_RETENTION_PERIOD: how long after sealing an un-stored segment stays local. */
  retentionMs: number;
  /** How long after its last connection ended a settled session moves to finished/ (default 24 h). */
  finishedAfterMs?: number;
  logger: Logger;
  now?: () => Date;
}

/**
 * A day: a session that reconnects within it (a dropped network, a laptop woken up) stays in
 * sessions/; later reconnects move it back from finished/, which costs one rename.
 */
export const FINISHED_AFTER_MS = 24 * 3600 * 1000;

export type PendingSegment = SegmentRef & { state: SegmentState };

/** What one sweep did (for tests and the debug log). */
export interface SweepReport {
  retried: number;
  started: number;
  expired: number;
  /** Sessions found to have nothing left to do, from now on skipped (JournalStore.settle). */
  settled: number;
  /** Settled sessions whose folders moved to finished/ (JournalStore.moveToFinished). */
  finished: number;
}

/** States a segment waits in before it is stored; retention applies to all of them. */
const WAITING: ReadonlySet<SegmentState> = new Set(['sealed', 'encoding', 'encoded', 'uploading', 'failed']);

/**
 * The glue between stages: sealed segments are encoded, then uploaded; failures are retried at
 * their next_attempt_at; segments still not stored when the retention period has run out are
 * deleted and marked expired. A segment has at most one chain (encode and/or upload) running at
 * a time in this process, however often it is asked for.
 */
export class Pipeline {
  readonly #journals: JournalStore;
  readonly #encoder: SegmentEncoder;
  readonly #uploader: PipelineUploader;
  readonly #retentionMs: number;
  readonly #finishedAfterMs: number;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<SweepReport> | undefined;
  #stopped = false;

  constructor(options: PipelineOptions) {
    this.#journals = options.journals;
    this.#encoder = options.encoder;
    this.#uploader = options.uploader;
    this.#retentionMs = options.retentionMs;
    this.#finishedAfterMs = options.finishedAfterMs ?? FINISHED_AFTER_MS;
    this.#log = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** The recorder sealed a segment: encode it, then upload it. */
  onSealed(ref: SegmentRef): void {
    this.#start(ref, 'encode');
  }

  /**
   * After a restart (the spool scan already turned `encoding` into `sealed` and `uploading` into
   * `encoded`; both are accepted here too): sealed → encode, encoded → upload, failed → at its
   * next_attempt_at.
   */
  resume(pending: PendingSegment[]): void {
    for (const p of pending) {
      const ref = { sessionId: p.sessionId, segment: p.segment };
      switch (p.state) {
        case 'sealed':
        case 'encoding':
          this.#start(ref, 'encode');
          break;
        case 'encoded':
        case 'uploading':
          this.#start(ref, 'upload');
          break;
        case 'failed':
          void this.#scheduleIfFailed(ref);
          break;
        default:
          break;
      }
    }
  }

  /** Runs sweep() every intervalMs (the timer does not keep the process alive). */
  startSweep(intervalMs: number): void {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.#log.error({ err: errorMessage(err) }, 'pipeline sweep failed'));
    }, intervalMs);
    this.#sweepTimer.unref();
  }

  /**
   * One pass over every journal in the spool: expire what outlived the retention period, retry
   * failures whose time has come, and start segments left sealed or encoded with nothing
   * working on them. Overlapping calls share one pass.
   */
  sweep(): Promise<SweepReport> {
    if (!this.#sweeping) {
      this.#sweeping = this.#sweepOnce().finally(() => {
        this.#sweeping = undefined;
      });
    }
    return this.#sweeping;
  }

  /**
   * Stops timers and new work, and waits up to `waitMs` (default 0) for running encodes and
   * uploads. Not waiting is safe: their journal states make the next start redo them
   * (encoding → sealed, uploading → encoded, same key), so a shutdown is never held by ffmpeg.
   */
  async stop(options: { waitMs?: number } = {}): Promise<void> {
    this.#stopped = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await this.#sweeping?.catch(() => undefined);
    const waitMs = options.waitMs ?? 0;
    if (waitMs > 0 && this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#inFlight.values()]),
        new Promise<void>((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /** True while a chain for this segment runs in this process. */
  isBusy(ref: SegmentRef): boolean {
    return this.#inFlight.has(refId(ref));
  }

  /** A chain of this session's still runs (e.g. removing local files after an upload). */
  #sessionBusy(sessionId: string): boolean {
    const prefix = `${sessionId}/`;
    for (const id of this.#inFlight.keys()) if (id.startsWith(prefix)) return true;
    return false;
  }

  #start(ref: SegmentRef, from: 'encode' | 'upload'): void {
    if (this.#stopped) {
      this.#log.info({ session_id: ref.sessionId, segment: ref.segment }, 'pipeline stopped; segment resumes on the next start');
      return;
    }
    const id = refId(ref);
    if (this.#inFlight.has(id)) return;
    const timer = this.#timers.get(id);
    if (timer) {
      clearTimeout(timer);
      this.#timers.delete(id);
    }
    const chain = (async () => {
      if (from === 'encode') {
        await this.#encoder.encode(ref);
        const seg = await this.#segment(ref);
        if (seg?.state !== 'encoded') return;
      }
      await this.#uploader.upload(ref);
    })()
      .catch((err: unknown) => {
        // Stages record their own failures in the journal; a rejection means the journal itself
        // could not be written, which the operator must see.
        this.#log.error({ session_id: ref.sessionId, segment: ref.segment, err: errorMessage(err) }, `pipeline stage failed for segment ${ref.segment} of session ${ref.sessionId}`);
      })
      .finally(() => {
        this.#inFlight.delete(id);
      })
      .then(() => this.#scheduleIfFailed(ref));
    this.#inFlight.set(id, chain);
  }

  /** A failed segment gets a timer for its next_attempt_at (the sweep is the backstop). */
  async #scheduleIfFailed(ref: SegmentRef): Promise<void> {
    if (this.#stopped) return;
    const seg = await this.#segment(ref).catch(() => undefined);
    if (!seg || seg.state !== 'failed') return;
    const id = refId(ref);
    const at = seg.next_attempt_at ? Date.parse(seg.next_attempt_at) : this.#now().getTime();
    const delay = Math.min(Math.max(0, at - this.#now().getTime()), 2 ** 31 - 1);
    const old = this.#timers.get(id);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.#timers.delete(id);
      this.#start(ref, seg.failed_stage === 'upload' ? 'upload' : 'encode');
    }, delay);
    t.unref();
    this.#timers.set(id, t);
  }

  async #segment(ref: SegmentRef): Promise<SegmentRecord | undefined> {
    return (await this.#journals.get(ref.sessionId)).segment(ref.segment);
  }

  async #sweepOnce(): Promise<SweepReport> {
    const report: SweepReport = { retried: 0, started: 0, expired: 0, settled: 0, finished: 0 };
    if (this.#stopped) return report;
    const now = this.#now();
    for (const sessionId of await this.#journals.list()) {
      // Nothing left to do there (JournalStore says why these are skipped); once it has been
      // over for a while, its folder leaves sessions/ so that sweeps and scans stay as small as
      // the sessions still in progress, however long the gateway runs.
      const endedAt = this.#journals.settledSince(sessionId);
      if (endedAt !== undefined) {
        const over = now.getTime() - endedAt >= this.#finishedAfterMs;
        if (over && !this.#sessionBusy(sessionId) && !this.#uploader.journalPending?.(sessionId) && (await this.#journals.moveToFinished(sessionId))) {
          report.finished++;
        }
        continue;
      }
      let journal: SessionJournal;
      try {
        journal = await this.#journals.get(sessionId);
      } catch (err) {
        this.#log.error({ session_id: sessionId, err: errorMessage(err) }, 'sweep skipped a session whose journal cannot be read');
        continue;
      }
      for (const seg of journal.data.segments) {
        const ref = { sessionId, segment: seg.number };
        if (!WAITING.has(seg.state) || this.isBusy(ref)) continue;
        // A segment without sealed_at (hand-edited or older journal) counts from its start.
        const sealedAt = Date.parse(seg.sealed_at ?? seg.started_at);
        if (Number.isFinite(sealedAt) && now.getTime() >= sealedAt + this.#retentionMs) {
          await this.#expire(journal, seg);
          report.expired++;
          continue;
        }
        if (seg.state === 'failed') {
          if (!seg.next_attempt_at || Date.parse(seg.next_attempt_at) <= now.getTime()) {
            this.#start(ref, seg.failed_stage === 'upload' ? 'upload' : 'encode');
            report.retried++;
          }
        } else if (seg.state === 'sealed' || seg.state === 'encoded') {
          // Left waiting with nothing working on it (a missed notification): pick it up.
          this.#start(ref, seg.state === 'sealed' ? 'encode' : 'upload');
          report.started++;
        }
      }
      if (this.#journals.settle(sessionId, journal)) report.settled++;
    }
    await this.#uploader.retryStaleJournals?.();
    if (report.expired + report.retried + report.started + report.finished > 0) this.#log.debug({ ...report }, 'pipeline sweep');
    return report;
  }

  /** Retention ran out: delete the segment's local files and say exactly what was lost. */
  async #expire(journal: SessionJournal, seg: SegmentRecord): Promise<void> {
    const removed = await removeFiles(journal.dir, mediaFiles(seg));
    const expiredAt = this.#now().toISOString();
    await journal.updateSegment(seg.number, (s) => {
      s.state = 'expired';
      s.expired_at = expiredAt;
      delete s.next_attempt_at;
    });
    // The state file of the segment before this one is not needed any more; nor this one's, if
    // the session is over.
    const states = await removeFiles(journal.dir, releasableStateFiles(journal.data));
    const data = journal.data;
    const files = [...removed, ...states];
    const bytes = files.reduce((n, f) => n + f.bytes, 0);
    this.#log.error(
      {
        metric_name: MetricName.retentionExpired,
        session_id: data.session_id,
        user_id: data.user_id,
        user_name: data.username,
        protocol: data.protocol,
        segment: seg.number,
        state_before: seg.state,
        sealed_at: seg.sealed_at,
        retention_ms: this.#retentionMs,
        attempts: seg.attempts,
        last_error: seg.last_error,
        bytes,
        files: files.map((f) => f.file),
        clip_bytes: seg.clip?.bytes,
        segment_bytes: seg.bytes,
      },
      `retention period ran out before segment ${seg.number} of session ${data.session_id} was stored: ` +
        `deleted ${files.length ? files.map((f) => `${f.file} (${f.bytes} bytes)`).join(', ') : 'no files (already gone)'}; ` +
        `this part of the recording (state ${seg.state}${seg.last_error ? `, last error: ${seg.last_error}` : ''}) is lost`,
    );
    await this.#uploader.storeJournal?.(data.session_id);
  }
}

function refId(ref: SegmentRef): string {
  return `${ref.sessionId}/${ref.segment}`;
}
