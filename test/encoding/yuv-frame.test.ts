import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { convertArea, fillBlack, i420Layout } from '../../src/encoding/yuv-frame.js';
import { ffmpegBinaries } from './clip-frames.js';

const [ffmpeg] = await ffmpegBinaries();

function solid(w: number, h: number, rgb: [number, number, number]): Uint8Array {
  const px = new Uint8Array(w * h * 4);
  for (let i = 0; i < px.length; i += 4) px.set([...rgb, 255], i);
  return px;
}

describe('I420 conversion of rendered areas', () => {
  it('gives the BT.601 limited-range values of known colours', () => {
    const f = i420Layout(4, 2);
    for (const [rgb, yuv] of [
      [[255, 0, 0], [82, 90, 240]],
      [[255, 255, 255], [235, 128, 128]],
      [[0, 0, 0], [16, 128, 128]],
      [[0, 0, 255], [41, 240, 110]],
    ] as const) {
      const out = new Uint8Array(f.bytes);
      convertArea(solid(4, 2, [...rgb]), 4, 2, out, f, { x0: 0, y0: 0, x1: 4, y1: 2 });
      expect([out[0], out[f.uOffset], out[f.vOffset]], `rgb ${rgb}`).toEqual([...yuv]);
    }
  });

  it('converts only the (evened-up) area asked for and leaves the rest as it was', () => {
    const f = i420Layout(8, 8);
    const out = new Uint8Array(f.bytes);
    fillBlack(out, f);
    convertArea(solid(8, 8, [255, 255, 255]), 8, 8, out, f, { x0: 3, y0: 3, x1: 5, y1: 4 });
    // x 2..6, y 2..4 become white; (1,1) and (6,6) stay black.
    expect([out[2 * 8 + 2], out[3 * 8 + 5], out[1 * 8 + 1], out[6 * 8 + 6], out[2 * 8 + 6]]).toEqual([235, 235, 16, 16, 16]);
  });

  it('gives flat runs (filled in one go) the values each block would get alone', () => {
    // Runs of one colour broken by single odd pixels, colour changes, and an unaligned area.
    const w = 40;
    const h = 6;
    const px = solid(w, h, [20, 30, 200]);
    for (let x = 16; x < w; x++) for (let y = 0; y < h; y++) px.set([200, 180, 10, 255], (y * w + x) * 4);
    for (const [x, y] of [[5, 0], [9, 1], [16, 2], [39, 3], [0, 5]] as const) px.set([255, 255, 255, 255], (y * w + x) * 4);
    const f = i420Layout(w, h);
    const out = new Uint8Array(f.bytes);
    fillBlack(out, f);
    convertArea(px, w, h, out, f, { x0: 1, y0: 0, x1: 37, y1: 6 });
    const luma = (i: number): number => ((66 * px[i]! + 129 * px[i + 1]! + 25 * px[i + 2]! + 128) >> 8) + 16;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) expect(out[y * w + x], `Y ${x},${y}`).toBe(x < 38 ? luma((y * w + x) * 4) : 16);
    }
    for (let cy = 0; cy < h / 2; cy++) {
      for (let cx = 0; cx < 19; cx++) {
        let [R, G, B] = [0, 0, 0];
        for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
          const i = ((2 * cy + dy) * w + 2 * cx + dx) * 4;
          [R, G, B] = [R + px[i]!, G + px[i + 1]!, B + px[i + 2]!];
        }
        const c = cy * f.chromaWidth + cx;
        expect([out[f.uOffset + c], out[f.vOffset + c]], `UV ${cx},${cy}`).toEqual([
          ((-38 * R - 74 * G + 112 * B + 512) >> 10) + 128,
          ((112 * R - 94 * G - 18 * B + 512) >> 10) + 128,
        ]);
      }
    }
  });

  it('evens up an odd source by repeating its edge, and shows black past a smaller source', () => {
    const f = i420Layout(4, 4);
    const out = new Uint8Array(f.bytes);
    convertArea(solid(3, 3, [255, 0, 0]), 3, 3, out, f, { x0: 0, y0: 0, x1: 4, y1: 4 });
    expect([out[3], out[3 * 4 + 3], out[f.vOffset + 3]]).toEqual([82, 82, 240]);
    const g = i420Layout(6, 4);
    const out2 = new Uint8Array(g.bytes);
    convertArea(solid(2, 2, [255, 0, 0]), 2, 2, out2, g, { x0: 0, y0: 0, x1: 6, y1: 4 });
    expect([out2[0], out2[5], out2[3 * 6], out2[g.vOffset], out2[g.vOffset + 2]]).toEqual([82, 16, 16, 240, 128]);
  });

  it('matches ffmpeg\'s own rgba→yuv420p within 2 levels on a colour gradient', async () => {
    const w = 64;
    const h = 32;
    const px = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x * 4, y * 8, 255 - x * 2, 255], (y * w + x) * 4);
    const f = i420Layout(w, h);
    const ours = new Uint8Array(f.bytes);
    convertArea(px, w, h, ours, f, { x0: 0, y0: 0, x1: w, y1: h });
    const theirs = await new Promise<Buffer>((resolve, reject) => {
      const child = execFile(
        ffmpeg!.path,
        ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${w}x${h}`, '-i', 'pipe:0', '-sws_flags', 'area', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-'],
        { encoding: 'buffer' },
        (err, out) => (err ? reject(err) : resolve(out)),
      );
      child.stdin!.end(Buffer.from(px));
    });
    expect(theirs.length).toBe(f.bytes);
    let worst = 0;
    for (let i = 0; i < f.bytes; i++) worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!));
    expect(worst).toBeLessThanOrEqual(2);
  });
});
