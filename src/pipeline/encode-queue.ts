// Encodes sealed segments to clips, at most `concurrency` at once across all sessions
// (RECORDING_QUEUE_LENGTH). A session's segments go in order: segment N+1 is rendered from
// segment N's end state (NNNNNN.state.guac), so it only joins the queue once N has finished;
// a waiting segment never holds one of the queue's slots.
import { join } from 'node:path';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { errorMessage, isRecgwError } from '../errors.js';
import { encodeRecording, type ClipSettings, type EncodeRecordingOptions } from '../encoding/encode-segment.js';
import type { FfmpegBinary } from '../encoding/ffmpeg-binary.js';
import { MetricName } from '../observability/logger.js';
import type { JournalStore, SegmentRecord, SessionJournal } from '../recording/journal.js';
import { segmentBaseName } from '../recording/journal.js';
import { RetryPolicy } from '../storage/retry-policy.js';
import type { SegmentEncoder, SegmentRef } from './contracts.js';

export interface EncodeQueueOptions {
  /** Encodes running at once, across all sessions (RECORDING_QUEUE_LENGTH). */
  concurrency: number;
  journals: JournalStore;
  settings: ClipSettings;
  logger: Logger;
  /** Which ffmpeg to run; located when absent. */
  ffmpeg?: FfmpegBinary;
  retry?: RetryPolicy;
  now?: () => Date;
  /** Told each ffmpeg's pid as it starts (tests and resource sampling). */
  onFfmpegStart?: EncodeRecordingOptions['onFfmpegStart'];
}

export class EncodeQueue implements SegmentEncoder {
  readonly #queue: PQueue;
  readonly #journals: JournalStore;
  readonly #settings: ClipSettings;
  readonly #log: Logger;
  readonly #ffmpeg: FfmpegBinary | undefined;
  readonly #retry: RetryPolicy;
  readonly #now: () => Date;
  readonly #onFfmpegStart: EncodeQueueOptions['onFfmpegStart'];
  /** The last encode asked for per session; the next one of that session waits for it. */
  readonly #tails = new Map<string, Promise<void>>();

  constructor(options: EncodeQueueOptions) {
    this.#queue = new PQueue({ concurrency: options.concurrency });
    this.#journals = options.journals;
    this.#settings = options.settings;
    this.#log = options.logger;
    this.#ffmpeg = options.ffmpeg;
    this.#retry = options.retry ?? new RetryPolicy();
    this.#now = options.now ?? (() => new Date());
    this.#onFfmpegStart = options.onFfmpegStart;
  }

  /** Encodes running now, and encodes whose turn (queue slot) has not come yet. */
  get running(): number {
    return this.#queue.pending;
  }
  get waiting(): number {
    return this.#queue.size;
  }

  encode(ref: SegmentRef): Promise<void> {
    const before = this.#tails.get(ref.sessionId) ?? Promise.resolve();
    const mine = before.then(() => this.#queue.add(() => this.#run(ref)));
    const tail = mine.catch(() => undefined);
    this.#tails.set(ref.sessionId, tail);
    void tail.then(() => {
      if (this.#tails.get(ref.sessionId) === tail) this.#tails.delete(ref.sessionId);
    });
    return mine;
  }

  async drain(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()]);
    await this.#queue.onIdle();
  }

  async #run(ref: SegmentRef): Promise<void> {
    const journal = await this.#journals.get(ref.sessionId);
    const seg = journal.segment(ref.segment);
    const fields = { session_id: ref.sessionId, segment: ref.segment };
    if (!seg) {
      this.#log.warn(fields, 'encode requested for a segment the journal does not know');
      return;
    }
    const retrying = seg.state === 'failed' && seg.failed_stage === 'encode';
    // `encoding` is accepted too: only this queue sets it, so it is left over from a crash.
    if (!(seg.state === 'sealed' || seg.state === 'encoding' || retrying)) {
      if (seg.state !== 'encoded') this.#log.debug({ ...fields, state: seg.state }, 'encode requested for a segment not sealed; left as it is');
      return;
    }

    const base = segmentBaseName(seg.number);
    const statePath = this.#previousState(journal, seg, fields);
    await journal.updateSegment(seg.number, (s) => {
      s.state = 'encoding';
      if (s.failed_stage !== 'encode') s.attempts = 0;
    });

    const data = journal.data;
    const ctx = { ...fields, user_id: data.user_id, user_name: data.username, protocol: data.protocol };
    const t0 = Date.now();
    try {
      const r = await encodeRecording({
        input: join(journal.dir, seg.file),
        output: join(journal.dir, `${base}.mp4`),
        thumbnail: join(journal.dir, `${base}.jpg`),
        statePath,
        stateOut: join(journal.dir, `${base}.state.guac`),
        settings: this.#settings,
        logger: this.#log.child(fields),
        ffmpeg: this.#ffmpeg,
        onFfmpegStart: this.#onFfmpegStart,
      });
      const wallMs = Date.now() - t0;
      await journal.updateSegment(seg.number, (s) => {
        s.state = 'encoded';
        s.clip = {
          file: `${base}.mp4`,
          bytes: r.clipBytes,
          sha256: r.sha256,
          thumbnail: r.thumbnail ? `${base}.jpg` : undefined,
          duration_ms: Math.round(r.durationMs),
          frames: r.frames,
          width: this.#settings.width || r.width + (r.width % 2),
          height: this.#settings.height || r.height + (r.height % 2),
        };
        if (r.stateFile) s.state_file = `${base}.state.guac`;
        s.first_sync ??= r.firstSync;
        s.last_sync ??= r.lastTimestamp;
        delete s.failed_stage;
        delete s.next_attempt_at;
        delete s.last_error;
      });
      const line = {
        ...ctx,
        metric_name: MetricName.encodeComplete,
        duration_ms: Math.round(r.durationMs),
        wall_ms: wallMs,
        realtime_factor: wallMs > 0 ? Math.round((r.durationMs / wallMs) * 10) / 10 : undefined,
        frames: r.frames,
        frame_slots: r.slots,
        clip_bytes: r.clipBytes,
        unsupported: Object.keys(r.unsupported).length > 0 ? r.unsupported : undefined,
      };
      if (r.truncated) {
        this.#log.warn({ ...line, reason: r.inputError }, `segment ${seg.number} of session ${ref.sessionId} ends mid-instruction; encoded up to its last complete instruction`);
      } else {
        this.#log.info(line, `segment ${seg.number} of session ${ref.sessionId} encoded`);
      }
    } catch (err) {
      await this.#fail(journal, seg.number, retrying ? seg.attempts + 1 : 1, err, { ...ctx, wall_ms: Date.now() - t0 });
    }
  }

  /** The previous segment's end state, if it has one; a missing one is logged, not fatal. */
  #previousState(journal: SessionJournal, seg: SegmentRecord, fields: Record<string, unknown>): string | undefined {
    if (seg.number <= 1) return undefined;
    const prev = journal.segment(seg.number - 1);
    if (prev?.state_file) return join(journal.dir, prev.state_file);
    if (prev) {
      this.#log.warn(
        { ...fields, previous_state: prev.state },
        `segment ${seg.number - 1} has no end state (${prev.state}); segment ${seg.number}'s clip starts from a blank display`,
      );
    }
    return undefined;
  }

  async #fail(journal: SessionJournal, segment: number, attempts: number, err: unknown, ctx: Record<string, unknown>): Promise<void> {
    // A recording that cannot be rendered will not improve by retrying soon.
    const kind = isRecgwError(err, 'RECGW_ERR_INPUT') ? 'permanent' : 'transient';
    const next = this.#retry.nextAttemptAt(attempts, kind, this.#now());
    const message = errorMessage(err);
    await journal.updateSegment(segment, (s) => {
      s.state = 'failed';
      s.failed_stage = 'encode';
      s.attempts = attempts;
      s.next_attempt_at = next.toISOString();
      s.last_error = message.split('\n')[0];
    });
    this.#log.error(
      { ...ctx, metric_name: MetricName.encodeFailed, err: message, attempts, next_attempt_at: next.toISOString() },
      `encoding segment ${segment} of session ${String(ctx['session_id'])} failed (${message.split('\n')[0]}); raw segment kept, retry at ${next.toISOString()}`,
    );
  }
}
