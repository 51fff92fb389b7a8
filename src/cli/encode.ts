// `recgw encode <file.guac | file.guac.gz> [-o out.mp4] [--state prev.state.guac] ...`: renders
// any recording (recgw segments or guacd's own files) to an H.264 MP4, with a progress bar on
// a terminal. Exit codes: 0 done, 1 failed (no clip), 2 bad usage, 3 the recording is truncated
// or damaged (the clip holds everything up to the last complete instruction).
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { parseBitrate, parseIntIn } from '../config/parse.js';
import { errorMessage } from '../errors.js';
import { encodeRecording, type EncodeProgress } from '../encoding/encode-segment.js';

const USAGE = `usage: recgw encode <file.guac | file.guac.gz> [options]
  -o, --output FILE     clip to write (default: the input name with .mp4)
  --state FILE          start from a previous segment's NNNNNN.state.guac
  --state-out FILE      write this recording's end state (for encoding the next segment)
  --thumbnail FILE      also write a JPEG thumbnail
  --framerate N         frames per second, 1-60 (default 10)
  --bitrate B           video bitrate, e.g. 1000k or 2M (default 1000k)
  --width W --height H  clip size, even numbers; aspect kept, padded (default: the recording's)
  --threads N           ffmpeg threads (default: all cores)
`;

export interface EncodeCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  isTTY: boolean;
}

export async function runEncodeCommand(argv: string[], io: EncodeCommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        output: { type: 'string', short: 'o' },
        state: { type: 'string' },
        'state-out': { type: 'string' },
        thumbnail: { type: 'string' },
        framerate: { type: 'string' },
        bitrate: { type: 'string' },
        width: { type: 'string' },
        height: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.stderr.write(`recgw encode: ${errorMessage(err)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    io.stderr.write(`recgw encode: give exactly one recording file\n${USAGE}`);
    return 2;
  }
  const input = positionals[0]!;
  let settings;
  try {
    const width = values.width === undefined ? 0 : even(parseIntIn(values.width, 0, 7680), '--width');
    const height = values.height === undefined ? 0 : even(parseIntIn(values.height, 0, 4320), '--height');
    if ((width === 0) !== (height === 0)) throw new Error('--width and --height go together (or neither, for the recording\'s own size)');
    settings = {
      framerate: values.framerate === undefined ? 10 : parseIntIn(values.framerate, 1, 60),
      bitrate: values.bitrate === undefined ? 1_000_000 : parseBitrate(values.bitrate),
      width,
      height,
      threads: values.threads === undefined ? availableParallelism() : parseIntIn(values.threads, 1, 64),
    };
  } catch (err) {
    io.stderr.write(`recgw encode: ${errorMessage(err)}\n`);
    return 2;
  }
  const output = values.output ?? defaultOutput(input);
  const bar = io.isTTY ? new ProgressBar(io.stderr) : undefined;

  try {
    const r = await encodeRecording({
      input,
      output,
      statePath: values.state,
      stateOut: values['state-out'],
      thumbnail: values.thumbnail,
      settings,
      onProgress: (p) => bar?.draw(p),
    });
    bar?.clear();
    const wall = Date.now() - (bar?.startedAt ?? Date.now());
    const size = settings.width ? `${settings.width}×${settings.height}` : `${r.width}×${r.height}`;
    io.stdout.write(
      `${output}: ${(r.durationMs / 1000).toFixed(1)} s, ${r.frames} frames at ${settings.framerate} fps, ${size}, ` +
        `${formatBytes(r.clipBytes)} (ffmpeg ${r.ffmpeg.version})` +
        (bar && wall > 0 ? `, ${(r.durationMs / wall).toFixed(1)}× real time` : '') +
        '\n',
    );
    const skipped = Object.entries(r.unsupported);
    if (skipped.length > 0) io.stderr.write(`recgw encode: skipped unsupported instructions: ${skipped.map(([k, n]) => `${k} ×${n}`).join(', ')}\n`);
    if (r.truncated) {
      io.stderr.write(
        `recgw encode: ${input} is truncated or damaged (${r.inputError}); the clip holds everything up to the last complete instruction\n`,
      );
      return 3;
    }
    return 0;
  } catch (err) {
    bar?.clear();
    io.stderr.write(`recgw encode: ${errorMessage(err)}\n`);
    return 1;
  }
}

function even(n: number, flag: string): number {
  if (n % 2 !== 0) throw new Error(`${flag} must be an even number (H.264 in yuv420p), got ${n}`);
  return n;
}

function defaultOutput(input: string): string {
  const name = basename(input).replace(/(\.guac)?(\.gz)?$/, '');
  return input.slice(0, input.length - basename(input).length) + (name || 'recording') + '.mp4';
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** One line on stderr, redrawn in place: bytes read / total, frames, speed. */
class ProgressBar {
  readonly startedAt = Date.now();
  readonly #out: NodeJS.WritableStream;
  #drawn = false;

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  draw(p: EncodeProgress): void {
    const ratio = p.fileBytes > 0 ? Math.min(1, p.bytesRead / p.fileBytes) : 0;
    const width = 24;
    const filled = Math.round(ratio * width);
    const speed = p.elapsedMs > 0 ? p.mediaMs / p.elapsedMs : 0;
    const line =
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%  ` +
      `${formatBytes(p.bytesRead)} / ${formatBytes(p.fileBytes)}  ${p.frames} frames  ${speed.toFixed(1)}× real time`;
    this.#out.write(`\r\x1b[2K${line}`);
    this.#drawn = true;
  }

  clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[2K');
    this.#drawn = false;
  }
}
