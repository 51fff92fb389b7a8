import { encodeInstruction } from '../protocol/index.js';
import type { CursorState, OpenImage } from './display-model.js';
import type { DisplayLayer } from './display-layer.js';

/** Base64 characters per `blob`: a multiple of 4, so every blob decodes on its own. */
const BLOB_CHARS = 8192;
/** Stream index used for every image of the state; each stream ends before the next begins. */
const STATE_STREAM = 0;
/** Channel mask SRC-OVER: drawing onto a fresh, transparent layer leaves the source exactly. */
const MASK_OVER = 0xe;

/**
 * Writes the display as Guacamole instructions that rebuild it in a fresh client: layer 0's size,
 * every visible layer attached to the tree (in attachment order, so equal-z layers stack the same
 * way), every buffer, all pixels as PNG `img` streams, the cursor image and hotspot, and the mouse
 * position. PNG keeps premultiplied pixels exactly (measured: every value survives
 * premultiplied → straight → premultiplied), so the rebuilt display renders identically.
 *
 * Image streams still open (a segment cut between `img` and `end`) are carried too, last, with
 * what they have received so far, so the next segment's blobs and `end` complete them.
 *
 * Not carried: drawing state that only matters mid-operation (an unfinished path, clip, transform
 * stack, last channel mask) and visible layers detached from the tree (their parent was
 * disposed); segments are cut after `sync`, where none of these is pending in guacd's output.
 */
export function serializeDisplayState(
  root: DisplayLayer,
  layers: ReadonlyMap<number, DisplayLayer>,
  cursor: CursorState,
  streams: ReadonlyMap<number, OpenImage>,
): string {
  const out: string[] = [];
  out.push(encodeInstruction('size', 0, root.width, root.height));
  if (root.alpha !== 0xff) out.push(encodeInstruction('shade', 0, root.alpha));
  if (root.matrix) out.push(encodeInstruction('distort', 0, ...root.matrix));

  const visible: DisplayLayer[] = [];
  const visit = (parent: DisplayLayer): void => {
    for (const child of parent.children) {
      // A layer only in the tree but no longer in the index map was replaced; skip it.
      if (layers.get(child.index) !== child) continue;
      visible.push(child);
      out.push(encodeInstruction('move', child.index, parent.index, child.x, child.y, child.z));
      out.push(encodeInstruction('size', child.index, child.width, child.height));
      if (child.alpha !== 0xff) out.push(encodeInstruction('shade', child.index, child.alpha));
      if (child.matrix) out.push(encodeInstruction('distort', child.index, ...child.matrix));
      visit(child);
    }
  };
  visit(root);

  const buffers = [...layers.values()].filter((l) => l.index < 0).sort((a, b) => b.index - a.index);
  for (const b of buffers) out.push(encodeInstruction('size', b.index, b.width, b.height));

  for (const layer of [root, ...visible, ...buffers]) {
    if (layer.empty || layer.canvasWidth === 0 || layer.canvasHeight === 0) continue;
    // The whole canvas, slack beyond the logical size included: guacamole-common-js keeps those
    // pixels and shows them again if the layer grows back.
    pushImage(out, layer.index, layer.toPng());
    // A buffer grows to fit the full-canvas image; setting its size back keeps the canvas (same
    // 64-pixel step) and so its pixels.
    if (layer.autosize && (layer.width !== layer.canvasWidth || layer.height !== layer.canvasHeight)) {
      out.push(encodeInstruction('size', layer.index, layer.width, layer.height));
    }
  }

  if (cursor.canvas) {
    // The cursor image goes through a scratch buffer no one else uses, removed right after.
    const scratch = Math.min(0, ...buffers.map((b) => b.index)) - 1;
    pushImage(out, scratch, cursor.canvas.encodeSync('png'));
    out.push(encodeInstruction('cursor', cursor.hotspotX, cursor.hotspotY, scratch, 0, 0, cursor.canvas.width, cursor.canvas.height));
    out.push(encodeInstruction('dispose', scratch));
  }
  if (cursor.shown) out.push(encodeInstruction('mouse', cursor.x, cursor.y));

  for (const [index, open] of streams) {
    // Only streams drawing into a layer the rebuilt display will have under the same index.
    if (layers.get(open.layer.index) !== open.layer) continue;
    const pending = open.stream.pending();
    if (!pending) continue;
    out.push(encodeInstruction('img', index, open.mask, open.layer.index, open.stream.mimetype, open.x, open.y));
    const b64 = pending.bytes.toString('base64');
    for (let i = 0; i < b64.length; i += BLOB_CHARS) out.push(encodeInstruction('blob', index, b64.slice(i, i + BLOB_CHARS)));
    if (pending.carry !== '') out.push(encodeInstruction('blob', index, pending.carry));
  }
  return out.join('');
}

function pushImage(out: string[], layer: number, png: Buffer): void {
  out.push(encodeInstruction('img', STATE_STREAM, MASK_OVER, layer, 'image/png', 0, 0));
  const b64 = png.toString('base64');
  for (let i = 0; i < b64.length; i += BLOB_CHARS) {
    out.push(encodeInstruction('blob', STATE_STREAM, b64.slice(i, i + BLOB_CHARS)));
  }
  out.push(encodeInstruction('end', STATE_STREAM));
}
