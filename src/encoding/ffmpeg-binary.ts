import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { RecgwError } from '../errors.js';

/** Where the ffmpeg binary came from, in the order they are tried. */
export type FfmpegSource = 'FFMPEG_PATH' | 'PATH' | '@ffmpeg-installer/ffmpeg';

export interface FfmpegBinary {
  path: string;
  source: FfmpegSource;
  /** e.g. "5.1.9-0+deb12u1" or "N-47683-g0e8eb07980-static" (the npm build). */
  version: string;
}

const cache = new Map<string, Promise<FfmpegBinary>>();

/**
 * Finds ffmpeg: FFMPEG_PATH, then `ffmpeg` on PATH, else the static build shipped inside
 * @ffmpeg-installer/ffmpeg (installs offline, so a machine with only npm still encodes).
 * The answer is cached per process and environment.
 */
export function locateFfmpeg(env: NodeJS.ProcessEnv = process.env): Promise<FfmpegBinary> {
  const key = `${env.FFMPEG_PATH ?? ''}\0${env.PATH ?? ''}`;
  let found = cache.get(key);
  if (!found) {
    found = findFfmpeg(env);
    cache.set(key, found);
    found.catch(() => cache.delete(key));
  }
  return found;
}

async function findFfmpeg(env: NodeJS.ProcessEnv): Promise<FfmpegBinary> {
  if (env.FFMPEG_PATH) {
    if (!(await isExecutable(env.FFMPEG_PATH))) {
      throw new RecgwError('RECGW_ERR_FFMPEG', `FFMPEG_PATH=${env.FFMPEG_PATH} is not an executable file; point it at an ffmpeg binary or unset it`);
    }
    return describeFfmpeg(env.FFMPEG_PATH, 'FFMPEG_PATH');
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'ffmpeg');
    if (await isExecutable(candidate)) return describeFfmpeg(candidate, 'PATH');
  }
  const packaged = packagedFfmpegPath();
  if (packaged) return describeFfmpeg(packaged, '@ffmpeg-installer/ffmpeg');
  throw new RecgwError(
    'RECGW_ERR_FFMPEG',
    'no ffmpeg found: install the ffmpeg package, set FFMPEG_PATH, or reinstall @ffmpeg-installer/ffmpeg',
  );
}

/** The binary inside @ffmpeg-installer/ffmpeg, or undefined when the package is unusable here. */
export function packagedFfmpegPath(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@ffmpeg-installer/ffmpeg') as { path?: string };
    return mod.path;
  } catch {
    // the package throws (a string) on unsupported platforms
    return undefined;
  }
}

/** Runs `<path> -version` to learn the version, which also proves the binary runs. */
export async function describeFfmpeg(path: string, source: FfmpegSource): Promise<FfmpegBinary> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(path, ['-hide_banner', '-version'], { timeout: 10_000 }, (err, stdout) => {
      if (err) reject(new RecgwError('RECGW_ERR_FFMPEG', `${path} -version failed: ${err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
  const m = /ffmpeg version (\S+)/.exec(out);
  return { path, source, version: m?.[1] ?? 'unknown' };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
