import { createCanvas, type Canvas, type Image, type SKRSContext2D } from '@napi-rs/canvas';
import type { Instruction } from '../protocol/index.js';
import { TRANSFER_DEST, TRANSFER_SRC } from './composite.js';
import { DirtyRegion } from './dirty-region.js';
import { DEFAULT_PIXEL_BUDGET, DisplayLayer, PixelBudget, type Bounds } from './display-layer.js';
import { serializeDisplayState } from './display-state.js';
import { ImageStream, releaseImage } from './image-stream.js';

export interface DisplayModelOptions {
  /** Called once per kind of problem: an unknown opcode, or a malformed instance of an opcode. */
  onWarning?: (opcode: string, message: string) => void;
  /** Most canvas pixels all layers and buffers may hold together (default 128 Mi pixels). */
  maxPixels?: number;
}

/** The software cursor: an image copied out of a layer, its hotspot, and where the mouse is. */
export interface CursorState {
  canvas: Canvas | null;
  hotspotX: number;
  hotspotY: number;
  x: number;
  y: number;
  /** The cursor is drawn only once a `mouse` instruction has placed it. */
  shown: boolean;
}

/** An `img` stream between its `img` and its `end`. */
export interface OpenImage {
  stream: ImageStream;
  layer: DisplayLayer;
  mask: number;
  x: number;
  y: number;
}

/**
 * Opcodes that are normal in a Guacamole stream but change nothing on screen (timing, input,
 * streams the model does not draw, session and object messages). They are skipped silently;
 * only opcodes nobody knows are counted as unsupported.
 */
const NOT_DRAWN = new Set([
  '', // tunnel-internal instructions (guacamole-lite's connection id, client pings)
  'sync',
  'key',
  'nop',
  'ack',
  'name',
  'args',
  'audio',
  'clipboard',
  'argv',
  'filesystem',
  'pipe',
  'body',
  'ready',
  'error',
  'disconnect',
  'file',
  'msg',
  'required',
  'undefine',
  'nest',
  'video',
  'select',
  'connect',
  'timezone',
  'image',
  'log',
  'touch',
  'get',
  'put',
]);

const EMPTY = Buffer.alloc(0);

/** Largest magnitude accepted for any integer argument: the canvas takes 32-bit values only. */
const MAX_COORDINATE = 0x3fffffff;

/**
 * The Guacamole display as guacamole-common-js builds it in a browser (Guacamole.Display,
 * Guacamole.Layer), kept in @napi-rs/canvas (Skia) surfaces: layers and buffers, their tree,
 * image streams, and the software cursor. Instructions go in one by one with apply(); render()
 * composites the visible tree into an opaque RGBA frame.
 *
 * Held to what the browser paints (test/e2e/display-fidelity.test.ts compares with
 * guacamole-common-js 1.5.0 in Chromium): channel masks are canvas composite operations, the
 * "unbounded" ones clearing the rest of the layer; a layer clips its children; opacity fades a
 * layer with its children as one picture (CSS opacity); transparent areas show black. One
 * choice follows guacenc instead: the cursor is drawn only once a `mouse` instruction placed it
 * (the browser shows it at 0,0 before that).
 *
 * render() recomposites and reads back only the area changed since the last call, as a few
 * boxes: reading pixels out of Skia costs in proportion to the area read, and an idle display
 * costs nothing.
 */
export class DisplayModel {
  readonly #onWarning: (opcode: string, message: string) => void;
  readonly #layers = new Map<number, DisplayLayer>();
  readonly #root: DisplayLayer;
  readonly #budget: PixelBudget;
  readonly #streams = new Map<number, OpenImage>();
  readonly #cursor: CursorState = { canvas: null, hotspotX: 0, hotspotY: 0, x: 0, y: 0, shown: false };
  readonly #unsupported = new Map<string, number>();
  readonly #warned = new Set<string>();
  #malformed = 0;

  #frame: Canvas | null = null;
  #frameCtx: SKRSContext2D | null = null;
  #out: Buffer = EMPTY;
  /** The cursor image's premultiplied RGBA, read once per cursor change. */
  #cursorPixels: Buffer | null = null;
  /** Changed area of the frame since the last render(), in frame coordinates. */
  readonly #dirty = new DirtyRegion();
  /** Areas of #out the last render() rewrote (frame coordinates). */
  #rendered: readonly Bounds[] = [];

  constructor(opts: DisplayModelOptions = {}) {
    this.#onWarning = opts.onWarning ?? (() => {});
    this.#budget = new PixelBudget(opts.maxPixels ?? DEFAULT_PIXEL_BUDGET);
    this.#root = new DisplayLayer(0, 0, 0, false, this.#budget);
    this.#layers.set(0, this.#root);
  }

  get width(): number {
    return this.#root.width;
  }

  get height(): number {
    return this.#root.height;
  }

  get dirty(): boolean {
    return !this.#dirty.empty;
  }

  /**
   * The areas of the frame the last render() rewrote; everything else is as the render before
   * left it. Lets a caller that keeps copies of earlier frames bring one up to date by copying
   * only these (render-worker.ts does, for its pool of frame buffers).
   */
  get renderedAreas(): readonly Bounds[] {
    return this.#rendered;
  }

  get unsupported(): ReadonlyMap<string, number> {
    return this.#unsupported;
  }

  get malformed(): number {
    return this.#malformed;
  }

  /**
   * Applies one instruction. Returns a Promise only when an image needs asynchronous decoding
   * (not seen with @napi-rs/canvas 1.1, which decodes synchronously); the caller awaits it before
   * the next instruction. Never throws for bad input: it is counted and skipped.
   */
  apply(ins: Instruction): void | Promise<void> {
    try {
      return this.#dispatch(ins);
    } catch (err) {
      // Validation above catches what is known to upset the canvas; this is the backstop that
      // keeps one odd instruction from ending a whole encode.
      this.#bad(ins, `the canvas refused it (${err instanceof Error ? err.message.slice(0, 120) : 'error'})`);
    }
  }

  #dispatch(ins: Instruction): void | Promise<void> {
    const op = ins.opcode;
    switch (op) {
      case 'blob':
        return this.#blob(ins);
      case 'img':
        return this.#img(ins);
      case 'end':
        return this.#end(ins);
      case 'mouse':
        return this.#mouse(ins);
      case 'sync':
        return;
      case 'copy':
        return this.#copy(ins);
      case 'cfill':
        return this.#cfill(ins);
      case 'rect':
        return this.#rect(ins);
      case 'size':
        return this.#size(ins);
      case 'cursor':
        return this.#cursorIns(ins);
      case 'move':
        return this.#move(ins);
      case 'shade':
        return this.#shade(ins);
      case 'dispose':
        return this.#dispose(ins);
      case 'transfer':
        return this.#transfer(ins);
      case 'start':
      case 'line':
        return this.#point(ins);
      case 'arc':
        return this.#arc(ins);
      case 'curve':
        return this.#curve(ins);
      case 'close':
      case 'clip':
      case 'push':
      case 'pop':
      case 'reset':
      case 'identity':
        return this.#layerState(ins);
      case 'cstroke':
        return this.#cstroke(ins);
      case 'lfill':
        return this.#lfill(ins);
      case 'lstroke':
        return this.#lstroke(ins);
      case 'transform':
      case 'distort':
        return this.#matrix(ins);
      case 'set':
        return this.#set(ins);
      case 'png':
      case 'jpeg':
        return this.#legacyImage(ins);
      default:
        if (NOT_DRAWN.has(op)) return;
        this.#unsupported.set(op, (this.#unsupported.get(op) ?? 0) + 1);
        this.#warnOnce(`unknown:${op}`, op, `opcode "${op.slice(0, 32)}" is not supported; instructions skipped`);
    }
  }

  /**
   * Composites layer 0, its visible descendants and the cursor into the frame and returns it as
   * RGBA (opaque). The same Buffer is returned each time until the frame size changes.
   */
  render(): Buffer {
    const w = this.width;
    const h = this.height;
    if (w === 0 || h === 0) {
      this.#dirty.take(0, 0);
      this.#rendered = [];
      return EMPTY;
    }
    if (this.#out.length !== w * h * 4) {
      this.#out = Buffer.alloc(w * h * 4);
      this.#dirty.add(0, 0, w, h);
    }
    const rects = this.#dirty.take(w, h);
    this.#rendered = rects;
    if (rects.length === 0) return this.#out;
    // Where anything under the cursor changes, the whole cursor box is read afresh and the
    // cursor blended on top again (it is never blended onto itself).
    const cursor = this.#cursorBox(w, h);
    const redrawCursor = cursor !== null && rects.some((r) => r.x0 < cursor.x1 && cursor.x0 < r.x1 && r.y0 < cursor.y1 && cursor.y0 < r.y1);
    if (redrawCursor) rects.push(cursor);

    const root = this.#root;
    if (root.children.length === 0 && root.alpha === 0xff && !root.matrix) {
      // Only layer 0 is on screen (VNC and RDP sessions, always): read its pixels straight out.
      // Drawing it onto a frame canvas first would make Skia copy the whole layer on its next
      // change (copy-on-write of the snapshot drawImage takes), for every frame.
      for (const r of rects) this.#copyOver(root.readPixels(r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0), r, w);
    } else {
      const ctx = this.#frameContext(w, h);
      ctx.save();
      ctx.beginPath();
      for (const r of rects) ctx.rect(r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
      ctx.clip();
      ctx.globalCompositeOperation = 'source-over';
      ctx.globalAlpha = 1;
      // Transparent parts of layer 0 show black, as in guacenc's frames.
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, w, h);
      this.#drawLayer(ctx, root, 0, 0, 1);
      ctx.restore();
      // Opaque by construction (black under everything, source-over on top): rows copy as is.
      for (const r of rects) this.#copyRows(ctx.getImageData(r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0).data, r, w);
    }
    if (redrawCursor) this.#blendCursor(w, h);
    return this.#out;
  }

  #frameContext(w: number, h: number): SKRSContext2D {
    if (!this.#frame || this.#frame.width !== w || this.#frame.height !== h) {
      this.#frame = createCanvas(w, h);
      this.#frameCtx = this.#frame.getContext('2d');
    }
    return this.#frameCtx!;
  }

  /**
   * Copies straight-alpha RGBA `pixels` of rectangle `r` into the frame as if drawn over black:
   * a pixel of alpha a becomes round(c·a/255), which is exactly the premultiplied value Skia
   * stored (straight values come from dividing it by a), so both render paths agree to the bit.
   */
  #copyOver(pixels: Uint8ClampedArray, r: Bounds, w: number): void {
    const out = this.#out;
    const rowBytes = (r.x1 - r.x0) * 4;
    // Alpha checked a whole pixel at a time (little-endian: alpha is the top byte), so the
    // usual opaque pixel costs one read: measured ~0.35 -> ~0.24 s (with the row copy) on rdp-desktop's 667 frames.
    const words = pixels.byteOffset % 4 === 0 ? new Uint32Array(pixels.buffer, pixels.byteOffset, pixels.length >>> 2) : null;
    for (let y = r.y0; y < r.y1; y++) {
      const from = (y - r.y0) * rowBytes;
      const to = (y * w + r.x0) * 4;
      out.set(pixels.subarray(from, from + rowBytes), to);
      for (let i = from, end = from + rowBytes; i < end; i += 4) {
        if (words ? words[i >>> 2]! >= 0xff000000 : pixels[i + 3] === 0xff) continue;
        const o = to + (i - from);
        const a = out[o + 3]!;
        out[o] = Math.round((out[o]! * a) / 255);
        out[o + 1] = Math.round((out[o + 1]! * a) / 255);
        out[o + 2] = Math.round((out[o + 2]! * a) / 255);
        out[o + 3] = 0xff;
      }
    }
  }

  /** Copies opaque RGBA `pixels` of rectangle `r` into the frame (one copy when full width). */
  #copyRows(pixels: Uint8ClampedArray, r: Bounds, w: number): void {
    const rowBytes = (r.x1 - r.x0) * 4;
    if (r.x0 === 0 && r.x1 === w) {
      this.#out.set(pixels.subarray(0, rowBytes * (r.y1 - r.y0)), r.y0 * rowBytes);
      return;
    }
    for (let y = r.y0; y < r.y1; y++) this.#out.set(pixels.subarray((y - r.y0) * rowBytes, (y - r.y0 + 1) * rowBytes), (y * w + r.x0) * 4);
  }

  /** The cursor's box on the frame (clipped), or null when it is not drawn. */
  #cursorBox(w: number, h: number): Bounds | null {
    const c = this.#cursor;
    if (!c.shown || !c.canvas) return null;
    const x0 = Math.max(0, c.x - c.hotspotX);
    const y0 = Math.max(0, c.y - c.hotspotY);
    const x1 = Math.min(w, c.x - c.hotspotX + c.canvas.width);
    const y1 = Math.min(h, c.y - c.hotspotY + c.canvas.height);
    return x1 > x0 && y1 > y0 ? { x0, y0, x1, y1 } : null;
  }

  /** Source-over of the cursor's premultiplied pixels onto the (opaque) frame. */
  #blendCursor(w: number, h: number): void {
    const c = this.#cursor;
    const box = this.#cursorBox(w, h);
    if (!box || !c.canvas) return;
    const pixels = (this.#cursorPixels ??= c.canvas.data());
    const cw = c.canvas.width;
    const left = c.x - c.hotspotX;
    const top = c.y - c.hotspotY;
    const out = this.#out;
    for (let y = box.y0; y < box.y1; y++) {
      let src = ((y - top) * cw + (box.x0 - left)) * 4;
      let dst = (y * w + box.x0) * 4;
      for (let x = box.x0; x < box.x1; x++, src += 4, dst += 4) {
        const a = pixels[src + 3]!;
        if (a === 0) continue;
        const keep = 255 - a;
        out[dst] = pixels[src]! + Math.round((out[dst]! * keep) / 255);
        out[dst + 1] = pixels[src + 1]! + Math.round((out[dst + 1]! * keep) / 255);
        out[dst + 2] = pixels[src + 2]! + Math.round((out[dst + 2]! * keep) / 255);
      }
    }
  }

  /**
   * Guacamole instructions that rebuild this display in a fresh DisplayModel (or any Guacamole
   * client): sizes, tree, opacity, every layer's and buffer's pixels as PNG, cursor and mouse
   * position. No `sync` and no timestamps, so it never moves a frame clock.
   */
  serializeState(): string {
    return serializeDisplayState(this.#root, this.#layers, this.#cursor, this.#streams);
  }

  // ---- layers and bookkeeping -------------------------------------------------------------

  /** Layer by index, created on first use as guacamole-common-js does. */
  #layer(index: number): DisplayLayer {
    let layer = this.#layers.get(index);
    if (!layer) {
      if (index > 0) {
        // New visible layers take the display's size and sit at 0,0 in layer 0.
        layer = new DisplayLayer(index, this.#root.width, this.#root.height, false, this.#budget);
        layer.move(this.#root, 0, 0, 0);
      } else {
        layer = new DisplayLayer(index, 0, 0, true, this.#budget);
      }
      this.#layers.set(index, layer);
    }
    return layer;
  }

  /** Marks `b` (in `layer`'s coordinates) as changed on screen, if the layer is on screen. */
  #touch(layer: DisplayLayer, b: Bounds | null): void {
    if (!b || layer.index < 0) return;
    let ox = 0;
    let oy = 0;
    for (let l = layer; l !== this.#root; ) {
      const p = l.parent;
      if (!p) return; // detached from the tree: not visible
      if (l.matrix) {
        this.#touchAll();
        return;
      }
      ox += l.x;
      oy += l.y;
      l = p;
    }
    this.#touchFrame(b.x0 + ox, b.y0 + oy, b.x1 + ox, b.y1 + oy);
  }

  #touchFrame(x0: number, y0: number, x1: number, y1: number): void {
    this.#dirty.add(x0, y0, x1, y1);
  }

  #touchAll(): void {
    this.#dirty.add(0, 0, this.#root.width, this.#root.height);
  }

  #touchCursor(): void {
    const c = this.#cursor;
    if (!c.shown || !c.canvas) return;
    const x = c.x - c.hotspotX;
    const y = c.y - c.hotspotY;
    this.#touchFrame(x, y, x + c.canvas.width, y + c.canvas.height);
  }

  #drawLayer(ctx: SKRSContext2D, layer: DisplayLayer, x: number, y: number, alpha: number): void {
    if (layer.width <= 0 || layer.height <= 0 || layer.alpha <= 0) return;
    const kids = layer.children;
    ctx.save();
    ctx.translate(x, y);
    const m = layer.matrix;
    if (m) ctx.transform(m[0], m[1], m[2], m[3], m[4], m[5]);
    // Each layer's element clips its children (overflow: hidden in guacamole-common-js).
    ctx.beginPath();
    ctx.rect(0, 0, layer.width, layer.height);
    ctx.clip();
    if (layer.alpha < 0xff && kids.length > 0) {
      // CSS opacity fades the layer and its children as one picture (not each on its own, as
      // Guacamole.Display.flatten() does), so overlapping children do not show through each other.
      const group = createCanvas(layer.width, layer.height);
      const gctx = group.getContext('2d');
      this.#drawContent(gctx, layer, 1);
      ctx.globalAlpha = (alpha * layer.alpha) / 255;
      ctx.drawImage(group, 0, 0);
    } else {
      this.#drawContent(ctx, layer, (alpha * layer.alpha) / 255);
    }
    ctx.restore();
  }

  /** Draws a layer's own pixels then its children (by z, ties in attachment order) at 0,0. */
  #drawContent(ctx: SKRSContext2D, layer: DisplayLayer, alpha: number): void {
    ctx.globalAlpha = alpha;
    ctx.drawImage(layer.canvas, 0, 0);
    const kids = layer.children;
    if (kids.length === 0) return;
    // Array.prototype.sort is stable: equal z keeps attachment (document) order.
    const ordered = kids.length === 1 ? kids : [...kids].sort((p, q) => p.z - q.z);
    for (const child of ordered) this.#drawLayer(ctx, child, child.x, child.y, alpha);
  }

  #warnOnce(kind: string, opcode: string, message: string): void {
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    this.#onWarning(opcode, message);
  }

  #bad(ins: Instruction, why: string): void {
    this.#malformed++;
    this.#warnOnce(`malformed:${ins.opcode}`, ins.opcode, `malformed "${ins.opcode}" instruction skipped: ${why}`);
  }

  /** The first `n` arguments as integers (parseInt, as guacamole-common-js reads them), or null. */
  #ints(ins: Instruction, n: number): number[] | null {
    if (ins.argCount < n) {
      this.#bad(ins, `expected at least ${n} arguments, got ${ins.argCount}`);
      return null;
    }
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const v = parseInt(ins.arg(i), 10);
      if (!Number.isFinite(v) || v > MAX_COORDINATE || v < -MAX_COORDINATE) {
        this.#bad(ins, `argument ${i + 1} is not an integer in range`);
        return null;
      }
      out[i] = v;
    }
    return out;
  }

  // ---- streams ----------------------------------------------------------------------------

  #img(ins: Instruction): void {
    // img,<stream>,<mask>,<layer>,<mimetype>,<x>,<y>
    if (ins.argCount < 6) return this.#bad(ins, 'expected 6 arguments');
    const stream = parseInt(ins.arg(0), 10);
    const mask = parseInt(ins.arg(1), 10);
    const layer = parseInt(ins.arg(2), 10);
    const x = parseInt(ins.arg(4), 10);
    const y = parseInt(ins.arg(5), 10);
    if (![stream, mask, layer, x, y].every((v) => Number.isFinite(v) && Math.abs(v) <= MAX_COORDINATE)) {
      return this.#bad(ins, 'non-numeric or out-of-range argument');
    }
    this.#streams.set(stream, { stream: new ImageStream(ins.arg(3)), layer: this.#layer(layer), mask, x, y });
  }

  #blob(ins: Instruction): void {
    const entry = this.#streams.get(parseInt(ins.arg(0), 10));
    // Blobs of streams the model does not draw (audio, clipboard, argv, files) are not its business.
    if (entry) entry.stream.push(ins.argBytes(1));
  }

  #end(ins: Instruction): void | Promise<void> {
    const index = parseInt(ins.arg(0), 10);
    const entry = this.#streams.get(index);
    if (!entry) return;
    this.#streams.delete(index);
    const decoded = entry.stream.decode();
    if (decoded instanceof Promise) {
      return decoded.then((image) => this.#drawDecoded(ins, entry, image));
    }
    this.#drawDecoded(ins, entry, decoded);
  }

  #drawDecoded(ins: Instruction, entry: OpenImage, image: Image | null): void {
    if (!image) return this.#bad(ins, `image stream (${entry.stream.mimetype.slice(0, 40)}) could not be decoded`);
    entry.layer.setChannelMask(entry.mask);
    this.#touch(entry.layer, entry.layer.drawImage(entry.x, entry.y, image));
    // Drawn once and never again: its pixels are now in the layer.
    releaseImage(image);
  }

  /** Protocol 0.x `png`/`jpeg`: mask, layer, x, y, base64 data in one instruction. */
  #legacyImage(ins: Instruction): void | Promise<void> {
    const a = this.#ints(ins, 4);
    if (!a) return;
    const stream = new ImageStream(`image/${ins.opcode}`);
    stream.push(ins.argBytes(4));
    const entry = { stream, layer: this.#layer(a[1]!), mask: a[0]!, x: a[2]!, y: a[3]! };
    const decoded = stream.decode();
    if (decoded instanceof Promise) return decoded.then((image) => this.#drawDecoded(ins, entry, image));
    this.#drawDecoded(ins, entry, decoded);
  }

  // ---- drawing ----------------------------------------------------------------------------

  #copy(ins: Instruction): void {
    // copy,<srclayer>,<sx>,<sy>,<w>,<h>,<mask>,<dstlayer>,<x>,<y>
    const a = this.#ints(ins, 9);
    if (!a) return;
    const src = this.#layer(a[0]!);
    const dst = this.#layer(a[6]!);
    dst.setChannelMask(a[5]!);
    this.#touch(dst, dst.copy(src, a[1]!, a[2]!, a[3]!, a[4]!, a[7]!, a[8]!));
  }

  #transfer(ins: Instruction): void {
    // transfer,<srclayer>,<sx>,<sy>,<w>,<h>,<function>,<dstlayer>,<x>,<y>
    const a = this.#ints(ins, 9);
    if (!a) return;
    const fn = a[5]!;
    if (fn === TRANSFER_DEST) return;
    const src = this.#layer(a[0]!);
    const dst = this.#layer(a[6]!);
    const changed =
      fn === TRANSFER_SRC
        ? dst.put(src, a[1]!, a[2]!, a[3]!, a[4]!, a[7]!, a[8]!)
        : dst.transfer(src, a[1]!, a[2]!, a[3]!, a[4]!, a[7]!, a[8]!, fn);
    this.#touch(dst, changed);
  }

  #rect(ins: Instruction): void {
    const a = this.#ints(ins, 5);
    if (!a) return;
    this.#layer(a[0]!).rect(a[1]!, a[2]!, a[3]!, a[4]!);
  }

  #point(ins: Instruction): void {
    const a = this.#ints(ins, 3);
    if (!a) return;
    const layer = this.#layer(a[0]!);
    if (ins.opcode === 'start') layer.moveTo(a[1]!, a[2]!);
    else layer.lineTo(a[1]!, a[2]!);
  }

  #arc(ins: Instruction): void {
    // arc,<layer>,<x>,<y>,<radius>,<start>,<end>,<negative>
    const a = this.#ints(ins, 4);
    if (!a) return;
    const start = parseFloat(ins.arg(4));
    const end = parseFloat(ins.arg(5));
    if (!Number.isFinite(start) || !Number.isFinite(end) || a[3]! < 0) return this.#bad(ins, 'bad angle or radius');
    this.#layer(a[0]!).arc(a[1]!, a[2]!, a[3]!, start, end, parseInt(ins.arg(6), 10) !== 0 && ins.arg(6) !== '');
  }

  #curve(ins: Instruction): void {
    const a = this.#ints(ins, 7);
    if (!a) return;
    this.#layer(a[0]!).curveTo(a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!);
  }

  #layerState(ins: Instruction): void {
    const a = this.#ints(ins, 1);
    if (!a) return;
    const layer = this.#layer(a[0]!);
    switch (ins.opcode) {
      case 'close':
        return layer.close();
      case 'clip':
        return layer.clip();
      case 'push':
        return layer.push();
      case 'pop':
        return layer.pop();
      case 'reset':
        return layer.reset();
      case 'identity':
        return layer.setTransform(1, 0, 0, 1, 0, 0);
    }
  }

  #cfill(ins: Instruction): void {
    // cfill,<mask>,<layer>,<r>,<g>,<b>,<a>
    const a = this.#ints(ins, 6);
    if (!a) return;
    const layer = this.#layer(a[1]!);
    layer.setChannelMask(a[0]!);
    this.#touch(layer, layer.fillColor(a[2]!, a[3]!, a[4]!, a[5]!));
  }

  #cstroke(ins: Instruction): void {
    // cstroke,<mask>,<layer>,<cap>,<join>,<thickness>,<r>,<g>,<b>,<a>
    const a = this.#ints(ins, 9);
    if (!a) return;
    const layer = this.#layer(a[1]!);
    layer.setChannelMask(a[0]!);
    this.#touch(layer, layer.strokeColor(a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!));
  }

  #lfill(ins: Instruction): void {
    // lfill,<mask>,<layer>,<srclayer>
    const a = this.#ints(ins, 3);
    if (!a) return;
    const layer = this.#layer(a[1]!);
    layer.setChannelMask(a[0]!);
    this.#touch(layer, layer.fillLayer(this.#layer(a[2]!)));
  }

  #lstroke(ins: Instruction): void {
    // lstroke,<mask>,<layer>,<cap>,<join>,<thickness>,<srclayer>
    const a = this.#ints(ins, 6);
    if (!a) return;
    const layer = this.#layer(a[1]!);
    layer.setChannelMask(a[0]!);
    this.#touch(layer, layer.strokeLayer(a[2]!, a[3]!, a[4]!, this.#layer(a[5]!)));
  }

  #matrix(ins: Instruction): void {
    // transform|distort,<layer>,<a>,<b>,<c>,<d>,<e>,<f>
    const a = this.#ints(ins, 1);
    if (!a) return;
    const m: number[] = [];
    for (let i = 1; i <= 6; i++) m.push(parseFloat(ins.arg(i)));
    if (!m.every(Number.isFinite)) return this.#bad(ins, 'matrix values must be numbers');
    const [ma, mb, mc, md, me, mf] = m as [number, number, number, number, number, number];
    if (ins.opcode === 'transform') {
      this.#layer(a[0]!).transform(ma, mb, mc, md, me, mf);
      return;
    }
    // distort applies to visible layers only (a CSS transform of the layer's element).
    if (a[0]! < 0) return;
    const layer = this.#layer(a[0]!);
    this.#touchAll();
    const identity = ma === 1 && mb === 0 && mc === 0 && md === 1 && me === 0 && mf === 0;
    layer.matrix = identity ? null : [ma, mb, mc, md, me, mf];
  }

  #set(ins: Instruction): void {
    // set,<layer>,<property>,<value>: only miter-limit affects drawing.
    const a = this.#ints(ins, 1);
    if (!a) return;
    if (ins.arg(1) === 'miter-limit') {
      const v = parseFloat(ins.arg(2));
      if (Number.isFinite(v) && v > 0) this.#layer(a[0]!).setMiterLimit(v);
    }
  }

  // ---- layer tree -------------------------------------------------------------------------

  #size(ins: Instruction): void {
    const a = this.#ints(ins, 3);
    if (!a) return;
    const layer = this.#layer(a[0]!);
    this.#touch(layer, layer.area);
    if (!layer.resize(a[1]!, a[2]!)) {
      return this.#bad(ins, `size ${a[1]}x${a[2]} is out of range or past the display's memory budget`);
    }
    if (layer === this.#root) this.#touchAll();
    else this.#touch(layer, layer.area);
  }

  #move(ins: Instruction): void {
    // move,<layer>,<parent>,<x>,<y>,<z>: only for visible, non-default layers.
    const a = this.#ints(ins, 5);
    if (!a) return;
    if (a[0]! <= 0 || a[1]! < 0) return;
    const layer = this.#layer(a[0]!);
    const parent = this.#layer(a[1]!);
    if (parent.hasAncestor(layer)) return this.#bad(ins, 'a layer cannot be moved into itself or its descendants');
    this.#touch(layer, layer.area);
    layer.move(parent, a[2]!, a[3]!, a[4]!);
    this.#touch(layer, layer.area);
  }

  #shade(ins: Instruction): void {
    const a = this.#ints(ins, 2);
    if (!a) return;
    if (a[0]! < 0) return;
    const layer = this.#layer(a[0]!);
    const alpha = Math.max(0, Math.min(255, a[1]!));
    if (alpha === layer.alpha) return;
    layer.alpha = alpha;
    if (layer === this.#root) this.#touchAll();
    else this.#touch(layer, layer.area);
  }

  #dispose(ins: Instruction): void {
    const a = this.#ints(ins, 1);
    if (!a) return;
    const index = a[0]!;
    // Disposing the default layer has no effect in guacamole-common-js.
    if (index === 0) return;
    const layer = this.#layers.get(index);
    if (!layer) return;
    if (index > 0) {
      this.#touch(layer, layer.area);
      layer.detach();
    }
    this.#layers.delete(index);
    // Its children, if any, stay attached to it (off screen, as in the browser) and keep their
    // pixels; the disposed layer's own are not needed any more.
    layer.release();
  }

  // ---- cursor -----------------------------------------------------------------------------

  #cursorIns(ins: Instruction): void {
    // cursor,<hotspot x>,<hotspot y>,<srclayer>,<sx>,<sy>,<w>,<h>
    const a = this.#ints(ins, 7);
    if (!a) return;
    const [hx, hy, srcIndex, sx, sy, w, h] = a as [number, number, number, number, number, number, number];
    const src = this.#layer(srcIndex);
    this.#touchCursor();
    const c = this.#cursor;
    c.hotspotX = hx;
    c.hotspotY = hy;
    if (w > 0 && h > 0 && w <= 4096 && h <= 4096) {
      const canvas = createCanvas(w, h);
      if (src.canvasWidth > 0 && src.canvasHeight > 0) {
        const ctx = canvas.getContext('2d');
        // The cursor layer takes the source pixels as they are (SRC), alpha included.
        ctx.globalCompositeOperation = 'copy';
        ctx.drawImage(src.canvas, sx, sy, w, h, 0, 0, w, h);
      }
      c.canvas = canvas;
    } else {
      c.canvas = null;
    }
    this.#cursorPixels = null;
    this.#touchCursor();
  }

  #mouse(ins: Instruction): void {
    // mouse,<x>,<y>[,<mask>,<timestamp>]: the recording form carries a mask and timestamp.
    const a = this.#ints(ins, 2);
    if (!a) return;
    const c = this.#cursor;
    if (c.shown && c.x === a[0] && c.y === a[1]) return;
    this.#touchCursor();
    c.x = a[0]!;
    c.y = a[1]!;
    c.shown = true;
    this.#touchCursor();
  }
}
