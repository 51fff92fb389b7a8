import { createCanvas } from '@napi-rs/canvas';
import { describe, expect, it } from 'vitest';
import { DisplayModel } from '../../src/encoding/display-model.js';
import { encodeInstruction as I, parseAll } from '../../src/protocol/index.js';

type RGBA = [number, number, number, number];

async function feed(model: DisplayModel, ...instructions: string[]): Promise<void> {
  for (const ins of parseAll(Buffer.from(instructions.join('')))) {
    const pending = model.apply(ins);
    if (pending) await pending;
  }
}

function pixel(model: DisplayModel, x: number, y: number): RGBA {
  const frame = model.render();
  const o = (y * model.width + x) * 4;
  return [frame[o]!, frame[o + 1]!, frame[o + 2]!, frame[o + 3]!];
}

/** Asserts a pixel within `tolerance` per channel (Skia rounds blends differently by ±1). */
function expectPixel(model: DisplayModel, x: number, y: number, want: RGBA, tolerance = 1): void {
  const got = pixel(model, x, y);
  const close = got.every((v, i) => Math.abs(v - want[i]!) <= tolerance);
  expect(close, `pixel (${x},${y}) = [${got}], want [${want}] ±${tolerance}`).toBe(true);
}

/** `rect` + `cfill` of one colour. */
function fill(mask: number, layer: number, x: number, y: number, w: number, h: number, [r, g, b, a]: RGBA): string {
  return I('rect', layer, x, y, w, h) + I('cfill', mask, layer, r, g, b, a);
}

/** An image made with @napi-rs/canvas, as an img/blob/end stream with blobs cut at odd places. */
function imageStream(
  stream: number,
  mask: number,
  layer: number,
  x: number,
  y: number,
  mimetype: 'image/png' | 'image/jpeg' | 'image/webp',
  w: number,
  h: number,
  paint: (ctx: ReturnType<ReturnType<typeof createCanvas>['getContext']>) => void,
  blobSize = 37,
): string {
  const canvas = createCanvas(w, h);
  paint(canvas.getContext('2d'));
  const data =
    mimetype === 'image/png' ? canvas.encodeSync('png') : mimetype === 'image/jpeg' ? canvas.encodeSync('jpeg', 95) : canvas.encodeSync('webp', 100);
  const b64 = data.toString('base64');
  let out = I('img', stream, mask, layer, mimetype, x, y);
  for (let i = 0; i < b64.length; i += blobSize) out += I('blob', stream, b64.slice(i, i + blobSize));
  return out + I('end', stream);
}

const RED: RGBA = [255, 0, 0, 255];
const GREEN: RGBA = [0, 255, 0, 255];
const BLUE: RGBA = [0, 0, 255, 255];
const WHITE: RGBA = [255, 255, 255, 255];
const BLACK: RGBA = [0, 0, 0, 255];

describe('DisplayModel basics', () => {
  it('is 0×0 until the first size, then renders an opaque frame of that size', async () => {
    const m = new DisplayModel();
    expect(m.width).toBe(0);
    expect(m.render().length).toBe(0);
    await feed(m, I('size', 0, 64, 32));
    expect([m.width, m.height]).toEqual([64, 32]);
    expect(m.dirty).toBe(true);
    const frame = m.render();
    expect(frame.length).toBe(64 * 32 * 4);
    // Nothing drawn: transparent layer 0 shows black, alpha always 255.
    expectPixel(m, 10, 10, BLACK, 0);
    expect(m.dirty).toBe(false);
  });

  it('stays clean for instructions that change nothing visible, and gets dirty for ones that do', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 32, 32));
    m.render();
    await feed(m, I('sync', 1000), I('key', 65, 1, 1000), I('nop'), fill(0xe, -1, 0, 0, 4, 4, RED));
    expect(m.dirty).toBe(false);
    await feed(m, fill(0xe, 0, 0, 0, 4, 4, RED));
    expect(m.dirty).toBe(true);
    const first = m.render();
    expect(m.render()).toBe(first); // same Buffer reused
  });
});

describe('channel masks (rect + cfill)', () => {
  // Layer 0: red in x < 20, transparent in x ≥ 20; then a blue fill over x 10..30, y 0..10.
  // Left sample (15,5) has red under the fill, right sample (25,5) has nothing; (5,5) and
  // (15,15) are outside the fill. As on a browser canvas, the "unbounded" modes (SRC, IN, OUT,
  // RIN, RATOP) clear everything outside what they draw; the others leave it alone.
  const cases: Array<[string, number, RGBA, RGBA, boolean]> = [
    ['OVER 0xE', 0xe, BLUE, BLUE, false],
    ['SRC 0xC', 0xc, BLUE, BLUE, true],
    ['ROVER 0xB', 0xb, RED, BLUE, false],
    ['ATOP 0x6', 0x6, BLUE, BLACK, false],
    ['IN 0x4', 0x4, BLUE, BLACK, true],
    ['OUT 0x8', 0x8, BLACK, BLUE, true],
    ['RIN 0x1', 0x1, RED, BLACK, true],
    ['ROUT 0x2', 0x2, BLACK, BLACK, false],
    ['RATOP 0x9', 0x9, RED, BLUE, true],
    ['XOR 0xA', 0xa, BLACK, BLUE, false],
    ['PLUS 0xF', 0xf, [255, 0, 255, 255], BLUE, false],
  ];
  for (const [name, mask, left, right, unbounded] of cases) {
    it(`${name}: blends as guacamole-common-js on a canvas, ${unbounded ? 'clearing' : 'keeping'} the rest of the layer`, async () => {
      const m = new DisplayModel();
      await feed(m, I('size', 0, 40, 20), fill(0xe, 0, 0, 0, 20, 20, RED));
      m.render();
      await feed(m, fill(mask, 0, 10, 0, 20, 10, BLUE));
      expectPixel(m, 15, 5, left);
      expectPixel(m, 25, 5, right);
      expectPixel(m, 5, 5, unbounded ? BLACK : RED, 0);
      expectPixel(m, 15, 15, unbounded ? BLACK : RED, 0);
      expectPixel(m, 35, 15, BLACK, 0);
    });
  }

  it("clears a whole layer with SRC of a transparent 1×1 rectangle, as guacd's terminal does", async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 40, 40), fill(0xe, 0, 0, 0, 40, 40, RED), I('size', 2, 40, 40), fill(0xc, 2, 0, 0, 30, 30, BLUE));
    expectPixel(m, 20, 20, BLUE, 0);
    await feed(m, fill(0xc, 2, 0, 0, 1, 1, [0, 0, 0, 0]));
    expectPixel(m, 20, 20, RED, 0);
  });

  it('blends a half-transparent fill over what is below (OVER)', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 8, 8), fill(0xe, 0, 0, 0, 8, 8, RED), fill(0xe, 0, 0, 0, 8, 8, [0, 0, 255, 128]));
    expectPixel(m, 4, 4, [127, 0, 128, 255]);
  });

  it('fills paths made of start/line/close, arcs, and strokes them', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 100, 100),
      // Triangle (10,10) (50,10) (10,50): (15,15) inside, (45,45) outside.
      I('start', 0, 10, 10),
      I('line', 0, 50, 10),
      I('line', 0, 10, 50),
      I('close', 0),
      I('cfill', 0xe, 0, 0, 255, 0, 255),
      // Disc at (75,75) radius 10.
      I('arc', 0, 75, 75, 10, 0, '6.2832', 0),
      I('cfill', 0xe, 0, 255, 0, 0, 255),
      // 4-pixel white line along y = 90 from x 10 to 40.
      I('start', 0, 10, 90),
      I('line', 0, 40, 90),
      I('cstroke', 0xe, 0, 0, 0, 4, 255, 255, 255, 255),
    );
    expectPixel(m, 15, 15, GREEN);
    expectPixel(m, 45, 45, BLACK, 0);
    expectPixel(m, 75, 75, RED);
    expectPixel(m, 75, 88, BLACK, 0);
    expectPixel(m, 25, 90, WHITE);
    expectPixel(m, 25, 95, BLACK, 0);
  });
});

describe('copy and transfer', () => {
  it('copies between a buffer and layers, and scrolls a layer onto itself', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 64, 64),
      fill(0xe, -1, 0, 0, 8, 8, GREEN),
      fill(0xe, -1, 8, 0, 8, 8, BLUE),
      I('copy', -1, 0, 0, 16, 8, 0xe, 0, 40, 40),
      // Scroll: rows 0..20 of layer 0 moved down by 5 (overlapping source and destination).
      fill(0xe, 0, 0, 0, 64, 10, RED),
      fill(0xe, 0, 0, 10, 64, 10, WHITE),
      I('copy', 0, 0, 0, 64, 20, 0xe, 0, 0, 5),
    );
    expectPixel(m, 44, 44, GREEN, 0);
    expectPixel(m, 52, 44, BLUE, 0);
    expectPixel(m, 2, 2, RED, 0); // not overwritten above the scrolled area
    expectPixel(m, 2, 13, RED, 0); // row 8 moved to 13
    expectPixel(m, 2, 16, WHITE, 0); // row 11 moved to 16
  });

  it('copies with SRC replacing alpha too (and, as on a canvas, clearing the rest of the layer)', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 32, 32),
      fill(0xe, 0, 0, 0, 32, 32, RED),
      fill(0xc, -1, 0, 0, 4, 4, [0, 0, 0, 0]), // fully transparent buffer content
      I('copy', -1, 0, 0, 4, 4, 0xc, 0, 10, 10),
    );
    expectPixel(m, 11, 11, BLACK, 0); // transparent copied: shows black
    expectPixel(m, 15, 15, BLACK, 0);
  });

  it('grows off-screen buffers to fit what is drawn into them', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 32, 32),
      // Buffer -2 starts 0×0; a fill far from the origin must grow it, not be lost.
      fill(0xe, -2, 200, 100, 10, 10, BLUE),
      I('copy', -2, 200, 100, 10, 10, 0xe, 0, 5, 5),
      // And an image drawn past its edge grows it further.
      imageStream(1, 0xe, -2, 300, 300, 'image/png', 4, 4, (ctx) => {
        ctx.fillStyle = '#0f0';
        ctx.fillRect(0, 0, 4, 4);
      }),
      I('copy', -2, 300, 300, 4, 4, 0xe, 0, 20, 20),
    );
    expectPixel(m, 8, 8, BLUE, 0);
    expectPixel(m, 21, 21, GREEN, 0);
  });

  it('applies transfer functions: SRC, invert destination, XOR, and DEST is a no-op', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 40, 10),
      fill(0xe, 0, 0, 0, 40, 10, [0x0f, 0xf0, 0x33, 255]),
      fill(0xe, -1, 0, 0, 10, 10, [0xff, 0x00, 0x55, 255]),
      I('transfer', -1, 0, 0, 10, 10, 0x3, 0, 0, 0), // SRC
      I('transfer', -1, 0, 0, 10, 10, 0xa, 0, 10, 0), // NOT DEST
      I('transfer', -1, 0, 0, 10, 10, 0x6, 0, 20, 0), // XOR
      I('transfer', -1, 0, 0, 10, 10, 0x5, 0, 30, 0), // DEST
    );
    expectPixel(m, 5, 5, [0xff, 0x00, 0x55, 255], 0);
    expectPixel(m, 15, 5, [0xf0, 0x0f, 0xcc, 255], 0);
    expectPixel(m, 25, 5, [0xf0, 0xf0, 0x66, 255], 0);
    expectPixel(m, 35, 5, [0x0f, 0xf0, 0x33, 255], 0);
  });
});

describe('image streams', () => {
  it('decodes PNG from blobs split anywhere, with alpha, at the right place', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 64, 64),
      fill(0xe, 0, 0, 0, 64, 64, RED),
      imageStream(3, 0xe, 0, 10, 20, 'image/png', 16, 8, (ctx) => {
        ctx.fillStyle = 'rgb(0,0,255)';
        ctx.fillRect(0, 0, 8, 8);
        ctx.fillStyle = 'rgba(0,255,0,0.5)';
        ctx.fillRect(8, 0, 8, 8);
      }),
    );
    expectPixel(m, 12, 22, BLUE, 0);
    expectPixel(m, 20, 22, [127, 128, 0, 255], 2);
    expectPixel(m, 9, 22, RED, 0);
    expectPixel(m, 12, 28, RED, 0);
  });

  it('decodes JPEG and WebP', async () => {
    const m = new DisplayModel();
    const paint = (ctx: Parameters<Parameters<typeof imageStream>[8]>[0]) => {
      ctx.fillStyle = 'rgb(200,100,50)';
      ctx.fillRect(0, 0, 16, 16);
    };
    await feed(m, I('size', 0, 64, 32), imageStream(1, 0xe, 0, 0, 0, 'image/jpeg', 16, 16, paint, 4000), imageStream(2, 0xe, 0, 32, 0, 'image/webp', 16, 16, paint, 101));
    expectPixel(m, 8, 8, [200, 100, 50, 255], 6);
    expectPixel(m, 40, 8, [200, 100, 50, 255], 6);
    expectPixel(m, 20, 8, BLACK, 0);
    expect(m.malformed).toBe(0);
  });

  it('decodes synchronously: apply() returns undefined for img/blob/end', () => {
    const m = new DisplayModel();
    const stream = I('size', 0, 8, 8) + imageStream(1, 0xe, 0, 0, 0, 'image/png', 4, 4, (ctx) => ctx.fillRect(0, 0, 4, 4));
    for (const ins of parseAll(Buffer.from(stream))) expect(m.apply(ins)).toBeUndefined();
  });

  it('counts an undecodable image as malformed and keeps going', async () => {
    const warnings: string[] = [];
    const m = new DisplayModel({ onWarning: (op, msg) => warnings.push(`${op}: ${msg}`) });
    await feed(m, I('size', 0, 8, 8), I('img', 1, 0xe, 0, 'image/png', 0, 0), I('blob', 1, 'bm90IGFuIGltYWdl'), I('end', 1), fill(0xe, 0, 0, 0, 8, 8, RED));
    expect(m.malformed).toBe(1);
    expect(warnings).toHaveLength(1);
    expectPixel(m, 4, 4, RED, 0);
  });

  it('ignores blobs and ends of streams it does not draw (audio, clipboard)', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 8, 8), I('audio', 5, 'audio/L16;rate=44100,channels=2'), I('blob', 5, 'AAAA'), I('end', 5), I('clipboard', 6, 'text/plain'), I('blob', 6, 'aGk='), I('end', 6));
    expect(m.malformed).toBe(0);
    expect(m.unsupported.size).toBe(0);
  });
});

describe('layer tree', () => {
  it('places, nests (clipped to the parent), orders by z and shades layers', async () => {
    const m = new DisplayModel();
    await feed(
      m,
      I('size', 0, 100, 100),
      // Layer 1: 20×20 green at (10,10).
      I('size', 1, 20, 20),
      fill(0xe, 1, 0, 0, 20, 20, GREEN),
      I('move', 1, 0, 10, 10, 1),
      // Layer 2 inside layer 1 at (5,5), 100×100 red: only what lies inside layer 1 shows.
      I('size', 2, 100, 100),
      fill(0xe, 2, 0, 0, 100, 100, RED),
      I('move', 2, 1, 5, 5, 0),
      // Layers 3 (z 5, created first) and 4 (z 2) overlap at (60..70, 60..70): 3 is on top.
      I('size', 3, 20, 20),
      fill(0xe, 3, 0, 0, 20, 20, BLUE),
      I('move', 3, 0, 50, 50, 5),
      I('size', 4, 20, 20),
      fill(0xe, 4, 0, 0, 20, 20, WHITE),
      I('move', 4, 0, 60, 60, 2),
    );
    expectPixel(m, 12, 12, GREEN, 0);
    expectPixel(m, 20, 20, RED, 0);
    expectPixel(m, 35, 35, BLACK, 0); // layer 2 extends here but layer 1 clips it
    expectPixel(m, 65, 65, BLUE, 0);
    expectPixel(m, 75, 75, WHITE, 0);

    await feed(m, I('shade', 1, 128));
    expectPixel(m, 12, 12, [0, 128, 0, 255]);
    expectPixel(m, 20, 20, [128, 0, 0, 255]); // children fade with their parent

    // Moving layer 4 above 3 and somewhere else repaints both places.
    await feed(m, I('move', 4, 0, 55, 55, 9));
    expectPixel(m, 65, 65, WHITE, 0);
    expectPixel(m, 77, 77, BLACK, 0);
  });

  it('disposes layers (with their children) and buffers', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 50, 50), I('size', 1, 10, 10), fill(0xe, 1, 0, 0, 10, 10, GREEN), I('move', 1, 0, 5, 5, 0));
    await feed(m, I('size', 2, 10, 10), fill(0xe, 2, 0, 0, 10, 10, BLUE), I('move', 2, 1, 0, 0, 0));
    expectPixel(m, 7, 7, BLUE, 0);
    await feed(m, I('dispose', 1));
    expect(m.dirty).toBe(true);
    expectPixel(m, 7, 7, BLACK, 0);
    // A disposed buffer index starts again empty.
    await feed(m, fill(0xe, -1, 0, 0, 4, 4, RED), I('dispose', -1), I('copy', -1, 0, 0, 4, 4, 0xe, 0, 20, 20));
    expectPixel(m, 21, 21, BLACK, 0);
    // Disposing layer 0 does nothing.
    await feed(m, fill(0xe, 0, 0, 0, 50, 50, RED), I('dispose', 0));
    expectPixel(m, 30, 30, RED, 0);
  });

  it('keeps pixels of layer 0 when the display is resized', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 30, 30), fill(0xe, 0, 0, 0, 30, 30, RED), I('size', 0, 100, 60));
    expect([m.width, m.height]).toEqual([100, 60]);
    expectPixel(m, 10, 10, RED, 0);
    expectPixel(m, 50, 50, BLACK, 0);
  });
});

describe('cursor', () => {
  const cursorImage = (hx: number, hy: number) => [
    fill(0xe, -1, 0, 0, 3, 3, WHITE),
    fill(0x2, -1, 1, 1, 1, 1, BLACK), // ROUT punches a transparent centre pixel
    I('cursor', hx, hy, -1, 0, 0, 3, 3),
  ];

  it('draws the cursor image at the mouse position minus the hotspot, only once the mouse moved', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 64, 64), fill(0xe, 0, 0, 0, 64, 64, RED), ...cursorImage(1, 1));
    expectPixel(m, 0, 0, RED, 0); // not shown before any mouse instruction
    await feed(m, I('mouse', 30, 20, 0, 123456)); // recording form: x, y, mask, timestamp
    expectPixel(m, 29, 19, WHITE, 0);
    expectPixel(m, 31, 21, WHITE, 0);
    expectPixel(m, 30, 20, RED, 0); // transparent pixel shows the display below
    expectPixel(m, 32, 22, RED, 0);
    await feed(m, I('mouse', 10, 10));
    expectPixel(m, 29, 19, RED, 0); // old place repainted
    expectPixel(m, 9, 9, WHITE, 0);
  });

  it('takes a new cursor image and hotspot', async () => {
    const m = new DisplayModel();
    await feed(m, I('size', 0, 64, 64), ...cursorImage(0, 0), I('mouse', 30, 30), fill(0xc, -2, 0, 0, 2, 2, RED), I('cursor', 1, 1, -2, 0, 0, 2, 2));
    expectPixel(m, 29, 29, RED, 0);
    expectPixel(m, 32, 32, BLACK, 0);
    // Half-transparent cursor pixels blend over the display.
    await feed(m, fill(0xe, 0, 0, 0, 64, 64, BLUE), fill(0xc, -3, 0, 0, 2, 2, [255, 0, 0, 128]), I('cursor', 0, 0, -3, 0, 0, 2, 2));
    expectPixel(m, 30, 30, [128, 0, 127, 255]);
  });
});

describe('bad input', () => {
  it('counts unknown opcodes with one warning per kind, and never counts normal non-drawing ones', async () => {
    const warnings: Array<[string, string]> = [];
    const m = new DisplayModel({ onWarning: (op, msg) => warnings.push([op, msg]) });
    await feed(
      m,
      I('size', 0, 8, 8),
      I('frobnicate', 1),
      I('frobnicate', 2),
      I('wobble'),
      I('sync', 1),
      I('key', 1, 1),
      I('name', 'x'),
      I('args', 'VERSION_1_5_0'),
      I('ready', '$abc'),
      I('', 'ping'),
      I('argv', 1, 'text/plain', 'font-size'),
      I('filesystem', 0, 'Shared'),
      I('error', 'bye', 0x200),
      I('disconnect'),
    );
    expect([...m.unsupported]).toEqual([
      ['frobnicate', 2],
      ['wobble', 1],
    ]);
    expect(warnings.map(([op]) => op)).toEqual(['frobnicate', 'wobble']);
    expect(m.malformed).toBe(0);
  });

  it('counts malformed instructions, warns once per opcode and keeps drawing', async () => {
    const warnings: string[] = [];
    const m = new DisplayModel({ onWarning: (op) => warnings.push(op) });
    await feed(
      m,
      I('size', 0, 16, 16),
      I('copy', 'a', 'b'),
      I('copy', -1, 0, 0, 'x', 4, 0xe, 0, 0, 0),
      I('size', 0, 99999999, 10),
      I('cfill', 0xe),
      I('move', 1, 1, 0, 0, 0), // a layer into itself
      I('mouse'),
      fill(0xe, 0, 0, 0, 16, 16, GREEN),
    );
    expect(m.malformed).toBe(6);
    expect(warnings).toEqual(['copy', 'size', 'cfill', 'move', 'mouse']);
    expect([m.width, m.height]).toEqual([16, 16]);
    expectPixel(m, 8, 8, GREEN, 0);
  });
});

describe('memory budget', () => {
  it('refuses layers past the pixel budget instead of exhausting memory, and gets pixels back on dispose', async () => {
    const m = new DisplayModel({ maxPixels: 10_000 });
    // Canvases grow in steps of 64: a 50×50 display takes 64×64 = 4096 pixels, and so does
    // every new visible layer, which starts at the display's size.
    await feed(m, I('size', 0, 50, 50), fill(0xe, 1, 0, 0, 50, 50, GREEN));
    expectPixel(m, 10, 10, GREEN, 0);
    await feed(m, I('size', 2, 50, 50));
    expect(m.malformed).toBe(1);
    await feed(m, I('dispose', 1), I('size', 3, 50, 50), fill(0xe, 3, 0, 0, 50, 50, BLUE));
    expect(m.malformed).toBe(1);
    expectPixel(m, 10, 10, BLUE, 0);
  });
});

describe('serializeState (synthetic)', () => {
  it('rebuilds nested, shaded, half-transparent layers, buffers, cursor and mouse exactly', async () => {
    const a = new DisplayModel();
    await feed(
      a,
      I('size', 0, 90, 70),
      fill(0xe, 0, 0, 0, 90, 70, [10, 20, 30, 255]),
      fill(0xe, 0, 5, 5, 30, 30, [200, 10, 10, 77]),
      I('size', 1, 40, 30),
      fill(0xe, 1, 0, 0, 40, 30, [0, 200, 0, 130]),
      I('move', 1, 0, 20, 15, 3),
      I('shade', 1, 200),
      I('size', 2, 10, 10),
      fill(0xe, 2, 0, 0, 10, 10, [250, 250, 0, 255]),
      I('move', 2, 1, 35, 25, 0), // half outside its parent
      I('size', 3, 8, 8),
      fill(0xe, 3, 0, 0, 8, 8, BLUE),
      I('move', 3, 0, 60, 50, 3), // same z as layer 1: attachment order decides
      fill(0xe, -3, 70, 5, 6, 6, [1, 2, 3, 4]), // grown buffer with odd alpha
      fill(0xc, -1, 0, 0, 5, 5, [255, 255, 255, 180]),
      I('cursor', 2, 2, -1, 0, 0, 5, 5),
      I('mouse', 44, 33, 1, 999),
      I('size', 0, 80, 60),
    );
    const before = Buffer.from(a.render());
    const state = a.serializeState();
    expect(state).not.toMatch(/\d+\.sync,/);

    const b = new DisplayModel();
    await feed(b, state);
    expect([b.width, b.height]).toEqual([80, 60]);
    expect(b.malformed + b.unsupported.size).toBe(0);
    expect(Buffer.from(b.render()).equals(before)).toBe(true);

    // The buffer's pixels came across too: copying them out gives the same result on both.
    const next = [I('copy', -3, 70, 5, 6, 6, 0xe, 0, 0, 0), I('mouse', 3, 3), I('shade', 1, 255), I('move', 3, 0, 25, 20, 3)];
    await feed(a, ...next);
    await feed(b, ...next);
    expect(Buffer.from(b.render()).equals(Buffer.from(a.render()))).toBe(true);
  });

  it('carries an image stream cut between its blobs into the state, so the next segment completes it', async () => {
    const whole = imageStream(7, 0xe, 0, 4, 4, 'image/png', 20, 20, (ctx) => {
      ctx.fillStyle = 'rgb(10,200,30)';
      ctx.fillRect(0, 0, 20, 20);
    }, 23);
    const instructions = parseAll(Buffer.from(I('size', 0, 32, 32) + whole));
    const cut = 4; // size, img, and two blobs of 23 characters (not a multiple of 4)
    const text = (list: typeof instructions) => list.map((i) => i.raw.toString()).join('');

    const a = new DisplayModel();
    await feed(a, text(instructions.slice(0, cut)));
    const b = new DisplayModel();
    await feed(b, a.serializeState(), text(instructions.slice(cut)));
    expect(b.malformed).toBe(0);
    expectPixel(b, 10, 10, [10, 200, 30, 255], 0);

    await feed(a, text(instructions.slice(cut)));
    expect(Buffer.from(b.render()).equals(Buffer.from(a.render()))).toBe(true);
  });
});
