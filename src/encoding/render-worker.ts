// Runs in a worker thread (started by encode-segment.ts): streams a recording through the
// parser, the display model and the frame clock, and posts each changed frame as I420
// (yuv420p, converted here area by area: yuv-frame.ts; transferred, not copied) to the parent,
// which muxes them into ffmpeg's stdin. Parsing,
// PNG/WebP decoding and compositing all happen here, so the gateway's event loop stays free.
import { open, rename, writeFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { GuacamoleParser, encodeInstruction, openRecording, type Instruction } from '../protocol/index.js';
import { errorMessage, isRecgwError } from '../errors.js';
import { FrameClock, TimedReplay, timestampOf } from './frame-clock.js';
import { DisplayModel } from './display-model.js';
import type { Bounds } from './display-layer.js';
import { convertArea, copyArea, fillBlack, i420Layout, type I420Layout } from './yuv-frame.js';
import type { FrameModel, WorkerInput, WorkerMessage, ParentMessage, RenderSummary } from './render-protocol.js';

const port = parentPort;
if (!port) throw new Error('render-worker.ts must run in a worker thread');

const input = workerData as WorkerInput;
/**
 * Frames posted and not yet written to ffmpeg; bounds memory to a few frames (1.2 MB each at
 * 1024×768, 3.1 MB at 1920×1080). 5 rather than 3: x264 takes longer over some frames (a
 * terminal scroll changes the whole picture) and over its start-up, and with only 3 buffered
 * the worker sat idle for ~250 ms of ssh-terminal's run (1024×768 25 fps) waiting for acks.
 * Not 8: measured on a 150 MiB segment, 8 put peak RSS (ours + ffmpeg) at 303 MB, over the
 * 300 MB budget, and 5 at 294 MB with ssh-terminal still at 1.42 s.
 */
const MAX_IN_FLIGHT = 5;
let inFlight = 0;
let wakeOnAck: (() => void) | undefined;
/**
 * Frame buffers back from the parent, reused so frames make no garbage, each with the
 * generation (render count) whose picture it holds, -1 when it holds none usable.
 */
const freeBuffers: { pixels: ArrayBuffer; generation: number }[] = [];

port.on('message', (msg: ParentMessage) => {
  if (msg.type === 'ack') {
    inFlight--;
    freeBuffers.push({ pixels: msg.pixels, generation: msg.generation });
    wakeOnAck?.();
    wakeOnAck = undefined;
  }
});

/**
 * Areas each recent render rewrote, by generation: a pooled buffer a few generations old is
 * brought up to date by copying just those areas from the model's frame instead of all of it.
 * Measured on rdp-desktop at 1024×768 25 fps (667 frames): the full 3 MB copy per frame took
 * 0.66 s of the worker's CPU.
 */
const renderLog: { generation: number; areas: readonly Bounds[] }[] = [];
/** Generations kept: a little more than the buffers in circulation (MAX_IN_FLIGHT + free). */
const RENDER_LOG_LENGTH = 16;
let generation = 0;

function post(msg: WorkerMessage, transfer?: ArrayBuffer[]): void {
  port!.postMessage(msg, transfer);
}

async function main(): Promise<RenderSummary> {
  const warnings = new Set<string>();
  const model: FrameModel = new DisplayModel({
    onWarning: (opcode, message) => {
      // The model warns once per kind already; this only keeps the parent's log small too.
      if (warnings.size < 100 && !warnings.has(opcode)) {
        warnings.add(opcode);
        post({ type: 'warning', opcode, message });
      }
    },
  });
  const clock = new FrameClock(input.framerate);
  let frameWidth = 0;
  let frameHeight = 0;
  let layout = i420Layout(0, 0);
  /** The master frame holds the model's frame as of the last render (not black, not cropped). */
  let masterCurrent = false;

  let sent = 0;
  const send = async (ptsMs: number, frame: { pixels: ArrayBuffer; generation: number }): Promise<void> => {
    inFlight++;
    sent++;
    post({ type: 'frame', ptsMs, pixels: frame.pixels, generation: frame.generation }, [frame.pixels]);
    // Let the event loop turn once per frame: @napi-rs/canvas frees the pixel buffers of
    // getImageData results (the display model's read-back) only from a later turn, and V8
    // does not count them as memory pressure, so a run of frames without a turn piles them up.
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  // Waits for a buffer slot before rendering, so the frame a buffer gets is the latest one.
  const slot = async (): Promise<void> => {
    while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => (wakeOnAck = r));
  };
  const replay = new TimedReplay(model, clock, async (_slot, ptsMs) => {
    if (frameWidth === 0) {
      // Nothing to show before layer 0 has a size; the clip's size is the display's size at
      // its first real frame, and later resizes are fitted in (frameOf).
      if (model.width === 0 || model.height === 0) return;
      frameWidth = model.width;
      frameHeight = model.height;
      // x264's yuv420p needs even sides: an odd display is evened up here by repeating its
      // last column or row (ffmpeg's pad filter would cut the odd one off a yuv420p frame).
      layout = i420Layout(frameWidth + (frameWidth & 1), frameHeight + (frameHeight & 1));
      post({ type: 'start', width: layout.width, height: layout.height });
      // Keep the clip starting at the origin: black until the first picture.
      if (ptsMs > 0) {
        await slot();
        await send(0, frameOf(Buffer.alloc(0), 0, 0, layout, null, -1));
      }
    }
    await slot();
    const pixels = model.render();
    generation++;
    renderLog.push({ generation, areas: model.renderedAreas });
    if (renderLog.length > RENDER_LOG_LENGTH) renderLog.shift();
    const sameSize = model.width === frameWidth && model.height === frameHeight;
    // After the black opening frame or a resize the master frame is converted whole. Pooled
    // buffers stay safe to patch: the black one has generation -1, and a resize reallocates
    // the model's frame, so that render's area is the whole frame and patch() copies it all.
    const whole = !sameSize || !masterCurrent;
    masterCurrent = sameSize;
    await send(ptsMs, frameOf(pixels, model.width, model.height, layout, whole ? null : model.renderedAreas, sameSize ? generation : -1));
  });

  // A previous segment's end state: drawn first, and its closing sync (the session-timeline
  // time of that segment's last frame) becomes this segment's origin, so consecutive clips
  // sit on the same frame grid as one whole-session encode would.
  let stateSync: Instruction | undefined;
  if (input.statePath) {
    const source = await openRecording(input.statePath);
    const parser = new GuacamoleParser((ins) => {
      if (ins.opcode === 'sync') stateSync = ins;
      else pending.push(ins);
    });
    const pending: Instruction[] = [];
    for await (const chunk of source.stream) {
      parser.push(chunk as Buffer);
      for (const ins of pending.splice(0)) await model.apply(ins);
    }
    parser.end();
  }

  const source = await openRecording(input.input);
  const batch: Instruction[] = [];
  const parser = new GuacamoleParser((ins) => batch.push(ins));
  let inputError: string | undefined;
  let truncated = false;
  let firstSync: number | undefined;
  let lastProgress = 0;

  const feed = async (ins: Instruction): Promise<void> => {
    if (stateSync && ins.opcode === 'sync') {
      const t = timestampOf(ins);
      const s = timestampOf(stateSync);
      // Only when the state's time comes first: a state from another guacd run would otherwise
      // make every later timestamp "decreasing" and freeze the clip.
      if (t !== undefined && s !== undefined && s <= t) await replay.push(stateSync);
      stateSync = undefined;
    }
    if (firstSync === undefined && ins.opcode === 'sync') firstSync = timestampOf(ins);
    await replay.push(ins);
  };

  try {
    for await (const chunk of source.stream) {
      try {
        parser.push(chunk as Buffer);
      } catch (err) {
        inputError = errorMessage(err);
      }
      for (const ins of batch.splice(0)) await feed(ins);
      if (inputError) break;
      const now = Date.now();
      if (now - lastProgress > 200) {
        lastProgress = now;
        post({ type: 'progress', bytesRead: source.bytesRead(), fileBytes: source.fileBytes, frames: sent, mediaMs: mediaMs(clock) });
      }
    }
    if (!inputError) {
      try {
        parser.end();
      } catch (err) {
        truncated = true;
        inputError = errorMessage(err);
      }
    }
  } catch (err) {
    // gunzip of a damaged or cut .gz file: keep what decoded, as for a truncated .guac.
    if (isRecgwError(err)) throw err;
    truncated = true;
    inputError = errorMessage(err);
  } finally {
    source.stream.destroy();
  }
  if (stateSync && replay.frames === 0 && clock.origin === undefined) {
    // A segment without a single sync still shows the state it starts from.
    await replay.push(stateSync);
  }
  await replay.finish();

  let stateFile: string | undefined;
  if (input.stateOut && clock.origin !== undefined) {
    const text = model.serializeState() + encodeInstruction('sync', clock.timeOf(replay.lastSlot));
    const tmp = `${input.stateOut}.tmp`;
    await writeFile(tmp, text);
    const fh = await open(tmp, 'r');
    await fh.sync();
    await fh.close();
    await rename(tmp, input.stateOut);
    stateFile = input.stateOut;
  }

  return {
    frames: sent,
    slots: replay.lastSlot + 1,
    durationMs: replay.lastSlot < 0 ? 0 : clock.ptsOf(replay.lastSlot + 1),
    width: frameWidth,
    height: frameHeight,
    bytesRead: source.bytesRead(),
    fileBytes: source.fileBytes,
    firstSync,
    lastTimestamp: clock.last,
    refusedTimestamps: clock.refused,
    unsupported: Object.fromEntries(model.unsupported),
    malformed: model.malformed,
    truncated,
    inputError,
    stateFile,
  };
}

function mediaMs(clock: FrameClock): number {
  return clock.origin === undefined || clock.last === undefined ? 0 : clock.last - clock.origin;
}

/**
 * The display as an I420 frame of the clip's size, kept up to date by converting only the
 * areas each render rewrote (each converted once, however many pooled buffers are behind).
 */
let master = new Uint8Array(0);

/**
 * Updates the master frame from the model's rendered RGBA (`w` × `h`; `areas` changed since the
 * last call, or null: convert it all) and returns a copy in a pooled, transferable buffer. A
 * display resized mid-recording is cropped or padded (black) at the top left rather than
 * rescaled: guacd resizes RDP/VNC displays rarely, and cropping keeps pixels sharp. `gen` is the
 * generation the frame holds (-1: never patched later).
 */
function frameOf(pixels: Buffer, w: number, h: number, f: I420Layout, areas: readonly Bounds[] | null, gen: number): { pixels: ArrayBuffer; generation: number } {
  if (master.length !== f.bytes) {
    master = new Uint8Array(f.bytes);
    areas = null;
  }
  if (w === 0 || h === 0) fillBlack(master, f);
  else if (areas === null) convertArea(pixels, w, h, master, f, { x0: 0, y0: 0, x1: f.width, y1: f.height });
  else for (const r of areas) convertArea(pixels, w, h, master, f, r);
  let pooled = freeBuffers.pop();
  if (pooled && pooled.pixels.byteLength !== f.bytes) pooled = undefined;
  const out = pooled?.pixels ?? new ArrayBuffer(f.bytes);
  const view = new Uint8Array(out);
  if (!(gen >= 0 && pooled && patch(view, f, pooled.generation, gen))) view.set(master);
  return { pixels: out, generation: gen };
}

/**
 * Brings `view`, holding generation `from`, up to generation `to` by copying the areas
 * rendered in between out of the master frame. False when the log no longer reaches back that
 * far or the areas add up to a whole frame: copy it all then.
 */
function patch(view: Uint8Array, f: I420Layout, from: number, to: number): boolean {
  if (from < 0 || from > to) return false;
  if (from === to) return true;
  const first = renderLog.findIndex((e) => e.generation === from + 1);
  if (first < 0 || renderLog[renderLog.length - 1]!.generation !== to) return false;
  let area = 0;
  for (let i = first; i < renderLog.length; i++) for (const r of renderLog[i]!.areas) area += (r.x1 - r.x0) * (r.y1 - r.y0);
  if (area >= f.width * f.height) return false;
  for (let i = first; i < renderLog.length; i++) {
    for (const r of renderLog[i]!.areas) copyArea(master, view, f, r);
  }
  return true;
}

main().then(
  (summary) => {
    post({ type: 'done', summary });
    // Exit by running out of work rather than being terminated: terminating a thread that holds
    // canvas objects makes @napi-rs/canvas print a leak warning for each one.
    port.close();
  },
  (err: unknown) => {
    post({ type: 'error', message: errorMessage(err), code: isRecgwError(err) ? err.code : undefined });
    port.close();
  },
);
