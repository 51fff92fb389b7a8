// Every ffmpeg invocation recgw makes goes through this module, the only importer of
// fluent-ffmpeg: its repository was archived upstream in 2025, so replacing it means
// rewriting this one file. Known behaviour worked around here: it probes `-formats` and
// `-encoders` once per process before the first run; its error text is only the first stderr
// line (so we keep and log the whole tail); it does not destroy the input after an error or a
// kill (we do); and setFfmpegPath() is process-global, so it is set before each run.
import ffmpeg from 'fluent-ffmpeg';
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { RecgwError } from '../errors.js';

export interface ClipSettings {
  /** Video bitrate in bits per second (RECORDING_BITRATE). */
  bitrate: number;
  /** Frames per second of the clip (RECORDING_FRAMERATE). */
  framerate: number;
  /** Clip size; 0×0 keeps the source size (rounded up to even). Aspect is always kept, padded. */
  width: number;
  height: number;
  /** Threads ffmpeg may use (bounded so several encodes share the machine). */
  threads: number;
  /**
   * x264 preset. Default: 'ultrafast' with CABAC turned back on (-x264-params cabac=1).
   * Measured at 1024×768 25 fps 2000k against the lossless frames (ffmpeg CPU user+sys, clip
   * size, PSNR Y): rdp-desktop superfast 4.9 s, 8.4 MB, 55.2 dB; ultrafast 3.7 s, 10.2 MB,
   * 55.0 dB; ultrafast+cabac 4.1 s, 9.7 MB, 58.3 dB. vnc-desktop superfast 6.1 s, 10.4 MB,
   * 57.1 dB vs 5.4 s, 12.4 MB, 62.3 dB; ssh-terminal 2.1 s, 1.8 MB, 66.9 dB vs 1.8 s, 2.2 MB,
   * 71.3 dB. Less CPU and sharper screen content for ~20% more bytes, all well below
   * guacenc's clips (16.2, 12.2, 13.3 MB). An explicit preset is used as x264 defines it.
   */
  preset?: 'ultrafast' | 'superfast' | 'veryfast' | 'faster' | 'fast' | 'medium';
}

export interface ClipEncodeJob {
  /**
   * Writes chunks of the Matroska stream to ffmpeg's stdin, in call order; resolves once they
   * are handed to the pipe, so their memory may be reused. Never rejects: a failed ffmpeg
   * shows in `done`.
   */
  write(chunks: Buffer[]): Promise<void>;
  /** Ends the stream: ffmpeg finishes the clip. */
  end(): void;
  /** Resolves when ffmpeg has written the clip and exited 0. */
  readonly done: Promise<void>;
  /** ffmpeg's process id once it runs (for resource sampling). */
  pid(): number | undefined;
  /** Stops ffmpeg (SIGKILL) and destroys its stdin. */
  kill(): void;
}

/**
 * The ffmpeg output options for an H.264 clip; exported so tests can pin them. `source` is the
 * size of the frames going in, when known: an even-sided source needs no padding filter.
 */
export function clipOutputOptions(s: ClipSettings, source?: { width: number; height: number }): string[] {
  const filters: string[] = [];
  if (s.width > 0 && s.height > 0) {
    // Left out when the frames already have the clip's size (the render worker's are even):
    // scale and pad would still cost a copy of every frame.
    if (!(source && source.width === s.width && source.height === s.height)) {
      filters.push(
        `scale=${s.width}:${s.height}:force_original_aspect_ratio=decrease`,
        `pad=${s.width}:${s.height}:(ow-iw)/2:(oh-ih)/2`,
      );
    }
  } else if (!source || source.width % 2 !== 0 || source.height % 2 !== 0) {
    // libx264 with yuv420p needs even sides; pad a pixel rather than scale the picture. Left out
    // when the sides are even already: pad copies every frame even when it adds nothing
    // (measured on rdp-desktop, 667 frames 1024×768: 0.3 s of ffmpeg CPU).
    filters.push('pad=ceil(iw/2)*2:ceil(ih/2)*2');
  }
  filters.push('setsar=1', 'format=yuv420p');
  return [
    '-vf', filters.join(','),
    // Variable frame rate: each changed frame is stored once with its timestamp (already on
    // the RECORDING_FRAMERATE grid, see frame-clock.ts) and lasts until the next one, so an
    // idle stretch costs one frame, not framerate × seconds of duplicates for x264 to analyse.
    // Measured on vnc-desktop at 10 fps: 3.6 s of ffmpeg CPU instead of 5.2 s for a constant
    // rate (fps filter), same PSNR; on the mostly idle ssh-terminal 233 frames instead of 471.
    // -vsync vfr is accepted by ffmpeg 4.1 (npm build, no -fps_mode) and 5.1.
    '-vsync', 'vfr',
    '-c:v', 'libx264',
    ...(s.preset ? ['-preset', s.preset] : ['-preset', 'ultrafast', '-x264-params', 'cabac=1']),
    // No B-frames: with uneven frame gaps the 4.1 build's MP4 muxer then writes the wrong
    // duration (0.8 s for a 1.1 s clip, measured); B-frames gain little on screen content.
    '-bf', '0',
    '-pix_fmt', 'yuv420p',
    '-b:v', String(s.bitrate),
    '-maxrate', String(s.bitrate * 2),
    '-bufsize', String(s.bitrate * 4),
    // A keyframe at least every 5 s of frames keeps seeking in a browser <video> quick.
    '-g', String(s.framerate * 5),
    '-threads', String(s.threads),
    '-movflags', '+faststart',
    '-an',
    '-f', 'mp4',
  ];
}

let warming: Promise<void> | undefined;

/**
 * Runs fluent-ffmpeg's once-per-process capability probe (`ffmpeg -formats`, `-encoders`) now,
 * so a caller can overlap it with other start-up work (encode-segment.ts: the render worker's)
 * instead of the first frames waiting on it; startClipEncode waits for it, so it never runs
 * twice. Measured: ssh-terminal's first frame reached ffmpeg ~150 ms sooner. Never rejects; a
 * failing ffmpeg fails in the run itself, with its stderr.
 */
export function warmUpFfmpeg(ffmpegPath: string): Promise<void> {
  warming ??= new Promise<void>((resolve) => {
    const probe = ffmpeg().setFfmpegPath(ffmpegPath);
    probe.availableFormats(() => probe.availableEncoders(() => resolve()));
  });
  return warming;
}

/**
 * Starts ffmpeg reading a Matroska stream of timestamped raw frames (see matroska-writer.ts)
 * and writing an H.264 MP4 clip to `output`.
 */
export function startClipEncode(opts: {
  ffmpegPath: string;
  output: string;
  settings: ClipSettings;
  /** Size of the frames that will be written, when known (see clipOutputOptions). */
  source?: { width: number; height: number };
  logger?: Logger;
  /** Told ffmpeg's pid once it runs. */
  onStart?: (pid: number) => void;
}): ClipEncodeJob {
  // Frames go straight to ffmpeg's stdin (not through a stream fluent-ffmpeg pipes), so a
  // write's callback means the frame left our memory and its buffer can be reused.
  const command = ffmpeg({ stdoutLines: 40 })
    .setFfmpegPath(opts.ffmpegPath)
    .input('pipe:0')
    .inputFormat('matroska')
    .output(opts.output)
    .outputOptions(clipOutputOptions(opts.settings, opts.source));
  let proc: ChildProcess | undefined;
  let killed = false;
  let failed = false;
  let markStarted: (stdin: Writable | undefined) => void = () => undefined;
  const started = new Promise<Writable | undefined>((resolve) => (markStarted = resolve));
  let stopBeforeRun: () => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    // Killed while the capability probe still runs: ffmpeg never starts, so no 'error' comes.
    stopBeforeRun = () => reject(new RecgwError('RECGW_ERR_FFMPEG', 'ffmpeg was stopped'));
    command.on('start', () => {
      proc = (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
      // EPIPE when ffmpeg dies early; its exit status and stderr tell the story.
      proc?.stdin?.on('error', () => undefined);
      markStarted(proc?.stdin ?? undefined);
      if (proc?.pid !== undefined) opts.onStart?.(proc.pid);
    });
    command.on('end', () => resolve());
    command.on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
      failed = true;
      proc?.stdin?.destroy();
      markStarted(undefined);
      const tail = stderrTail(stderr);
      if (!killed) opts.logger?.error({ err: err.message, ffmpeg_stderr: tail }, 'ffmpeg failed encoding a clip');
      reject(
        new RecgwError('RECGW_ERR_FFMPEG', killed ? 'ffmpeg was stopped' : `ffmpeg failed: ${err.message}\n${tail}`, { cause: err }),
      );
    });
  });
  let running = false;
  void warmUpFfmpeg(opts.ffmpegPath).then(() => {
    if (killed) return;
    running = true;
    command.run();
  });
  let queue: Promise<void> = Promise.resolve();
  return {
    write(chunks) {
      queue = queue.then(async () => {
        const stdin = await started;
        if (!stdin || failed || stdin.destroyed) return;
        let last: Promise<void> = Promise.resolve();
        for (const c of chunks) last = new Promise<void>((r) => stdin.write(c, () => r()));
        await last;
      });
      return queue;
    },
    end() {
      queue = queue.then(async () => {
        const stdin = await started;
        stdin?.end();
      });
    },
    done,
    pid: () => proc?.pid,
    kill: () => {
      killed = true;
      if (running) command.kill('SIGKILL');
      else stopBeforeRun();
      proc?.stdin?.destroy();
      markStarted(undefined);
    },
  };
}

/** Writes a JPEG still of `clip` at `atSeconds`, at most `maxWidth` wide. */
export function writeThumbnail(opts: {
  ffmpegPath: string;
  clip: string;
  output: string;
  atSeconds: number;
  maxWidth?: number;
  logger?: Logger;
}): Promise<void> {
  const maxWidth = opts.maxWidth ?? 320;
  return new Promise<void>((resolve, reject) => {
    ffmpeg({ stdoutLines: 40 })
      .setFfmpegPath(opts.ffmpegPath)
      .input(opts.clip)
      // -ss before -i seeks by keyframe index first: fast on long clips.
      .inputOptions(['-ss', opts.atSeconds.toFixed(3)])
      .output(opts.output)
      .outputOptions(['-frames:v', '1', '-vf', `scale='min(${maxWidth},iw)':-2`, '-q:v', '4', '-f', 'image2', '-y'])
      .on('end', () => resolve())
      .on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
        const tail = stderrTail(stderr);
        opts.logger?.error({ err: err.message, ffmpeg_stderr: tail }, 'ffmpeg failed writing a thumbnail');
        reject(new RecgwError('RECGW_ERR_FFMPEG', `ffmpeg failed writing a thumbnail: ${err.message}\n${tail}`, { cause: err }));
      })
      .run();
  });
}

/** Reads a media file's duration and frame count by decoding it (works without ffprobe). */
export function measureClip(ffmpegPath: string, clip: string): Promise<{ durationMs: number; frames: number }> {
  return new Promise((resolve, reject) => {
    // stdoutLines 0 keeps all of stderr: "Duration:" is near the top, the last "frame=" at the end.
    ffmpeg({ stdoutLines: 0 })
      .setFfmpegPath(ffmpegPath)
      .input(clip)
      .output('-')
      .outputOptions(['-f', 'null'])
      .on('error', (err: Error) => reject(new RecgwError('RECGW_ERR_FFMPEG', `cannot read ${clip}: ${err.message}`, { cause: err })))
      .on('end', (_stdout: string | null, stderr: string | null) => {
        const text = stderr ?? '';
        const frames = [...text.matchAll(/frame=\s*(\d+)/g)].pop();
        const time = [...text.matchAll(/Duration: (\d+):(\d+):(\d+(?:\.\d+)?)/g)].pop();
        if (!frames || !time) return reject(new RecgwError('RECGW_ERR_FFMPEG', `cannot read ${clip}: no duration in ffmpeg's output`));
        const durationMs = (Number(time[1]) * 3600 + Number(time[2]) * 60 + Number(time[3])) * 1000;
        resolve({ durationMs, frames: Number(frames[1]) });
      })
      .run();
  });
}

function stderrTail(stderr: string | null): string {
  if (!stderr) return '';
  const lines = stderr.trimEnd().split('\n');
  return lines.slice(-25).join('\n');
}
