// Test helpers: build recordings, and read produced clips back with real ffmpeg/ffprobe.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { parseAll } from '../../src/protocol/index.js';
import { PACKAGE_ROOT } from '../../src/runtime-paths.js';
import { packagedFfmpegPath } from '../../src/encoding/ffmpeg-binary.js';
import { describeFfmpeg, type FfmpegBinary } from '../../src/encoding/ffmpeg-binary.js';

/** Both binaries the encoder must work with: Debian's 5.1 and the npm package's 4.1 build. */
export async function ffmpegBinaries(): Promise<FfmpegBinary[]> {
  const out: FfmpegBinary[] = [];
  if (existsSync('/usr/bin/ffmpeg')) out.push(await describeFfmpeg('/usr/bin/ffmpeg', 'PATH'));
  const packaged = packagedFfmpegPath();
  if (packaged) out.push(await describeFfmpeg(packaged, '@ffmpeg-installer/ffmpeg'));
  return out;
}

/** Builds dist/ once if missing: the render worker runs compiled JavaScript. */
export function ensureBuilt(): void {
  if (!existsSync(`${PACKAGE_ROOT}/dist/encoding/render-worker.js`)) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: PACKAGE_ROOT, stdio: 'ignore' });
  }
}

/**
 * Decodes a clip to packed RGB24 frames at `fps` (clips store changed frames only; the fps
 * filter turns them back into one frame per 1/fps s, as a player shows them).
 */
export function decodeFrames(ffmpegPath: string, clip: string, width: number, height: number, fps = 10): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    execFile(
      ffmpegPath,
      ['-v', 'error', '-i', clip, '-vf', `fps=${fps}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
      { encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024 },
      (err, stdout) => {
        if (err) return reject(err);
        const size = width * height * 3;
        const frames: Buffer[] = [];
        for (let o = 0; o + size <= stdout.length; o += size) frames.push(stdout.subarray(o, o + size));
        resolve(frames);
      },
    );
  });
}

export function pixel(frame: Buffer, width: number, x: number, y: number): [number, number, number] {
  const o = (y * width + x) * 3;
  return [frame[o]!, frame[o + 1]!, frame[o + 2]!];
}

/** True when every channel is within `tol` (H.264 in yuv420p shifts flat colours a little). */
export function near(actual: [number, number, number], expected: [number, number, number], tol = 14): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]!) <= tol);
}

/** Duration (s) and frame count from ffprobe when installed, else null. */
export function ffprobeClip(clip: string): { duration: number; frames: number; width: number; height: number; codec: string; pixFmt: string } | null {
  if (!existsSync('/usr/bin/ffprobe')) return null;
  const out = execFileSync('/usr/bin/ffprobe', [
    '-v', 'error', '-select_streams', 'v:0', '-count_packets',
    '-show_entries', 'format=duration:stream=nb_read_packets,width,height,codec_name,pix_fmt', '-of', 'json', clip,
  ]).toString();
  const j = JSON.parse(out) as { format: { duration: string }; streams: Array<{ nb_read_packets: string; width: number; height: number; codec_name: string; pix_fmt: string }> };
  const s = j.streams[0]!;
  return { duration: Number(j.format.duration), frames: Number(s.nb_read_packets), width: s.width, height: s.height, codec: s.codec_name, pixFmt: s.pix_fmt };
}

/** PSNR (dB, average over frames) of `a` against `b`, both decoded by ffmpeg's psnr filter. */
export function psnr(ffmpegPath: string, a: string, b: string, extraA = '', extraB = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const filter = `[0:v]${extraA || 'null'}[a];[1:v]${extraB || 'null'}[b];[a][b]psnr`;
    execFile(ffmpegPath, ['-hide_banner', '-i', a, '-i', b, '-lavfi', filter, '-f', 'null', '-'], { maxBuffer: 64 * 1024 * 1024 }, (err, _o, stderr) => {
      if (err) return reject(err);
      const m = /average:([0-9.]+|inf)/.exec(stderr);
      if (!m) return reject(new Error(`no PSNR in ffmpeg output:\n${stderr.slice(-2000)}`));
      resolve(m[1] === 'inf' ? Infinity : Number(m[1]));
    });
  });
}

/** First and last `sync` timestamp of a recording (gzip or plain). */
export function syncSpan(path: string): { first: number; last: number } {
  const raw = readFileSync(path);
  const bytes = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  let first: number | undefined;
  let last = 0;
  for (const i of parseAll(bytes)) {
    if (i.opcode !== 'sync') continue;
    first ??= i.intArg(0);
    last = Math.max(last, i.intArg(0));
  }
  if (first === undefined) throw new Error(`${path} has no sync`);
  return { first, last };
}
