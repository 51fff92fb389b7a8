// Encodes one recording (a spool segment or any guacd recording) to an H.264 MP4 clip: a worker
// thread renders changed frames, this thread muxes them with their timestamps into ffmpeg's
// stdin, and ffmpeg (a child process) makes the constant-rate clip. Nothing is held whole: the
// recording streams through the worker and at most a few frames are in flight.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { RecgwError } from '../errors.js';
import { compiledSibling } from '../runtime-paths.js';
import { locateFfmpeg, type FfmpegBinary } from './ffmpeg-binary.js';
import { startClipEncode, warmUpFfmpeg, writeThumbnail, type ClipEncodeJob, type ClipSettings } from './ffmpeg-process.js';
import { matroskaFramePrefix, matroskaHeader } from './matroska-writer.js';
import type { ParentMessage, RenderSummary, WorkerInput, WorkerMessage } from './render-protocol.js';

export type { ClipSettings } from './ffmpeg-process.js';

export interface EncodeProgress {
  /** Bytes of the recording file read (compressed bytes for .gz) and its size. */
  bytesRead: number;
  fileBytes: number;
  /** Frames rendered so far (changes only). */
  frames: number;
  /** Recording time covered so far, ms. */
  mediaMs: number;
  /** Wall time since the encode started, ms. */
  elapsedMs: number;
}

export interface EncodeRecordingOptions {
  /** .guac (plain) or gzip-compressed recording. */
  input: string;
  output: string;
  /** JPEG thumbnail path; none written when absent. */
  thumbnail?: string;
  /** A previous segment's end state (NNNNNN.state.guac) to start from. */
  statePath?: string;
  /** Where to write this recording's end state. */
  stateOut?: string;
  settings: ClipSettings;
  onProgress?: (p: EncodeProgress) => void;
  logger?: Logger;
  /** Which ffmpeg to run; located (FFMPEG_PATH, PATH, npm package) when absent. */
  ffmpeg?: FfmpegBinary;
  /** Called with ffmpeg's pid once it runs (resource sampling in benchmarks and tests). */
  onFfmpegStart?: (pid: number) => void;
}

export interface EncodeResult {
  durationMs: number;
  /**
   * Frames stored in the clip: one per change (variable frame rate on the framerate grid) plus
   * the last one held to the end; `slots` is what a constant-rate clip would hold.
   */
  frames: number;
  slots: number;
  bytesRead: number;
  clipBytes: number;
  sha256: string;
  /** The recording's display size (the clip's is settings.width × height when set). */
  width: number;
  height: number;
  /** Opcodes the display model skipped, with counts. */
  unsupported: Record<string, number>;
  malformed: number;
  /** Set when the input ended mid-instruction or held garbage: the clip stops before it. */
  truncated: boolean;
  inputError?: string;
  stateFile?: string;
  /** The thumbnail's path when one was asked for and written. */
  thumbnail?: string;
  /** Session-timeline timestamps (ms) of the first sync and the last accepted timestamp. */
  firstSync?: number;
  lastTimestamp?: number;
  ffmpeg: FfmpegBinary;
}

/**
 * Renders `input` to `output` (written as output.part, renamed when complete). Rejects with a
 * RecgwError: RECGW_ERR_INPUT when the recording holds nothing to show (no sync before the
 * end or the first bad byte), RECGW_ERR_FFMPEG when ffmpeg fails, RECGW_ERR_ENCODE otherwise.
 * A truncated or partly garbage input resolves with `truncated` set and the clip up to the
 * last complete instruction.
 */
export async function encodeRecording(opts: EncodeRecordingOptions): Promise<EncodeResult> {
  const started = Date.now();
  await readable(opts.input, 'recording');
  if (opts.statePath) await readable(opts.statePath, 'state file');
  const binary = opts.ffmpeg ?? (await locateFfmpeg());
  const partial = `${opts.output}.part`;
  const workerInput: WorkerInput = { input: opts.input, framerate: opts.settings.framerate, statePath: opts.statePath, stateOut: opts.stateOut };
  const worker = new Worker(compiledSibling(import.meta.url, 'render-worker.js'), { workerData: workerInput });
  void warmUpFfmpeg(binary.path);
  let job: ClipEncodeJob | undefined;

  const summary = await new Promise<RenderSummary>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      job?.kill();
      void worker.terminate();
      reject(err);
    };
    worker.on('message', (msg: WorkerMessage) => {
      switch (msg.type) {
        case 'start': {
          job = startClipEncode({
            ffmpegPath: binary.path,
            output: partial,
            settings: opts.settings,
            source: { width: msg.width, height: msg.height },
            logger: opts.logger,
            onStart: opts.onFfmpegStart,
          });
          job.done.catch(fail);
          // The worker sends I420 frames (yuv-frame.ts): ffmpeg has no colour conversion to do.
          void job.write([matroskaHeader(msg.width, msg.height, 1e9 / opts.settings.framerate, 'I420')]);
          break;
        }
        case 'frame': {
          const pixels = Buffer.from(msg.pixels);
          void job?.write([matroskaFramePrefix(msg.ptsMs, pixels.length), pixels]).then(() => {
            // The buffer goes back to the worker for its next frame: no 3 MB garbage per frame.
            if (!settled) worker.postMessage({ type: 'ack', pixels: msg.pixels, generation: msg.generation } satisfies ParentMessage, [msg.pixels]);
          });
          break;
        }
        case 'progress':
          opts.onProgress?.({ ...msg, elapsedMs: Date.now() - started });
          break;
        case 'warning':
          opts.logger?.warn({ opcode: msg.opcode }, `recording: ${msg.message}`);
          break;
        case 'done':
          settled = true;
          // The worker exits by itself once it has posted this; terminate only a straggler.
          setTimeout(() => void worker.terminate(), 5000).unref();
          job?.end();
          resolve(msg.summary);
          break;
        case 'error':
          fail(new RecgwError(msg.code ?? 'RECGW_ERR_ENCODE', msg.message));
          break;
      }
    });
    worker.on('error', (err) => fail(new RecgwError('RECGW_ERR_ENCODE', `render worker crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      if (!settled) fail(new RecgwError('RECGW_ERR_ENCODE', `render worker exited (code ${code}) before finishing`));
    });
  }).catch(async (err: unknown) => {
    await rm(partial, { force: true });
    throw err;
  });

  if (!job || summary.frames === 0) {
    await rm(partial, { force: true });
    throw new RecgwError(
      'RECGW_ERR_INPUT',
      summary.inputError
        ? `${opts.input}: nothing to encode before the error: ${summary.inputError}`
        : summary.firstSync === undefined
          ? `${opts.input}: no sync instruction, so there is no frame to encode`
          : `${opts.input}: the display (layer 0) never gets a size, so there is no frame to encode`,
    );
  }
  try {
    await job.done;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, opts.output);
  let thumbnail: string | undefined;
  if (opts.thumbnail) {
    try {
      await writeThumbnail({
        ffmpegPath: binary.path,
        clip: opts.output,
        output: opts.thumbnail,
        atSeconds: summary.durationMs / 2000,
        logger: opts.logger,
      });
      thumbnail = opts.thumbnail;
    } catch {
      // Already logged with ffmpeg's stderr; a clip without a thumbnail is still a clip.
      await rm(opts.thumbnail, { force: true });
    }
  }
  const [clipBytes, sha256] = await Promise.all([stat(opts.output).then((s) => s.size), sha256Of(opts.output)]);
  return {
    durationMs: summary.durationMs,
    frames: summary.frames,
    slots: summary.slots,
    bytesRead: summary.bytesRead,
    clipBytes,
    sha256,
    width: summary.width,
    height: summary.height,
    unsupported: summary.unsupported,
    malformed: summary.malformed,
    truncated: summary.truncated,
    inputError: summary.inputError,
    stateFile: summary.stateFile,
    thumbnail,
    firstSync: summary.firstSync,
    lastTimestamp: summary.lastTimestamp,
    ffmpeg: binary,
  };
}

async function readable(path: string, what: string): Promise<void> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.message;
    throw new RecgwError('RECGW_ERR_INPUT', `cannot read the ${what} ${path}: ${why}`, { cause: err });
  }
}

function sha256Of(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => hash.update(c))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
