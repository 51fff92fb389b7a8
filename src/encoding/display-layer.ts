import { createCanvas, type Canvas, type Image, type SKRSContext2D } from '@napi-rs/canvas';
import { COMPOSITE_OPERATION, UNBOUNDED_OPERATIONS, applyTransfer, type GlobalCompositeOperation } from './composite.js';

/**
 * guacamole-common-js allocates canvases in steps of 64 pixels and keeps the pixels in that slack
 * when a layer shrinks a little; the model does the same so later growth shows the same pixels.
 */
const CANVAS_SIZE_FACTOR = 64;

/** Largest layer side accepted: guacd never asks for more, and it bounds memory (16384² × 4 = 1 GiB). */
export const MAX_LAYER_SIDE = 16384;

/**
 * Canvas pixels all layers of one display may hold together. guacd needs a handful of
 * display-sized layers and buffers; a stream asking for thousands (each visible layer starts at
 * the display's size) is hostile or broken, and must not exhaust the encoder's memory.
 */
export class PixelBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  /** Changes the count by `delta` pixels; refuses (false) growth past the limit. */
  change(delta: number): boolean {
    if (delta > 0 && this.#used + delta > this.limit) return false;
    this.#used += delta;
    return true;
  }
}

/** Default budget: 128 Mpx (512 MiB of RGBA), e.g. sixteen 4K layers or 160 at 1024×768. */
export const DEFAULT_PIXEL_BUDGET = 128 * 1024 * 1024;

/** Axis-aligned rectangle as edges: [x0, x1) × [y0, y1). */
export interface Bounds {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const LINE_CAP = ['butt', 'round', 'square'] as const;
const LINE_JOIN = ['bevel', 'miter', 'round'] as const;

/**
 * One Guacamole layer (index ≥ 0) or off-screen buffer (index < 0), with the drawing semantics of
 * guacamole-common-js's Guacamole.Layer: a canvas sized in steps of 64, buffers growing to fit what
 * is drawn into them (autosize), paths built by rect/start/line/arc/curve and consumed by
 * cfill/cstroke/lfill/lstroke/clip, and push/pop/reset of the drawing state.
 *
 * Drawing methods return the area they may have changed, in this layer's coordinates, so the
 * display model can recomposite only that; `null` means "nothing changed", and a layer under a
 * transform reports its whole area.
 */
export class DisplayLayer {
  readonly index: number;
  /** Logical size (what the protocol set or autosize grew to); the canvas may be larger. */
  width = 0;
  height = 0;
  readonly autosize: boolean;
  /** True until something is drawn: guacamole-common-js skips copying old pixels on resize then. */
  empty = true;

  // Placement, meaningful for visible layers (index > 0) only.
  x = 0;
  y = 0;
  z = 0;
  alpha = 0xff;
  /** CSS-style matrix set by `distort`, applied when compositing; null = identity. */
  matrix: [number, number, number, number, number, number] | null = null;
  parent: DisplayLayer | null = null;
  /** Children in the order they were attached (DOM order breaks z ties). */
  readonly children: DisplayLayer[] = [];

  #canvas: Canvas;
  #ctx: SKRSContext2D;
  #pathClosed = true;
  #stackSize = 0;
  #pathBounds: Bounds | null = null;
  /** True once a transform other than the identity may apply to drawing (cleared by identity/reset). */
  #transformed = false;

  readonly #budget: PixelBudget;

  constructor(index: number, width: number, height: number, autosize: boolean, budget: PixelBudget) {
    this.index = index;
    this.autosize = autosize;
    this.#budget = budget;
    this.#canvas = createCanvas(0, 0);
    this.#ctx = this.#canvas.getContext('2d');
    this.#ctx.save();
    this.resize(width, height);
  }

  get canvas(): Canvas {
    return this.#canvas;
  }

  get canvasWidth(): number {
    return this.#canvas.width;
  }

  get canvasHeight(): number {
    return this.#canvas.height;
  }

  /** The whole logical area, as bounds in layer coordinates. */
  get area(): Bounds {
    return { x0: 0, y0: 0, x1: this.width, y1: this.height };
  }

  /** Sets the logical size; returns false (and changes nothing) when a side is out of range or
   *  the display's pixel budget is spent. */
  resize(width: number, height: number): boolean {
    width = width || 0;
    height = height || 0;
    if (width < 0 || height < 0 || width > MAX_LAYER_SIDE || height > MAX_LAYER_SIDE) return false;
    if (width === this.width && height === this.height) return true;
    const canvasWidth = Math.ceil(width / CANVAS_SIZE_FACTOR) * CANVAS_SIZE_FACTOR;
    const canvasHeight = Math.ceil(height / CANVAS_SIZE_FACTOR) * CANVAS_SIZE_FACTOR;
    if (canvasWidth !== this.#canvas.width || canvasHeight !== this.#canvas.height) {
      const old = this.#canvas;
      if (!this.#budget.change(canvasWidth * canvasHeight - old.width * old.height)) return false;
      const keepWidth = Math.min(this.width, width);
      const keepHeight = Math.min(this.height, height);
      const operation = this.#ctx.globalCompositeOperation;
      this.#canvas = createCanvas(canvasWidth, canvasHeight);
      this.#ctx = this.#canvas.getContext('2d');
      if (!this.empty && old.width !== 0 && old.height !== 0 && keepWidth > 0 && keepHeight > 0) {
        this.#ctx.drawImage(old, 0, 0, keepWidth, keepHeight, 0, 0, keepWidth, keepHeight);
      }
      this.#ctx.globalCompositeOperation = operation;
      // A new canvas starts with an empty state stack, as resizing a browser canvas does.
      this.#stackSize = 0;
      this.#transformed = false;
      this.#ctx.save();
    } else {
      this.reset();
    }
    this.width = width;
    this.height = height;
    return true;
  }

  /** Grows an autosize layer to hold the rectangle; false when that would exceed MAX_LAYER_SIDE. */
  #fit(x: number, y: number, w: number, h: number): boolean {
    if (!this.autosize) return true;
    const right = Math.max(this.width, x + w);
    const bottom = Math.max(this.height, y + h);
    if (right === this.width && bottom === this.height) return true;
    return this.resize(right, bottom);
  }

  setChannelMask(mask: number): void {
    const op = COMPOSITE_OPERATION.get(mask);
    if (op !== undefined) this.#ctx.globalCompositeOperation = op;
  }

  get #operation(): GlobalCompositeOperation {
    return this.#ctx.globalCompositeOperation as GlobalCompositeOperation;
  }

  #changed(x: number, y: number, w: number, h: number): Bounds {
    this.empty = false;
    if (this.#transformed || UNBOUNDED_OPERATIONS.has(this.#operation)) return this.area;
    return { x0: x, y0: y, x1: x + w, y1: y + h };
  }

  /** Draws a decoded image (or another canvas) at (x, y) with the current channel mask. */
  drawImage(x: number, y: number, image: Image | Canvas): Bounds | null {
    const w = image.width;
    const h = image.height;
    if (w === 0 || h === 0) return null;
    if (!this.#fit(x, y, w, h)) return null;
    this.#ctx.drawImage(image, x, y);
    return this.#changed(x, y, w, h);
  }

  /** `copy`: source rectangle clipped to the source canvas, drawn with the current channel mask. */
  copy(src: DisplayLayer, sx: number, sy: number, sw: number, sh: number, x: number, y: number): Bounds | null {
    const clipped = clipSource(src, sx, sy, sw, sh);
    if (!clipped) return null;
    [sx, sy, sw, sh] = clipped;
    if (!this.#fit(x, y, sw, sh)) return null;
    this.#ctx.drawImage(src.#canvas, sx, sy, sw, sh, x, y, sw, sh);
    return this.#changed(x, y, sw, sh);
  }

  /** `transfer` with function 0x3: the source pixels replace the destination's, alpha included. */
  put(src: DisplayLayer, sx: number, sy: number, sw: number, sh: number, x: number, y: number): Bounds | null {
    const clipped = clipSource(src, sx, sy, sw, sh);
    if (!clipped) return null;
    [sx, sy, sw, sh] = clipped;
    if (!this.#fit(x, y, sw, sh)) return null;
    this.#ctx.putImageData(src.#ctx.getImageData(sx, sy, sw, sh), x, y);
    this.empty = false;
    return { x0: x, y0: y, x1: x + sw, y1: y + sh };
  }

  /** `transfer` with any other function: per-pixel raster operation (rare; a plain loop is fine). */
  transfer(src: DisplayLayer, sx: number, sy: number, sw: number, sh: number, x: number, y: number, fn: number): Bounds | null {
    const clipped = clipSource(src, sx, sy, sw, sh);
    if (!clipped) return null;
    [sx, sy, sw, sh] = clipped;
    if (!this.#fit(x, y, sw, sh)) return null;
    const from = src.#ctx.getImageData(sx, sy, sw, sh);
    const to = this.#ctx.getImageData(x, y, sw, sh);
    if (!applyTransfer(fn, from.data as Uint8ClampedArray, to.data as Uint8ClampedArray)) return null;
    this.#ctx.putImageData(to, x, y);
    this.empty = false;
    return { x0: x, y0: y, x1: x + sw, y1: y + sh };
  }

  #beginPathIfClosed(): void {
    if (this.#pathClosed) {
      this.#ctx.beginPath();
      this.#pathClosed = false;
      this.#pathBounds = null;
    }
  }

  #extendPath(x0: number, y0: number, x1: number, y1: number): void {
    const b = this.#pathBounds;
    if (b === null) this.#pathBounds = { x0, y0, x1, y1 };
    else {
      if (x0 < b.x0) b.x0 = x0;
      if (y0 < b.y0) b.y0 = y0;
      if (x1 > b.x1) b.x1 = x1;
      if (y1 > b.y1) b.y1 = y1;
    }
  }

  rect(x: number, y: number, w: number, h: number): void {
    this.#beginPathIfClosed();
    this.#fit(x, y, w, h);
    this.#ctx.rect(x, y, w, h);
    this.#extendPath(Math.min(x, x + w), Math.min(y, y + h), Math.max(x, x + w), Math.max(y, y + h));
  }

  moveTo(x: number, y: number): void {
    this.#beginPathIfClosed();
    this.#fit(x, y, 0, 0);
    this.#ctx.moveTo(x, y);
    this.#extendPath(x, y, x, y);
  }

  lineTo(x: number, y: number): void {
    this.#beginPathIfClosed();
    this.#fit(x, y, 0, 0);
    this.#ctx.lineTo(x, y);
    this.#extendPath(x, y, x, y);
  }

  arc(x: number, y: number, radius: number, start: number, end: number, negative: boolean): void {
    this.#beginPathIfClosed();
    this.#fit(x, y, 0, 0);
    this.#ctx.arc(x, y, radius, start, end, negative);
    // The arc's start point joins the path with a line from wherever the path was, so the
    // circle's bounding box plus the centre is a safe bound.
    this.#extendPath(x - radius, y - radius, x + radius, y + radius);
  }

  curveTo(cp1x: number, cp1y: number, cp2x: number, cp2y: number, x: number, y: number): void {
    this.#beginPathIfClosed();
    this.#fit(x, y, 0, 0);
    this.#ctx.bezierCurveTo(cp1x, cp1y, cp2x, cp2y, x, y);
    // A cubic Bézier lies within the convex hull of its control points.
    this.#extendPath(Math.min(cp1x, cp2x, x), Math.min(cp1y, cp2y, y), Math.max(cp1x, cp2x, x), Math.max(cp1y, cp2y, y));
  }

  close(): void {
    this.#ctx.closePath();
    this.#pathClosed = true;
  }

  clip(): void {
    this.#ctx.clip();
    this.#pathClosed = true;
  }

  /** Area touched by filling/stroking the current path, `grow` pixels wider on each side. */
  #pathChanged(grow: number): Bounds | null {
    this.empty = false;
    this.#pathClosed = true;
    const b = this.#pathBounds;
    if (b === null) return UNBOUNDED_OPERATIONS.has(this.#operation) ? this.area : null;
    if (this.#transformed || UNBOUNDED_OPERATIONS.has(this.#operation)) return this.area;
    return { x0: Math.floor(b.x0 - grow), y0: Math.floor(b.y0 - grow), x1: Math.ceil(b.x1 + grow), y1: Math.ceil(b.y1 + grow) };
  }

  fillColor(r: number, g: number, b: number, a: number): Bounds | null {
    this.#ctx.fillStyle = `rgba(${r},${g},${b},${a / 255})`;
    this.#ctx.fill();
    return this.#pathChanged(1);
  }

  strokeColor(cap: number, join: number, thickness: number, r: number, g: number, b: number, a: number): Bounds | null {
    const ctx = this.#ctx;
    ctx.lineCap = LINE_CAP[cap] ?? 'butt';
    ctx.lineJoin = LINE_JOIN[join] ?? 'bevel';
    ctx.lineWidth = thickness;
    ctx.strokeStyle = `rgba(${r},${g},${b},${a / 255})`;
    this.#ctx.stroke();
    return this.#pathChanged(thickness + ctx.miterLimit * thickness);
  }

  fillLayer(src: DisplayLayer): Bounds | null {
    if (src.canvasWidth === 0 || src.canvasHeight === 0) return this.#pathChanged(0);
    const pattern = this.#ctx.createPattern(src.#canvas, 'repeat');
    if (pattern) this.#ctx.fillStyle = pattern;
    this.#ctx.fill();
    return this.#pathChanged(1);
  }

  strokeLayer(cap: number, join: number, thickness: number, src: DisplayLayer): Bounds | null {
    const ctx = this.#ctx;
    ctx.lineCap = LINE_CAP[cap] ?? 'butt';
    ctx.lineJoin = LINE_JOIN[join] ?? 'bevel';
    ctx.lineWidth = thickness;
    if (src.canvasWidth !== 0 && src.canvasHeight !== 0) {
      const pattern = ctx.createPattern(src.#canvas, 'repeat');
      if (pattern) ctx.strokeStyle = pattern;
    }
    this.#ctx.stroke();
    return this.#pathChanged(thickness + ctx.miterLimit * thickness);
  }

  push(): void {
    this.#ctx.save();
    this.#stackSize++;
  }

  pop(): void {
    if (this.#stackSize > 0) {
      this.#ctx.restore();
      this.#stackSize--;
    }
  }

  reset(): void {
    const ctx = this.#ctx;
    while (this.#stackSize > 0) {
      ctx.restore();
      this.#stackSize--;
    }
    ctx.restore();
    ctx.save();
    ctx.beginPath();
    this.#pathClosed = false;
    this.#pathBounds = null;
    this.#transformed = false;
  }

  setTransform(a: number, b: number, c: number, d: number, e: number, f: number): void {
    this.#ctx.setTransform(a, b, c, d, e, f);
    this.#transformed = !(a === 1 && b === 0 && c === 0 && d === 1 && e === 0 && f === 0);
  }

  transform(a: number, b: number, c: number, d: number, e: number, f: number): void {
    this.#ctx.transform(a, b, c, d, e, f);
    if (!(a === 1 && b === 0 && c === 0 && d === 1 && e === 0 && f === 0)) this.#transformed = true;
  }

  setMiterLimit(limit: number): void {
    this.#ctx.miterLimit = limit;
  }

  /** Straight-alpha RGBA of a rectangle of the canvas (what getImageData gives). */
  readPixels(x: number, y: number, w: number, h: number): Uint8ClampedArray {
    return this.#ctx.getImageData(x, y, w, h).data as Uint8ClampedArray;
  }

  /** Pixels of the whole canvas as PNG (exact: premultiplied values survive the round trip). */
  toPng(): Buffer {
    return this.#canvas.encodeSync('png');
  }

  /** True when `ancestor` is this layer or one of its parents (to refuse cycles in `move`). */
  hasAncestor(ancestor: DisplayLayer): boolean {
    for (let l: DisplayLayer | null = this; l; l = l.parent) if (l === ancestor) return true;
    return false;
  }

  /** Attaches to `parent` (appended last among its children, as the DOM does), at x, y, z. */
  move(parent: DisplayLayer, x: number, y: number, z: number): void {
    if (this.parent !== parent) {
      this.detach();
      this.parent = parent;
      parent.children.push(this);
    }
    this.x = x;
    this.y = y;
    this.z = z;
  }

  /** Gives the layer's pixels back to the budget (the layer is being disposed). */
  release(): void {
    this.#budget.change(-(this.#canvas.width * this.#canvas.height));
    this.#canvas = createCanvas(0, 0);
    this.#ctx = this.#canvas.getContext('2d');
    this.#ctx.save();
    this.width = 0;
    this.height = 0;
  }

  detach(): void {
    const p = this.parent;
    if (!p) return;
    const i = p.children.indexOf(this);
    if (i >= 0) p.children.splice(i, 1);
    this.parent = null;
  }
}

/** Clips a source rectangle to the source canvas as guacamole-common-js does; null if empty. */
function clipSource(src: DisplayLayer, sx: number, sy: number, sw: number, sh: number): [number, number, number, number] | null {
  const cw = src.canvasWidth;
  const ch = src.canvasHeight;
  if (cw === 0 || ch === 0 || sx >= cw || sy >= ch) return null;
  if (sx + sw > cw) sw = cw - sx;
  if (sy + sh > ch) sh = ch - sy;
  if (sw <= 0 || sh <= 0) return null;
  return [sx, sy, sw, sh];
}
