// Messages between encode-segment.ts (parent) and render-worker.ts (worker thread).
import type { ErrorCode } from '../errors.js';
import type { Instruction } from '../protocol/index.js';
import type { Bounds } from './display-layer.js';

/** What the worker needs of display-model.ts's DisplayModel. */
export interface FrameModel {
  apply(ins: Instruction): void | Promise<void>;
  readonly width: number;
  readonly height: number;
  readonly dirty: boolean;
  render(): Buffer;
  /** Areas the last render() rewrote; the rest of its Buffer is unchanged. */
  readonly renderedAreas: readonly Bounds[];
  serializeState(): string;
  readonly unsupported: ReadonlyMap<string, number>;
  readonly malformed: number;
}

export interface WorkerInput {
  input: string;
  statePath?: string;
  stateOut?: string;
  framerate: number;
}

export interface RenderSummary {
  /** Frames rendered and stored in the clip (changes only, plus the final hold). */
  frames: number;
  /** Frame-rate slots the clip spans (last slot + 1): what a constant-rate clip would hold. */
  slots: number;
  durationMs: number;
  width: number;
  height: number;
  bytesRead: number;
  fileBytes: number;
  firstSync: number | undefined;
  lastTimestamp: number | undefined;
  refusedTimestamps: number;
  unsupported: Record<string, number>;
  malformed: number;
  truncated: boolean;
  inputError: string | undefined;
  stateFile: string | undefined;
}

export type WorkerMessage =
  | { type: 'start'; width: number; height: number }
  /** `generation` identifies the buffer's content for the worker's pool; the ack returns it. */
  | { type: 'frame'; ptsMs: number; pixels: ArrayBuffer; generation: number }
  | { type: 'progress'; bytesRead: number; fileBytes: number; frames: number; mediaMs: number }
  | { type: 'warning'; opcode: string; message: string }
  | { type: 'done'; summary: RenderSummary }
  | { type: 'error'; message: string; code: ErrorCode | undefined };

/** A frame was written to ffmpeg; its buffer comes back for reuse. */
export type ParentMessage = { type: 'ack'; pixels: ArrayBuffer; generation: number };
