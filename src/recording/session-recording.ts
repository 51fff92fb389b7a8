import { join } from 'node:path';
import { GuacStatus, RecgwError, errorMessage } from '../errors.js';
import { MetricName, type Logger } from '../observability/logger.js';
import { encodeInstructionBuffer, hasOpcode, type Instruction } from '../protocol/index.js';
import type { SegmentSealedListener } from '../pipeline/contracts.js';
import { segmentBaseName, type SegmentRecord, type SessionJournal } from './journal.js';
import { LeftOutStreams } from './left-out-streams.js';
import type { ReadAlignment } from '../protocol/read-arenas.js';
import { SegmentWriter, type SegmentWriterOptions, type WrittenSegment } from './segment-writer.js';
import { SyncClock } from './sync-clock.js';

/** What a SessionRecording needs from its Recorder; fixed for the recording's life. */
export interface SessionRecordingContext {
  journal: SessionJournal;
  /** Already bound to session_id (and protocol, user); lines here do not repeat it. */
  logger: Logger;
  segmentBytes: number;
  includeKeys: boolean;
  includeClipboard: boolean;
  includeAudio: boolean;
  maxPendingBytes: number;
  /** Options every segment's writer is made with (the first one's by the Recorder, too). */
  writerOptions: Pick<SegmentWriterOptions, 'pageCache' | 'direct'>;
  onSealed: SegmentSealedListener;
  now: () => number;
  /** Index of this connection in the journal's connections[]. */
  connectionIndex: number;
  /** Called once the recording is closed and its last segment sealed. */
  onClosed: (rec: SessionRecording) => void;
}

/** Once a segment holds this share of the limit, it ends right after the next `sync`. */
const ROLL_AFTER_SYNC_SHARE = 0.9;

const INTEGER = /^-?\d{1,10}$/;

/**
 * One connection's recording: the guacd→client instructions after `ready` plus the client's
 * mouse moves (and keys, if configured), written to rolling segment files of one session.
 *
 * serverInstruction() and clientInstruction() run on the relay's path, so they only decide and
 * queue a reference to the instruction's bytes (no copy); the disk is written by each segment's SegmentWriter in the background, and sealing a
 * segment (fsync, journal) happens off that path too, in segment order.
 */
export class SessionRecording {
  readonly sessionId: string;
  readonly #ctx: SessionRecordingContext;
  readonly #log: Logger;
  readonly #streams: LeftOutStreams;
  readonly #clock: SyncClock;
  /** When the batch being recorded arrived; read at its first sync. */
  #batchAt: number | undefined;
  readonly #rollAfterSyncAt: number;

  #segment: number;
  #writer: SegmentWriter;
  #firstSync: number | undefined;
  #lastSync: number | undefined;
  /** Writers of earlier segments still flushing; their queued bytes count against the memory bound. */
  readonly #finishing = new Set<SegmentWriter>();
  #sealChain: Promise<void> = Promise.resolve();
  #sizeSeen = false;
  #stopped = false;
  #failure: RecgwError | undefined;
  #failureListeners: Array<(err: RecgwError) => void> = [];
  #closing: Promise<void> | undefined;

  /**
   * Where the relay should place guacd's next bytes in memory so that the segment writer can
   * write them to the disk directly (direct-write.ts); undefined when it writes buffered only.
   */
  readonly readAlignment: ReadAlignment | undefined;

  /** @internal Made by Recorder.start(), which has opened the first segment's file. */
  constructor(sessionId: string, firstSegment: number, writer: SegmentWriter, ctx: SessionRecordingContext) {
    this.sessionId = sessionId;
    this.#ctx = ctx;
    this.#log = ctx.logger;
    this.#streams = new LeftOutStreams(ctx);
    this.#clock = new SyncClock(ctx.now);
    this.#rollAfterSyncAt = Math.floor(ctx.segmentBytes * ROLL_AFTER_SYNC_SHARE);
    this.#segment = firstSegment;
    this.#writer = writer;
    this.#watch(writer);
    const direct = ctx.writerOptions.direct;
    // Unless something is left out or added first, guacd's next byte lands at the writer's end.
    this.readAlignment = direct && { nextOffset: () => this.#writer.bytes, addressPhase: direct.addressPhase };
  }

  /** Number of the segment being written. */
  get segment(): number {
    return this.#segment;
  }

  /** Bytes written to the current segment. */
  get bytes(): number {
    return this.#writer.bytes;
  }

  /** The error that ended this recording, if one did. */
  get failure(): RecgwError | undefined {
    return this.#failure;
  }

  /** Every guacd→client instruction after `ready`, in order. */
  serverInstruction(ins: Instruction): void {
    this.serverBatch([ins]);
  }

  /**
   * guacd→client instructions after `ready`, in order: what one socket read delivered. `runs`,
   * when given, are the same instructions' bytes as back-to-back views (adjacentRuns(), which
   * the relay makes anyway to send them): a read that needs no instruction left out and no
   * roll is then queued as those few views, after a pass that tests a few bytes per
   * instruction. Otherwise each instruction is looked at and queued on its own. The writer is
   * told to write and the memory bound is checked once per batch.
   */
  serverBatch(batch: readonly Instruction[], runs?: readonly Buffer[]): void {
    if (this.#stopped) return;
    // Read the clock once per read, not per sync: a fast session's read holds dozens of syncs.
    this.#batchAt = undefined;
    if (runs === undefined || !this.#queueWhole(batch, runs)) {
      for (let i = 0; i < batch.length; i++) {
        this.#server(batch[i]!);
        if (this.#stopped) return;
      }
    }
    this.#wrote();
  }

  /**
   * Queues `runs` when the whole read belongs in the recording as it is and no roll can fall
   * inside it; returns false otherwise, having queued nothing. Syncs are noted as they are met;
   * when it gives up after some, #server notes them again, which changes nothing: the read's
   * bytes were checked first, so no roll falls inside it either way, and its syncs share the
   * read's one arrival time.
   */
  #queueWhole(batch: readonly Instruction[], runs: readonly Buffer[]): boolean {
    const writer = this.#writer;
    let bytes = writer.bytes;
    for (let i = 0; i < runs.length; i++) bytes += runs[i]!.length;
    // Below this no segment limit can be reached, so the only roll check (after a sync) is moot.
    if (bytes >= this.#rollAfterSyncAt) return false;
    const streams = this.#streams;
    for (let i = 0; i < batch.length; i++) {
      const ins = batch[i]!;
      const raw = ins.raw;
      if (hasOpcode(raw, 'sync')) {
        const ts = ins.intArg(0);
        this.#tick(ts);
        this.#segmentSync(ts);
        continue;
      }
      if (raw[0] === 0x30 /* '0.' */ || streams.mayLeaveOut(raw) || (!this.#sizeSeen && hasOpcode(raw, 'size'))) return false;
    }
    for (let i = 0; i < runs.length; i++) writer.queue(runs[i]!);
    return true;
  }

  #server(ins: Instruction): void {
    const raw = ins.raw;
    // guacd never sends an empty opcode; one here is a tunnel-internal instruction (the
    // connection id a relay adds after `ready`), which is no part of what was displayed.
    if (raw[0] === 0x30 /* '0.' */) return;
    const syncTs = hasOpcode(raw, 'sync') ? ins.intArg(0) : undefined;
    if (syncTs !== undefined) this.#tick(syncTs);
    if (!this.#streams.keep(ins)) return;
    if (!this.#sizeSeen && hasOpcode(raw, 'size') && ins.arg(0) === '0') {
      this.#sizeSeen = true;
      this.#noteSize(ins.intArg(1), ins.intArg(2));
    }
    // May roll first: the sync then belongs to the new segment.
    this.#queue(raw);
    if (syncTs !== undefined) {
      this.#segmentSync(syncTs);
      if (!this.#stopped && this.#writer.bytes >= this.#rollAfterSyncAt) this.#roll();
    }
  }

  /** A guacd `sync` tick for the input clock; syncs of one socket read share its arrival time. */
  #tick(timestamp: number): void {
    this.#clock.sync(timestamp, (this.#batchAt ??= this.#ctx.now()));
  }

  /** A guacd `sync` written to the current segment: its first and last sync. */
  #segmentSync(timestamp: number): void {
    if (!Number.isFinite(timestamp)) return;
    this.#firstSync ??= timestamp;
    this.#lastSync = timestamp;
  }

  /** Every client→guacd instruction; mouse moves (and keys, if configured) are recorded. */
  clientInstruction(ins: Instruction): void {
    if (this.#stopped) return;
    const raw = ins.raw;
    // Tunnel-internal instructions (empty opcode), nop, sync acks, size...: never recorded.
    if (hasOpcode(raw, 'mouse')) {
      const x = ins.arg(0);
      const y = ins.arg(1);
      const mask = ins.arg(2);
      if (!INTEGER.test(x) || !INTEGER.test(y) || !INTEGER.test(mask)) return;
      // Before the first sync there is no clock to put the move on (guacd's VNC support would
      // crash on it anyway).
      const ts = this.#clock.stamp();
      if (ts === undefined) return;
      this.#write(encodeInstructionBuffer('mouse', x, y, mask, ts));
    } else if (this.#ctx.includeKeys && hasOpcode(raw, 'key')) {
      const keysym = ins.arg(0);
      const pressed = ins.arg(1);
      if (!INTEGER.test(keysym) || !INTEGER.test(pressed)) return;
      const ts = this.#clock.stamp();
      if (ts === undefined) return;
      this.#write(encodeInstructionBuffer('key', keysym, pressed, ts));
    }
  }

  /** Registers a listener called once, when writing fails (or fail() is called). */
  onFailure(listener: (err: RecgwError) => void): void {
    if (this.#failure) {
      this.#callFailureListener(listener, this.#failure);
      return;
    }
    this.#failureListeners.push(listener);
  }

  /**
   * Ends the recording with an error: nothing more is written, what was written is sealed, and
   * the failure listeners are told so the gateway ends the session (never relays it unrecorded).
   */
  fail(err: RecgwError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#stopped = true;
    this.#log.error(
      { segment: this.#segment, err_code: err.code, reason: err.message },
      'recording failed; ending the session',
    );
    const listeners = this.#failureListeners;
    this.#failureListeners = [];
    for (const l of listeners) this.#callFailureListener(l, err);
    void this.close(`recording failed: ${err.code}: ${err.message}`);
  }

  /** Flushes, fsyncs and seals the last segment; records the connection's end. Idempotent. */
  close(reason: string): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: string): Promise<void> {
    this.#stopped = true;
    this.#sealCurrent();
    await this.#sealChain;
    const now = new Date().toISOString();
    try {
      await this.#ctx.journal.update((d) => {
        const conn = d.connections[this.#ctx.connectionIndex];
        if (conn) {
          conn.ended_at = now;
          conn.end_reason = reason;
        }
        d.ended_at = now;
      });
    } catch (err) {
      this.#log.error({ reason: errorMessage(err) }, 'cannot record the end of the connection in the journal');
    }
    this.#ctx.onClosed(this);
  }

  #write(bytes: Buffer): void {
    this.#queue(bytes);
    this.#wrote();
  }

  /** Hands whole instructions to the writer; #wrote() must follow once the batch is queued. */
  #queue(bytes: Buffer): void {
    const w = this.#writer;
    // Roll before an instruction that would push the segment past the limit; an instruction
    // bigger than the limit on its own still gets written, alone in its segment.
    if (w.bytes > 0 && w.bytes + bytes.length > this.#ctx.segmentBytes) this.#roll();
    this.#writer.queue(bytes);
  }

  /** Has the queued bytes written, and ends the recording if more wait than memory allows. */
  #wrote(): void {
    if (this.#stopped) return;
    this.#writer.writeSoon();
    let pending = this.#writer.pendingBytes;
    if (this.#finishing.size > 0) for (const f of this.#finishing) pending += f.pendingBytes;
    if (pending > this.#ctx.maxPendingBytes) {
      // Fail rather than pause: the tap cannot slow guacd down without freezing the user's
      // screen, and a disk that lets this much pile up is failing or far too slow. Holding more
      // grows memory without bound; dropping bytes would leave a recording with holes. Ending
      // the session is the fail-closed choice.
      this.fail(
        new RecgwError(
          'RECGW_ERR_SEGMENT_WRITE',
          `recording of session ${this.sessionId} cannot keep up: ${Math.round(pending / 1048576)} MiB waiting for the disk; check the spool's disk (RECORDING_SPOOL_DIR)`,
          { guacStatus: GuacStatus.SERVER_ERROR },
        ),
      );
    }
  }

  #roll(): void {
    this.#sealCurrent();
    const n = this.#segment + 1;
    const file = `${segmentBaseName(n)}.guac`;
    const record: SegmentRecord = { number: n, file, state: 'recording', bytes: 0, started_at: new Date().toISOString(), attempts: 0 };
    // The journal entry and the file are made side by side; recovery handles a file the
    // journal does not list yet, so neither has to wait for the other.
    this.#ctx.journal.update((d) => void d.segments.push(record)).catch((err: unknown) => this.#journalFailed(err));
    this.#segment = n;
    // #sealCurrent() above has called finish() on the previous writer; this one writes after it.
    this.#writer = new SegmentWriter(join(this.#ctx.journal.dir, file), { ...this.#ctx.writerOptions, after: this.#writer.written() });
    this.#watch(this.#writer);
  }

  /** Hands the current segment to the seal chain; the writer stays for bytes/segment getters. */
  #sealCurrent(): void {
    const writer = this.#writer;
    if (this.#finishing.has(writer)) return;
    this.#finishing.add(writer);
    const n = this.#segment;
    const firstSync = this.#firstSync;
    const lastSync = this.#lastSync;
    this.#firstSync = undefined;
    this.#lastSync = undefined;
    const done = writer.finish();
    this.#sealChain = this.#sealChain.then(async () => {
      const result = await done;
      this.#finishing.delete(writer);
      if (result.error) {
        // The segment ends early: what reached the disk is sealed, the rest is gone. Say so
        // for each segment, also when the session already failed on another one (a segment
        // still flushing when the next one hit a full disk).
        this.#log.error(
          { segment: n, err_code: result.error.code, bytes: result.bytes },
          'segment write failed; sealing what reached the disk',
        );
      }
      if (result.sha256 === '') {
        // The file could not be read back to hash it: leave the segment 'recording' in the
        // journal for spool recovery (which cuts, hashes and seals it) rather than seal it blind.
        this.#log.error({ segment: n, bytes: result.bytes }, 'segment could not be read back; left for spool recovery');
        return;
      }
      await this.#seal(writer, n, result, firstSync, lastSync);
    });
  }

  async #seal(
    writer: SegmentWriter,
    n: number,
    { bytes, sha256, directBytes, bouncedBytes }: WrittenSegment,
    firstSync: number | undefined,
    lastSync: number | undefined,
  ): Promise<void> {
    const journal = this.#ctx.journal;
    try {
      if (bytes === 0) {
        // Nothing recorded (the connection ended right after a roll, or the first write
        // failed): an empty segment is noise for every later stage.
        await writer.discard();
        await journal.update((d) => {
          d.segments = d.segments.filter((s) => s.number !== n);
        });
        return;
      }
      const sealedAt = new Date().toISOString();
      await journal.updateSegment(n, (s) => {
        s.state = 'sealed';
        s.bytes = bytes;
        s.sha256 = sha256;
        s.sealed_at = sealedAt;
        if (firstSync !== undefined) s.first_sync = firstSync;
        if (lastSync !== undefined) s.last_sync = lastSync;
      });
    } catch (err) {
      this.#journalFailed(err);
      return;
    }
    this.#log.info(
      // direct_bytes: how much went to the disk by direct writes; bounced_bytes: how much of that
      // had to be copied to line up first, not taken straight from guacd's read arenas.
      { segment: n, bytes, direct_bytes: directBytes, bounced_bytes: bouncedBytes, metric_name: MetricName.segmentSealed },
      'segment sealed',
    );
    try {
      this.#ctx.onSealed({ sessionId: this.sessionId, segment: n });
    } catch (err) {
      this.#log.error({ segment: n, reason: errorMessage(err) }, 'segment-sealed listener threw');
    }
  }

  #watch(writer: SegmentWriter): void {
    writer.onError((err) => {
      this.fail(
        new RecgwError(
          'RECGW_ERR_SEGMENT_WRITE',
          `writing ${writer.path} failed (${err.message}); what was written before is kept; check the spool's disk (RECORDING_SPOOL_DIR)`,
          { cause: err, guacStatus: GuacStatus.SERVER_ERROR },
        ),
      );
    });
  }

  #journalFailed(err: unknown): void {
    this.fail(
      new RecgwError(
        'RECGW_ERR_SEGMENT_WRITE',
        `cannot write the journal of session ${this.sessionId} (${errorMessage(err)}); check the spool's disk (RECORDING_SPOOL_DIR)`,
        { cause: err, guacStatus: GuacStatus.SERVER_ERROR },
      ),
    );
  }

  #noteSize(width: number, height: number): void {
    if (!Number.isFinite(width) || !Number.isFinite(height)) return;
    this.#ctx.journal
      .update((d) => {
        if (d.width === undefined || d.height === undefined) {
          d.width = width;
          d.height = height;
        }
      })
      .catch((err: unknown) => this.#journalFailed(err));
  }

  #callFailureListener(listener: (err: RecgwError) => void, err: RecgwError): void {
    try {
      listener(err);
    } catch (e) {
      this.#log.error({ reason: errorMessage(e) }, 'recording-failure listener threw');
    }
  }
}
