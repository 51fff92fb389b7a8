import { createCanvas } from '@napi-rs/canvas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisplayModel } from '../../src/encoding/display-model.js';
import { encodeInstruction as I, parseAll } from '../../src/protocol/index.js';
import { ReferenceDisplay, countDifferingPixels } from '../support/reference-display.js';

// The display model against guacamole-common-js 1.5.0 in Chromium, on synthetic streams that
// exercise every channel mask, copy/transfer, images with alpha, the layer tree and the cursor.
// Each case is one stream; the browser's painted display and render() must agree pixel for pixel
// (±2 per channel for blending rounding), except antialiased curve edges in the path case.

const W = 480;
const H = 240;
const MASKS = [0x1, 0x2, 0x4, 0x6, 0x8, 0x9, 0xa, 0xb, 0xc, 0xe, 0xf];

let reference: ReferenceDisplay;
beforeAll(async () => {
  reference = await ReferenceDisplay.open();
});
afterAll(async () => {
  await reference?.close();
});

async function compare(stream: string, allowedDiffering = 0): Promise<void> {
  const model = new DisplayModel();
  for (const ins of parseAll(Buffer.from(stream))) {
    const pending = model.apply(ins);
    if (pending) await pending;
  }
  expect(model.malformed + model.unsupported.size).toBe(0);
  await reference.reset();
  await reference.feed(stream);
  const theirs = await reference.frame(W, H);
  const ours = model.render();
  expect(countDifferingPixels(ours, theirs, 2)).toBeLessThanOrEqual(allowedDiffering);
}

function fill(mask: number, layer: number, x: number, y: number, w: number, h: number, rgba: readonly number[]): string {
  return I('rect', layer, x, y, w, h) + I('cfill', mask, layer, ...rgba);
}

function png(stream: number, mask: number, layer: number, x: number, y: number): string {
  const canvas = createCanvas(16, 16);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = 'rgba(0,200,100,1)';
  ctx.fillRect(0, 0, 8, 16);
  ctx.fillStyle = 'rgba(250,250,0,0.4)';
  ctx.fillRect(8, 0, 8, 16);
  return I('img', stream, mask, layer, 'image/png', x, y) + I('blob', stream, canvas.encodeSync('png').toString('base64')) + I('end', stream);
}

/** One 40×40 visible layer per case, side by side, so unbounded masks clear only their own. */
function cell(index: number, row: number, col: number): string {
  return I('size', index, 40, 40) + I('move', index, 0, col * 40, row * 40, 0);
}

describe('DisplayModel matches guacamole-common-js in Chromium', () => {
  it('cfill, copy and img with every channel mask', async () => {
    let s = I('size', 0, W, H) + fill(0xe, 0, 0, 0, W, H, [40, 40, 90, 255]);
    // Source buffer for copies: half blue, half translucent green.
    s += fill(0xe, -1, 0, 0, 20, 20, [0, 0, 255, 255]) + fill(0xe, -1, 20, 0, 20, 20, [0, 255, 0, 100]);
    MASKS.forEach((mask, i) => {
      for (const [row, draw] of [
        [0, (l: number) => fill(mask, l, 10, 10, 20, 20, [0, 0, 255, 180])],
        [1, (l: number) => I('copy', -1, 10, 0, 20, 20, mask, l, 10, 10)],
        [2, (l: number) => png(1, mask, l, 12, 12)],
      ] as const) {
        const layer = 1 + i + row * 20;
        // Red opaque left half, transparent right half, then the masked drawing across both.
        s += cell(layer, row, i) + fill(0xe, layer, 0, 0, 20, 40, [255, 0, 0, 255]) + draw(layer);
      }
    });
    await compare(s);
  });

  it('transfer functions', async () => {
    let s = I('size', 0, W, H) + fill(0xe, 0, 0, 0, W, H, [0x0f, 0xf0, 0x33, 255]) + fill(0xe, -1, 0, 0, 20, 20, [0xff, 0x00, 0x55, 255]);
    for (let fn = 0; fn < 16; fn++) s += I('transfer', -1, 0, 0, 20, 20, fn, 0, fn * 25, 100);
    await compare(s);
  });

  it('nested, clipped, z-ordered and shaded layers', async () => {
    let s = I('size', 0, W, H) + fill(0xe, 0, 0, 0, W, H, [30, 30, 30, 255]);
    s += I('size', 1, 200, 150) + fill(0xe, 1, 0, 0, 200, 150, [0, 160, 0, 255]) + I('move', 1, 0, 20, 20, 1);
    s += I('size', 2, 300, 50) + fill(0xe, 2, 0, 0, 300, 50, [200, 0, 0, 255]) + I('move', 2, 1, 50, 30, 0);
    s += I('size', 3, 60, 60) + fill(0xe, 3, 0, 0, 60, 60, [0, 0, 220, 200]) + I('move', 3, 1, 100, 60, 2);
    s += I('shade', 1, 150);
    s += I('size', 4, 80, 80) + fill(0xe, 4, 0, 0, 80, 80, [250, 250, 250, 255]) + I('move', 4, 0, 300, 100, 5);
    s += I('size', 5, 80, 80) + fill(0xe, 5, 0, 0, 80, 80, [250, 120, 0, 255]) + I('move', 5, 0, 340, 140, 3);
    s += I('size', 6, 50, 50) + fill(0xe, 6, 0, 0, 50, 50, [0, 250, 250, 255]) + I('move', 6, 0, 400, 20, 0) + I('dispose', 6);
    await compare(s);
  });

  it('cursor image with hotspot at the mouse position', async () => {
    let s = I('size', 0, W, H) + fill(0xe, 0, 0, 0, W, H, [90, 90, 200, 255]);
    s += fill(0xc, -2, 0, 0, 12, 12, [255, 255, 255, 255]) + fill(0xe, -2, 3, 3, 6, 6, [0, 0, 0, 120]) + fill(0x2, -2, 0, 0, 2, 2, [0, 0, 0, 255]);
    s += I('cursor', 4, 5, -2, 0, 0, 12, 12) + I('mouse', 100, 80, 0, 12345);
    await compare(s);
  });

  it('paths: lines, arcs, curves, strokes, pattern fills, clip', async () => {
    let s = I('size', 0, W, H) + fill(0xe, 0, 0, 0, W, H, [20, 20, 20, 255]);
    s += I('start', 0, 20, 20) + I('line', 0, 120, 20) + I('line', 0, 20, 120) + I('close', 0) + I('cfill', 0xe, 0, 200, 50, 50, 255);
    s += I('arc', 0, 200, 70, 40, 0, '3.1416', 0) + I('cfill', 0xe, 0, 50, 200, 50, 255);
    s += I('start', 0, 260, 20) + I('curve', 0, 300, 120, 340, -20, 400, 100) + I('cstroke', 0xe, 0, 1, 2, 6, 250, 250, 0, 255);
    s += fill(0xe, -3, 0, 0, 4, 4, [255, 0, 255, 255]) + fill(0xe, -3, 4, 4, 4, 4, [0, 255, 255, 255]);
    s += I('rect', 0, 20, 140, 200, 80) + I('lfill', 0xe, 0, -3);
    s += I('push', 0) + I('rect', 0, 260, 140, 60, 60) + I('clip', 0) + fill(0xe, 0, 240, 120, 200, 200, [255, 128, 0, 255]) + I('pop', 0);
    // Antialiased edges of the arc and curve may round differently between two Skia builds.
    await compare(s, 300);
  });
});
