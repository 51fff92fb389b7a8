import type { Bounds } from './display-layer.js';

/** Rectangles kept apart at most; beyond this, the new one merges where it grows a box least. */
const MAX_RECTS = 12;
/** Two boxes merge when the merged box wastes at most this many pixels over their sum. */
const MERGE_SLACK = 2048;

/**
 * The part of the frame changed since the last render, as a few rectangles. Reading pixels back
 * out of Skia costs in proportion to the area read, so a clock in the top-right and a line of
 * text bottom-left are read as two small boxes, not as the large box around both.
 */
export class DirtyRegion {
  #rects: Bounds[] = [];

  get empty(): boolean {
    return this.#rects.length === 0;
  }

  add(x0: number, y0: number, x1: number, y1: number): void {
    if (!(x1 > x0 && y1 > y0)) return;
    const rects = this.#rects;
    let r: Bounds = { x0, y0, x1, y1 };
    // Merge with every box it is cheap to join (repeat: a merged box may now reach others).
    for (let merged = true; merged; ) {
      merged = false;
      for (let i = 0; i < rects.length; i++) {
        const u = union(rects[i]!, r);
        if (area(u) <= area(rects[i]!) + area(r) + MERGE_SLACK) {
          rects.splice(i, 1);
          r = u;
          merged = true;
          break;
        }
      }
    }
    if (rects.length < MAX_RECTS) {
      rects.push(r);
      return;
    }
    let best = 0;
    let bestGrowth = Infinity;
    for (let i = 0; i < rects.length; i++) {
      const growth = area(union(rects[i]!, r)) - area(rects[i]!);
      if (growth < bestGrowth) {
        bestGrowth = growth;
        best = i;
      }
    }
    rects[best] = union(rects[best]!, r);
  }

  /** Returns the rectangles clipped to a width × height frame (integer edges) and clears. */
  take(width: number, height: number): Bounds[] {
    const out: Bounds[] = [];
    for (const r of this.#rects) {
      const x0 = Math.max(0, Math.floor(r.x0));
      const y0 = Math.max(0, Math.floor(r.y0));
      const x1 = Math.min(width, Math.ceil(r.x1));
      const y1 = Math.min(height, Math.ceil(r.y1));
      if (x1 > x0 && y1 > y0) out.push({ x0, y0, x1, y1 });
    }
    this.#rects = [];
    return out;
  }
}

function union(a: Bounds, b: Bounds): Bounds {
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

function area(b: Bounds): number {
  return (b.x1 - b.x0) * (b.y1 - b.y0);
}
