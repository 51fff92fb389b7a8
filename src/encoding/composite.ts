// How Guacamole's channel masks and transfer functions map onto canvas compositing, taken from
// guacamole-common-js 1.5.0 (Guacamole.Layer's compositeOperation table and
// Guacamole.Client.DefaultTransferFunction) so clips look like what the browser showed.

/** Channel mask → canvas globalCompositeOperation. Masks missing here are not implemented by
 *  guacamole-common-js either (0x0, 0x3, 0x5, 0x7, 0xD); they leave the operation unchanged. */
export const COMPOSITE_OPERATION: ReadonlyMap<number, GlobalCompositeOperation> = new Map<number, GlobalCompositeOperation>([
  [0x1, 'destination-in'],
  [0x2, 'destination-out'],
  [0x4, 'source-in'],
  [0x6, 'source-atop'],
  [0x8, 'source-out'],
  [0x9, 'destination-atop'],
  [0xa, 'xor'],
  [0xb, 'destination-over'],
  [0xc, 'copy'],
  [0xe, 'source-over'],
  [0xf, 'lighter'],
]);

/**
 * Operations that, under the canvas specification (and in Chromium, and in Skia here), also
 * clear everything outside what is drawn. guacd relies on it: its terminal clears the selection
 * layer with `rect 0,0,1,1` + `cfill SRC 0,0,0,0` (seen in the ssh fixture), which wipes the
 * whole layer in a browser. So the model keeps these unbounded, and reports the whole layer as
 * changed when one is used.
 */
export const UNBOUNDED_OPERATIONS: ReadonlySet<GlobalCompositeOperation> = new Set<GlobalCompositeOperation>([
  'copy',
  'source-in',
  'destination-in',
  'source-out',
  'destination-atop',
]);

export type GlobalCompositeOperation =
  | 'source-over'
  | 'source-in'
  | 'source-out'
  | 'source-atop'
  | 'destination-over'
  | 'destination-in'
  | 'destination-out'
  | 'destination-atop'
  | 'lighter'
  | 'copy'
  | 'xor';

/** Transfer function code: 0x3 (SRC) is a plain put and 0x5 (DEST) a no-op in guacamole-common-js. */
export const TRANSFER_SRC = 0x3;
export const TRANSFER_DEST = 0x5;

/**
 * Applies Guacamole transfer function `fn` from `src` onto `dst` (both straight RGBA, same
 * length), in place. Returns false for an unknown function code. Alpha follows
 * guacamole-common-js: only SRC (0x3) and NOT-SRC (0xC) copy the source alpha.
 */
export function applyTransfer(fn: number, src: Uint8ClampedArray, dst: Uint8ClampedArray): boolean {
  const op = BINARY_OPS[fn];
  if (op === undefined) return false;
  const copyAlpha = fn === 0x3 || fn === 0xc;
  for (let i = 0; i < dst.length; i += 4) {
    dst[i] = op(src[i]!, dst[i]!) & 0xff;
    dst[i + 1] = op(src[i + 1]!, dst[i + 1]!) & 0xff;
    dst[i + 2] = op(src[i + 2]!, dst[i + 2]!) & 0xff;
    if (copyAlpha) dst[i + 3] = src[i + 3]!;
  }
  return true;
}

// Index = transfer function code; each maps (source, destination) channel values to the result.
const BINARY_OPS: ReadonlyArray<((s: number, d: number) => number) | undefined> = [
  /* 0x0 BLACK */ () => 0x00,
  /* 0x1 AND */ (s, d) => s & d,
  /* 0x2 AND inverted destination */ (s, d) => s & ~d,
  /* 0x3 SRC */ (s) => s,
  /* 0x4 AND inverted source */ (s, d) => ~s & d,
  /* 0x5 DEST */ (_s, d) => d,
  /* 0x6 XOR */ (s, d) => s ^ d,
  /* 0x7 OR */ (s, d) => s | d,
  /* 0x8 NOR */ (s, d) => ~(s | d),
  /* 0x9 XNOR */ (s, d) => ~(s ^ d),
  /* 0xA invert destination */ (_s, d) => ~d,
  /* 0xB OR inverted destination */ (s, d) => s | ~d,
  /* 0xC invert source */ (s) => ~s,
  /* 0xD OR inverted source */ (s, d) => ~s | d,
  /* 0xE NAND */ (s, d) => ~(s & d),
  /* 0xF WHITE */ () => 0xff,
];
