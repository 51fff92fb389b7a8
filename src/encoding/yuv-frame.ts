// RGBA → YUV 4:2:0 (I420) conversion of the changed areas of a frame, in the render worker.
//
// ffmpeg would otherwise convert every whole frame (swscale, RGBA in, yuv420p for x264): about a
// third of its CPU (measured: 1.6 s of ffmpeg's 4.1 s on rdp-desktop, 667 frames 1024×768).
// Screen recordings change a little at a time, so converting only the rendered areas into a
// frame buffer that already holds the rest is far cheaper, and the pipe carries 1.5 bytes a
// pixel instead of 4. Coefficients are BT.601 limited range, what swscale uses for
// rgba→yuv420p (so clips look as before); chroma is the mean of each 2×2 block.
import type { Bounds } from './display-layer.js';

/** Byte layout of an I420 frame: Y plane, then U and V at half width and height (rounded up). */
export interface I420Layout {
  width: number;
  height: number;
  chromaWidth: number;
  chromaHeight: number;
  uOffset: number;
  vOffset: number;
  bytes: number;
}

export function i420Layout(width: number, height: number): I420Layout {
  const chromaWidth = (width + 1) >> 1;
  const chromaHeight = (height + 1) >> 1;
  const ySize = width * height;
  const cSize = chromaWidth * chromaHeight;
  return { width, height, chromaWidth, chromaHeight, uOffset: ySize, vOffset: ySize + cSize, bytes: ySize + 2 * cSize };
}

/** Fills the frame with black (Y 16, U and V 128). */
export function fillBlack(out: Uint8Array, f: I420Layout): void {
  out.fill(16, 0, f.uOffset);
  out.fill(128, f.uOffset, f.bytes);
}

/**
 * Converts area `r` (clipped to the frame, widened to even edges so 2×2 chroma blocks are whole)
 * of `rgba` — opaque pixels, `srcWidth` × `srcHeight`, pixels beyond it black — into `out`
 * (`f.width` × `f.height`, which may be larger than the source: the clip's even size).
 */
export function convertArea(rgba: Uint8Array, srcWidth: number, srcHeight: number, out: Uint8Array, f: I420Layout, r: Bounds): void {
  const x0 = Math.max(0, r.x0) & ~1;
  const y0 = Math.max(0, r.y0) & ~1;
  const x1 = Math.min(f.width, r.x1 + (r.x1 & 1));
  const y1 = Math.min(f.height, r.y1 + (r.y1 & 1));
  if (x1 <= x0 || y1 <= y0) return;
  // Whole 2×2 blocks inside the source take the fast path; the frame's odd last row or
  // column and any area past the source (a display smaller than the clip) the general one.
  const fx1 = Math.min(x1, srcWidth) & ~1;
  const fy1 = Math.min(y1, srcHeight) & ~1;
  const w = f.width;
  const cw = f.chromaWidth;
  const uOff = f.uOffset;
  const vOff = f.vOffset;
  // Screen content is mostly flat (a terminal's background, a desktop's panels): a 2×2 block
  // whose four pixels are one colour, the colour of the last such block, reuses that block's
  // Y, U and V (the same sums give the same values) instead of recomputing them.
  const words = rgba.byteOffset % 4 === 0 ? new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.length >>> 2) : null;
  let flat = -1;
  let flatY = 16;
  let flatU = 128;
  let flatV = 128;
  for (let y = y0; y < fy1; y += 2) {
    if (words) {
      let p0 = y * srcWidth + x0;
      let p1 = p0 + srcWidth;
      let o0 = y * w + x0;
      let o1 = o0 + w;
      let c = (y >> 1) * cw + (x0 >> 1);
      for (let x = x0; x < fx1; x += 2, p0 += 2, p1 += 2, o0 += 2, o1 += 2, c++) {
        const a = words[p0]!;
        if (a === flat && words[p0 + 1] === a && words[p1] === a && words[p1 + 1] === a) {
          // A run of such blocks is filled in one go.
          let n = 1;
          while (x + 2 * n < fx1 && words[p0 + 2 * n] === a && words[p0 + 2 * n + 1] === a && words[p1 + 2 * n] === a && words[p1 + 2 * n + 1] === a) n++;
          out.fill(flatY, o0, o0 + 2 * n);
          out.fill(flatY, o1, o1 + 2 * n);
          out.fill(flatU, uOff + c, uOff + c + n);
          out.fill(flatV, vOff + c, vOff + c + n);
          // The loop's step adds the last block of the run.
          n--;
          x += 2 * n;
          p0 += 2 * n;
          p1 += 2 * n;
          o0 += 2 * n;
          o1 += 2 * n;
          c += n;
          continue;
        }
        const s0 = p0 * 4;
        const s1 = p1 * 4;
        const ra = rgba[s0]!, ga = rgba[s0 + 1]!, ba = rgba[s0 + 2]!;
        const rb = rgba[s0 + 4]!, gb = rgba[s0 + 5]!, bb = rgba[s0 + 6]!;
        const rc = rgba[s1]!, gc = rgba[s1 + 1]!, bc = rgba[s1 + 2]!;
        const rd = rgba[s1 + 4]!, gd = rgba[s1 + 5]!, bd = rgba[s1 + 6]!;
        out[o0] = ((66 * ra + 129 * ga + 25 * ba + 128) >> 8) + 16;
        out[o0 + 1] = ((66 * rb + 129 * gb + 25 * bb + 128) >> 8) + 16;
        out[o1] = ((66 * rc + 129 * gc + 25 * bc + 128) >> 8) + 16;
        out[o1 + 1] = ((66 * rd + 129 * gd + 25 * bd + 128) >> 8) + 16;
        const R = ra + rb + rc + rd;
        const G = ga + gb + gc + gd;
        const B = ba + bb + bc + bd;
        out[uOff + c] = ((-38 * R - 74 * G + 112 * B + 512) >> 10) + 128;
        out[vOff + c] = ((112 * R - 94 * G - 18 * B + 512) >> 10) + 128;
        if (words[p0 + 1] === a && words[p1] === a && words[p1 + 1] === a) {
          flat = a;
          flatY = out[o0]!;
          flatU = out[uOff + c]!;
          flatV = out[vOff + c]!;
        }
      }
      continue;
    }
    let s0 = (y * srcWidth + x0) * 4;
    let s1 = s0 + srcWidth * 4;
    let o0 = y * w + x0;
    let o1 = o0 + w;
    let c = (y >> 1) * cw + (x0 >> 1);
    for (let x = x0; x < fx1; x += 2, s0 += 8, s1 += 8, o0 += 2, o1 += 2, c++) {
      const ra = rgba[s0]!, ga = rgba[s0 + 1]!, ba = rgba[s0 + 2]!;
      const rb = rgba[s0 + 4]!, gb = rgba[s0 + 5]!, bb = rgba[s0 + 6]!;
      const rc = rgba[s1]!, gc = rgba[s1 + 1]!, bc = rgba[s1 + 2]!;
      const rd = rgba[s1 + 4]!, gd = rgba[s1 + 5]!, bd = rgba[s1 + 6]!;
      out[o0] = ((66 * ra + 129 * ga + 25 * ba + 128) >> 8) + 16;
      out[o0 + 1] = ((66 * rb + 129 * gb + 25 * bb + 128) >> 8) + 16;
      out[o1] = ((66 * rc + 129 * gc + 25 * bc + 128) >> 8) + 16;
      out[o1 + 1] = ((66 * rd + 129 * gd + 25 * bd + 128) >> 8) + 16;
      const R = ra + rb + rc + rd;
      const G = ga + gb + gc + gd;
      const B = ba + bb + bc + bd;
      // Sums of four pixels: divide by 4 × 256, rounded. The results stay within 16..240.
      out[uOff + c] = ((-38 * R - 74 * G + 112 * B + 512) >> 10) + 128;
      out[vOff + c] = ((112 * R - 94 * G - 18 * B + 512) >> 10) + 128;
    }
  }
  if (fx1 < x1) convertSlow(rgba, srcWidth, srcHeight, out, f, fx1, y0, x1, y1);
  if (fy1 < y1) convertSlow(rgba, srcWidth, srcHeight, out, f, x0, fy1, fx1, y1);
}

/** The general case of convertArea for [x0, x1) × [y0, y1), x0 and y0 even. */
function convertSlow(rgba: Uint8Array, srcWidth: number, srcHeight: number, out: Uint8Array, f: I420Layout, x0: number, y0: number, x1: number, y1: number): void {
  const w = f.width;
  const cw = f.chromaWidth;
  for (let y = y0; y < y1; y += 2) {
    for (let x = x0; x < x1; x += 2) {
      let rs = 0;
      let gs = 0;
      let bs = 0;
      let n = 0;
      for (let yy = y; yy < Math.min(y + 2, y1); yy++) {
        for (let xx = x; xx < Math.min(x + 2, x1); xx++) {
          // The column or row that evens up an odd source repeats its edge (no tinted or dark
          // seam); beyond that, a display smaller than the clip shows black.
          const sx = xx === srcWidth && (srcWidth & 1) === 1 ? xx - 1 : xx;
          const sy = yy === srcHeight && (srcHeight & 1) === 1 ? yy - 1 : yy;
          if (sx >= srcWidth || sy >= srcHeight) {
            out[yy * w + xx] = 16;
            continue;
          }
          const s = (sy * srcWidth + sx) * 4;
          const R = rgba[s]!;
          const G = rgba[s + 1]!;
          const B = rgba[s + 2]!;
          out[yy * w + xx] = ((66 * R + 129 * G + 25 * B + 128) >> 8) + 16;
          rs += R;
          gs += G;
          bs += B;
          n++;
        }
      }
      // Chroma from the source pixels only, so the display's edge keeps its colour.
      const c = (y >> 1) * cw + (x >> 1);
      out[f.uOffset + c] = n === 0 ? 128 : Math.round((-38 * rs - 74 * gs + 112 * bs) / (256 * n)) + 128;
      out[f.vOffset + c] = n === 0 ? 128 : Math.round((112 * rs - 94 * gs - 18 * bs) / (256 * n)) + 128;
    }
  }
}

/** Copies area `r` (widened to even edges as convertArea does) of one I420 frame into another. */
export function copyArea(from: Uint8Array, to: Uint8Array, f: I420Layout, r: Bounds): void {
  const x0 = Math.max(0, r.x0) & ~1;
  const y0 = Math.max(0, r.y0) & ~1;
  const x1 = Math.min(f.width, r.x1 + (r.x1 & 1));
  const y1 = Math.min(f.height, r.y1 + (r.y1 & 1));
  if (x1 <= x0 || y1 <= y0) return;
  const w = f.width;
  for (let y = y0; y < y1; y++) to.set(from.subarray(y * w + x0, y * w + x1), y * w + x0);
  const cw = f.chromaWidth;
  const cx0 = x0 >> 1;
  const cx1 = (x1 + 1) >> 1;
  for (let y = y0 >> 1; y < (y1 + 1) >> 1; y++) {
    const at = y * cw;
    to.set(from.subarray(f.uOffset + at + cx0, f.uOffset + at + cx1), f.uOffset + at + cx0);
    to.set(from.subarray(f.vOffset + at + cx0, f.vOffset + at + cx1), f.vOffset + at + cx0);
  }
}
