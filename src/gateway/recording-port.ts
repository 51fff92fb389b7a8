import type { RecgwError } from '../errors.js';
import type { Instruction } from '../protocol/index.js';
import type { ReadAlignment } from '../protocol/read-arenas.js';
import type { SessionStartInfo } from '../recording/recorder.js';

// What the gateway needs from the recorder (src/recording/recorder.ts). Declared here as
// structural types so the gateway depends on a small surface, not the recorder's internals;
// the recorder's Recorder and SessionRecording classes satisfy them as they are.

/** What a recording starts with: the recorder's own type, so the two never drift apart. */
export type RecordingStartInfo = SessionStartInfo;

/** One live session's recording: the tap the relay feeds. */
export interface RecordingTap {
  readonly sessionId: string;
  /**
   * Every guacd→client instruction after `ready`, in order, a socket read's worth at a time,
   * with the same bytes as back-to-back views (adjacentRuns()) when the caller has them.
   */
  serverBatch(batch: readonly Instruction[], runs?: readonly Buffer[]): void;
  /** Every client→guacd instruction forwarded (the recorder keeps mouse / key). */
  clientInstruction(ins: Instruction): void;
  /** Where guacd's bytes should be read to for the recording to write them directly, if anywhere. */
  readonly readAlignment?: ReadAlignment | undefined;
  /** Called when recording can no longer continue; the relay must end the session. */
  onFailure(listener: (err: RecgwError) => void): void;
  /** Seals the open segment. */
  close(reason: string): Promise<void>;
}

export interface SessionRecorder {
  /** Throws RECGW_ERR_SPOOL_UNWRITABLE when nothing can be written. */
  checkWritable(): Promise<void>;
  start(info: RecordingStartInfo): Promise<RecordingTap>;
}

/** Throws RECGW_ERR_DISK_FLOOR when the spool's filesystem has less than minFreeBytes free. */
export type DiskFloorCheck = (spoolDir: string, minFreeBytes: number) => Promise<void>;
