import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import PQueue from 'p-queue';
import { errorMessage } from '../errors.js';
import { MetricName, type Logger } from '../observability/logger.js';
import type { JournalStore, SegmentRecord, SessionJournal, SessionJournalData } from '../recording/journal.js';
import { ContentTypes, type ObjectStore } from '../storage/object-store.js';
import { classifyFailure, RetryPolicy } from '../storage/retry-policy.js';
import { journalKey, siblingKey, type UploadLocation } from '../storage/upload-location.js';
import type { SegmentRef, SegmentUploader } from './contracts.js';
import { mediaFiles, releasableStateFiles, removeFiles } from './local-files.js';

export interface UploaderOptions {
  journals: JournalStore;
  store: ObjectStore;
  location: UploadLocation;
  logger: Logger;
  /** RECORDING_KEEP_LOCAL: keep clip, thumbnail and raw segment after a successful upload. */
  keepLocal?: boolean;
  /** RECORDING_UPLOAD_RAW: also store the raw segment, gzip-compressed, beside the clip. */
  uploadRaw?: boolean;
  retry?: RetryPolicy;
  /** Segments uploading at once (each holds up to partSize × queueSize in memory). Default 2. */
  concurrency?: number;
  now?: () => Date;
}

/** Raw segments are gzip-compressed on the way up; level 6 is zlib's speed/size balance. */
const RAW_SUFFIX = '.guac.gz';
const THUMBNAIL_SUFFIX = '.jpg';

/**
 * Stores encoded segments: `encoded → uploading → uploaded`, or `failed` (failed_stage
 * 'upload', attempts, next_attempt_at, last_error) with every local file kept. The key is
 * computed once and written to the journal before the first attempt, so a retry or a restart
 * writes to the same key even when the template uses {current_epoch}.
 */
export class Uploader implements SegmentUploader {
  readonly #journals: JournalStore;
  readonly #store: ObjectStore;
  readonly #location: UploadLocation;
  readonly #log: Logger;
  readonly #keepLocal: boolean;
  readonly #uploadRaw: boolean;
  readonly #retry: RetryPolicy;
  readonly #now: () => Date;
  readonly #queue: PQueue;
  /** One upload per segment at a time: a second call joins the running one. */
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #journalUploads = new Map<string, Promise<void>>();
  /** Sessions whose stored journal is older than the local one (its last upload failed). */
  readonly #staleJournals = new Set<string>();

  constructor(options: UploaderOptions) {
    this.#journals = options.journals;
    this.#store = options.store;
    this.#location = options.location;
    this.#log = options.logger;
    this.#keepLocal = options.keepLocal ?? false;
    this.#uploadRaw = options.uploadRaw ?? false;
    this.#retry = options.retry ?? new RetryPolicy();
    this.#now = options.now ?? (() => new Date());
    this.#queue = new PQueue({ concurrency: Math.max(1, options.concurrency ?? 2) });
  }

  upload(ref: SegmentRef): Promise<void> {
    const id = `${ref.sessionId}/${ref.segment}`;
    const running = this.#inFlight.get(id);
    if (running) return running;
    const p = this.#queue.add(() => this.#run(ref)).finally(() => this.#inFlight.delete(id));
    this.#inFlight.set(id, p);
    return p;
  }

  /** True while this segment is queued or uploading in this process. */
  isUploading(ref: SegmentRef): boolean {
    return this.#inFlight.has(`${ref.sessionId}/${ref.segment}`);
  }

  /**
   * Stores the session's newest journal beside its stored clips (after a change no segment
   * upload carries, e.g. a segment expired). Nothing happens before a first clip is stored:
   * the journal travels with it. Never throws; a failure is retried by retryStaleJournals().
   */
  async storeJournal(sessionId: string): Promise<void> {
    let journal: SessionJournal;
    try {
      journal = await this.#journals.get(sessionId);
    } catch (err) {
      this.#log.warn({ session_id: sessionId, err: errorMessage(err) }, 'cannot read the session journal to store it');
      return;
    }
    const location = this.#location.describe();
    const stored = journal.data.segments.filter((s) => s.state === 'uploaded' && s.upload?.location === location && s.upload.key);
    const last = stored[stored.length - 1];
    if (!last) return;
    await this.#uploadJournal(journal, last.upload!.key, { session_id: sessionId });
  }

  /** True while the session's journal is being stored, or its last store failed (to be retried). */
  journalPending(sessionId: string): boolean {
    return this.#journalUploads.has(sessionId) || this.#staleJournals.has(sessionId);
  }

  /** Stores again every journal whose last upload failed (the pipeline's sweep calls this). */
  async retryStaleJournals(): Promise<void> {
    for (const id of [...this.#staleJournals]) await this.storeJournal(id);
  }

  async drain(): Promise<void> {
    await this.#queue.onIdle();
  }

  async #run(ref: SegmentRef): Promise<void> {
    const journal = await this.#journals.get(ref.sessionId);
    const seg = journal.segment(ref.segment);
    const fields = { session_id: ref.sessionId, segment: ref.segment };
    if (!seg) {
      this.#log.warn(fields, 'upload requested for a segment the journal does not know');
      return;
    }
    if (seg.state === 'uploaded' || seg.state === 'expired') return;
    const retrying = seg.state === 'failed' && seg.failed_stage === 'upload';
    if (!(seg.state === 'encoded' || seg.state === 'uploading' || retrying) || !seg.clip) {
      this.#log.warn({ ...fields, state: seg.state }, 'upload requested for a segment that is not encoded; left as it is');
      return;
    }

    // A clip that vanished from the spool (deleted by hand, a disk repaired) cannot be stored;
    // if the raw segment is still there the segment goes back to be encoded again.
    if (!(await exists(join(journal.dir, seg.clip.file)))) {
      const raw = await exists(join(journal.dir, seg.file));
      if (raw) {
        await journal.updateSegment(seg.number, (s) => {
          s.state = 'sealed';
          delete s.clip;
          delete s.failed_stage;
          delete s.next_attempt_at;
        });
        this.#log.warn({ ...fields, file: seg.clip.file }, `clip ${seg.clip.file} is missing from the spool; segment ${seg.number} goes back to be encoded from ${seg.file}`);
        return;
      }
      const gone = Object.assign(new Error(`${seg.clip.file} and ${seg.file} are both gone from ${journal.dir}`), { name: 'SpoolFilesMissing' });
      await this.#fail(journal, seg, gone, { ...fields, file: seg.clip.file });
      return;
    }

    const data = journal.data;
    // The configured location names the place; a changed RECORDING_UPLOAD_LOCATION gets a fresh key.
    const location = this.#location.describe();
    let key = seg.upload?.location === location ? seg.upload.key : undefined;
    if (!key) {
      key = this.#location.clipKey({
        sessionId: data.session_id,
        userId: data.user_id,
        username: data.username,
        imageId: data.image_id,
        imageFriendlyName: data.image_friendly_name,
        protocol: data.protocol,
        createdAt: data.created_at,
        segment: seg.number,
        segmentStartedAt: seg.started_at,
        now: this.#now(),
      });
    }
    const clipKey = key;
    // Written before the first byte goes out: every later attempt reuses this key.
    const started = await journal.updateSegment(seg.number, (s) => {
      s.state = 'uploading';
      s.upload = { key: clipKey, location };
      if (s.failed_stage !== 'upload') s.attempts = 0;
    });

    const t0 = Date.now();
    const ctx = { ...fields, user_id: data.user_id, user_name: data.username, protocol: data.protocol, key: clipKey, location };
    try {
      const extraKeys = await this.#putSegment(journal, data, started, clipKey);
      const done = await journal.updateSegment(seg.number, (s) => {
        s.state = 'uploaded';
        s.upload = { key: clipKey, location, uploaded_at: this.#now().toISOString(), extra_keys: extraKeys };
        delete s.failed_stage;
        delete s.next_attempt_at;
        delete s.last_error;
      });
      this.#log.info(
        {
          ...ctx,
          metric_name: MetricName.uploadComplete,
          bytes: done.clip?.bytes,
          duration_ms: Date.now() - t0,
          attempts: done.attempts + 1,
        },
        `segment ${seg.number} of session ${ref.sessionId} stored at ${location}/${clipKey}`,
      );
    } catch (err) {
      await this.#fail(journal, started, err, ctx);
      return;
    }
    await this.#uploadJournal(journal, clipKey, ctx);
    await this.#cleanUp(journal, seg.number, ctx);
  }

  /** Clip, thumbnail and (optionally) the raw segment; returns the keys stored besides the clip. */
  async #putSegment(journal: SessionJournal, data: SessionJournalData, seg: SegmentRecord, clipKey: string): Promise<string[]> {
    const clip = seg.clip!;
    const metadata = objectMetadata(data, seg);
    const dir = journal.dir;
    await this.#store.put(clipKey, { path: join(dir, clip.file) }, { contentType: ContentTypes.clip, metadata });
    const extra: string[] = [];
    if (clip.thumbnail && (await exists(join(dir, clip.thumbnail)))) {
      const k = siblingKey(clipKey, THUMBNAIL_SUFFIX);
      await this.#store.put(k, { path: join(dir, clip.thumbnail) }, { contentType: ContentTypes.thumbnail, metadata });
      extra.push(k);
    }
    if (this.#uploadRaw) {
      const rawPath = join(dir, seg.file);
      if (await exists(rawPath)) {
        const k = siblingKey(clipKey, RAW_SUFFIX);
        await this.#store.put(k, { stream: gzipFile(rawPath) }, { contentType: ContentTypes.raw, metadata });
        extra.push(k);
      } else {
        this.#log.warn({ session_id: data.session_id, segment: seg.number, file: seg.file }, 'raw segment is gone; uploading the clip without it');
      }
    }
    return extra;
  }

  /**
   * The journal goes beside the clips after every stored segment, so storage alone tells the
   * whole session. Its failure does not fail the segment (the clip is stored); the next
   * segment's upload carries a fresher journal anyway.
   */
  #uploadJournal(journal: SessionJournal, clipKey: string, ctx: Record<string, unknown>): Promise<void> {
    // One journal upload per session at a time, each reading the journal when its turn comes:
    // two segments finishing together can never leave the older copy stored last.
    const sessionId = journal.sessionId;
    const run = (this.#journalUploads.get(sessionId) ?? Promise.resolve()).then(async () => {
      const data = journal.data;
      const key = journalKey(clipKey, data.session_id);
      try {
        const body = Readable.from([Buffer.from(JSON.stringify(data, null, 2) + '\n')]);
        await this.#store.put(key, { stream: body }, { contentType: ContentTypes.journal, metadata: { session: asciiMeta(data.session_id) } });
        this.#staleJournals.delete(sessionId);
      } catch (err) {
        this.#staleJournals.add(sessionId);
        this.#log.warn({ ...ctx, journal_key: key, err: errorMessage(err) }, 'session journal upload failed; retried by the next sweep');
      }
    });
    this.#journalUploads.set(sessionId, run);
    void run.then(() => {
      if (this.#journalUploads.get(sessionId) === run) this.#journalUploads.delete(sessionId);
    });
    return run;
  }

  async #cleanUp(journal: SessionJournal, segment: number, ctx: Record<string, unknown>): Promise<void> {
    if (this.#keepLocal) return;
    try {
      const seg = journal.segment(segment);
      const removed = seg && seg.state === 'uploaded' ? await removeFiles(journal.dir, mediaFiles(seg)) : [];
      const states = await removeFiles(journal.dir, releasableStateFiles(journal.data));
      this.#log.debug({ ...ctx, removed: [...removed, ...states].map((f) => f.file) }, 'local files removed after upload');
    } catch (err) {
      this.#log.warn({ ...ctx, err: errorMessage(err) }, 'could not remove local files after upload; they stay until retention');
    }
  }

  async #fail(journal: SessionJournal, seg: SegmentRecord, err: unknown, ctx: Record<string, unknown>): Promise<void> {
    const cls = classifyFailure(err);
    const attempts = seg.attempts + 1;
    const next = this.#retry.nextAttemptAt(attempts, cls.kind, this.#now());
    const message = describeError(err);
    await journal.updateSegment(seg.number, (s) => {
      s.state = 'failed';
      s.failed_stage = 'upload';
      s.attempts = attempts;
      s.next_attempt_at = next.toISOString();
      s.last_error = `${cls.code}: ${message}`;
    });
    const line = {
      ...ctx,
      metric_name: MetricName.uploadFailed,
      error_code: cls.code,
      error_kind: cls.kind,
      reason: cls.kind === 'permanent' ? cls.reason : message,
      attempts,
      next_attempt_at: next.toISOString(),
    };
    const msg = `upload of segment ${seg.number} of session ${String(ctx['session_id'])} failed (${cls.code}: ${message}); local files kept, retry at ${next.toISOString()}`;
    if (cls.kind === 'permanent') this.#log.error(line, `${msg}. Retrying cannot fix this alone: ${cls.reason}`);
    else this.#log.warn(line, msg);
  }
}

/** S3 user metadata: naming session, user and segment (ASCII only, so non-ASCII is %-encoded). */
function objectMetadata(data: SessionJournalData, seg: SegmentRecord): Record<string, string> {
  const m: Record<string, string> = { session: asciiMeta(data.session_id), segment: String(seg.number) };
  if (data.user_id) m['user-id'] = asciiMeta(data.user_id);
  if (data.username) m['user'] = asciiMeta(data.username);
  if (data.protocol) m['protocol'] = asciiMeta(data.protocol);
  if (seg.clip?.sha256) m['sha256'] = seg.clip.sha256;
  return m;
}

function asciiMeta(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
}

function gzipFile(path: string): Readable {
  const src = createReadStream(path);
  const gz = createGzip();
  src.on('error', (err) => gz.destroy(err));
  return src.pipe(gz);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** A message even for errors that carry none (AggregateError from a refused connection). */
function describeError(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: unknown[] } | undefined;
  if (e?.message) return e.message;
  if (Array.isArray(e?.errors) && e.errors.length > 0) return e.errors.map(describeError).join('; ');
  return e?.code ?? String(err);
}
