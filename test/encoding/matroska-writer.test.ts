import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { matroskaFramePrefix, matroskaHeader } from '../../src/encoding/matroska-writer.js';
import { ffmpegBinaries } from './clip-frames.js';

const binaries = await ffmpegBinaries();

function stream(w: number, h: number, frames: Array<[number, number]>): Buffer {
  const parts = [matroskaHeader(w, h, 1e9 / 10)];
  for (const [ms, grey] of frames) {
    const px = Buffer.alloc(w * h * 4, grey);
    parts.push(matroskaFramePrefix(ms, px.length), px);
  }
  return Buffer.concat(parts);
}

describe.each(binaries.map((b) => [b.source, b] as const))('Matroska frame stream read by %s ffmpeg', (_n, ffmpeg) => {
  it('keeps each frame\'s timestamp, size and pixels', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-mkv-'));
    const file = join(dir, 'f.mkv');
    writeFileSync(file, stream(8, 6, [[0, 10], [300, 100], [1000, 200]]));
    const out = await new Promise<string>((resolve, reject) =>
      execFile(ffmpeg.path, ['-hide_banner', '-i', file, '-vf', 'showinfo', '-f', 'null', '-'], (err, _o, stderr) => (err ? reject(err) : resolve(stderr))),
    );
    expect(out).toMatch(/rawvideo.*rgba.*8x6/);
    const pts = [...out.matchAll(/pts_time:([\d.]+)/g)].map((m) => Number(m[1]));
    expect(pts).toEqual([0, 0.3, 1]);
    const raw = await new Promise<Buffer>((resolve, reject) =>
      execFile(ffmpeg.path, ['-v', 'error', '-i', file, '-vsync', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { encoding: 'buffer' }, (err, o) =>
        err ? reject(err) : resolve(o),
      ),
    );
    expect(raw.length).toBe(3 * 8 * 6 * 4);
    expect([raw[0], raw[8 * 6 * 4 + 5], raw.at(-1)]).toEqual([10, 100, 200]);
  });
});
