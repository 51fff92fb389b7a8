// guacenc's timeline (GUACAMOLE_FACTS.md), for frames sent only when the display changed.
//
// Origin is the first `sync`; `sync` and a `mouse` carrying a timestamp advance the clock; a
// decreasing timestamp is refused. Frame k (at k/fps after the origin) shows the display after
// the last accepted timestamp t with t - origin < (k+1)/fps: the display as of an event at t
// belongs to slot floor((t - origin) · fps / 1000), and a later event in the same slot
// replaces it. So the state after an event is captured only once the next event is known to
// fall in a later slot; instructions after an event wait in `pending` until then, and since
// nothing is drawn for a slot that saw no change, idle stretches cost nothing.
import type { Instruction } from '../protocol/index.js';

/** What the timeline needs of the display model. */
export interface TimedDisplay {
  apply(ins: Instruction): void | Promise<void>;
  /** A visible change since the last frame was captured. */
  readonly dirty: boolean;
}

/** Captures the display as the frame for `slot`, shown from `ptsMs` after the origin. */
export type FrameSink = (slot: number, ptsMs: number) => Promise<void>;

/** The timestamp an instruction carries for the timeline, if any. */
export function timestampOf(ins: Instruction): number | undefined {
  let t: number;
  if (ins.opcode === 'sync') t = ins.intArg(0);
  else if (ins.opcode === 'mouse' && ins.argCount >= 4) t = ins.intArg(3);
  else return undefined;
  return Number.isFinite(t) ? t : undefined;
}

/** Slot arithmetic for one frame rate; the origin is set by the first accepted sync. */
export class FrameClock {
  readonly framerate: number;
  #origin: number | undefined;
  #last: number | undefined;
  #refused = 0;

  constructor(framerate: number) {
    if (!Number.isInteger(framerate) || framerate < 1) throw new RangeError(`framerate must be a positive integer, got ${framerate}`);
    this.framerate = framerate;
  }

  get origin(): number | undefined {
    return this.#origin;
  }
  /** Last accepted timestamp. */
  get last(): number | undefined {
    return this.#last;
  }
  /** Timestamps refused because they went backwards. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Offers a timestamp; returns its slot, or undefined when refused (it went backwards, or a
   * mouse timestamp came before the first sync set the origin).
   */
  accept(t: number, isSync: boolean): number | undefined {
    if (this.#origin === undefined) {
      if (!isSync) return undefined;
      this.#origin = t;
    }
    if (this.#last !== undefined && t < this.#last) {
      this.#refused++;
      return undefined;
    }
    this.#last = t;
    return this.slotOf(t);
  }

  slotOf(t: number): number {
    return Math.floor(((t - (this.#origin ?? t)) * this.framerate) / 1000);
  }

  /** Presentation time of a slot, ms after the origin. */
  ptsOf(slot: number): number {
    return (slot * 1000) / this.framerate;
  }

  /** The timeline's timestamp at the start of `slot` (an integer, as `sync` carries). */
  timeOf(slot: number): number {
    return (this.#origin ?? 0) + Math.floor(this.ptsOf(slot));
  }
}

/**
 * Feeds instructions to the display in order and asks for a frame when a slot's final state
 * is known and visibly changed. Call finish() at the end of input: it captures the last state
 * and makes sure a frame exists at the last event's slot, so the clip lasts as long as the
 * recording (the final frame held until the last timestamp).
 */
export class TimedReplay {
  readonly clock: FrameClock;
  readonly #display: TimedDisplay;
  readonly #sink: FrameSink;
  readonly #maxPendingBytes: number;
  #pending: Instruction[] = [];
  #pendingBytes = 0;
  #eventSlot: number | undefined; // slot of the last applied timestamped event
  #emittedSlot = -1;
  #frames = 0;

  constructor(display: TimedDisplay, clock: FrameClock, sink: FrameSink, opts: { maxPendingBytes?: number } = {}) {
    this.#display = display;
    this.clock = clock;
    this.#sink = sink;
    // Bounds memory when a stream draws a lot without any sync; such a stretch is then
    // shown from the previous event's slot, as soon as it is applied.
    this.#maxPendingBytes = opts.maxPendingBytes ?? 32 * 1024 * 1024;
  }

  /** Frames captured so far. */
  get frames(): number {
    return this.#frames;
  }
  /** Slot of the last frame captured, -1 before the first. */
  get lastSlot(): number {
    return this.#emittedSlot;
  }

  async push(ins: Instruction): Promise<void> {
    const t = timestampOf(ins);
    const slot = t === undefined ? undefined : this.clock.accept(t, ins.opcode === 'sync');
    if (slot === undefined) {
      this.#pending.push(ins);
      this.#pendingBytes += ins.raw.length;
      if (this.#pendingBytes > this.#maxPendingBytes) {
        if (this.#eventSlot !== undefined) await this.#capture(this.#eventSlot);
        await this.#applyPending();
      }
      return;
    }
    if (this.#eventSlot !== undefined && slot > this.#eventSlot) await this.#capture(this.#eventSlot);
    await this.#applyPending();
    await this.#display.apply(ins);
    this.#eventSlot = slot;
  }

  /** Captures the final state; instructions after the last event are applied but never shown. */
  async finish(): Promise<void> {
    if (this.#eventSlot !== undefined) {
      await this.#capture(this.#eventSlot);
      // Hold the last picture until the last timestamp: an unchanged display still needs a
      // frame there, or the clip would end at the last change.
      if (this.#emittedSlot < this.#eventSlot) await this.#emit(this.#eventSlot);
    }
    await this.#applyPending();
  }

  async #capture(slot: number): Promise<void> {
    if (slot <= this.#emittedSlot) return;
    if (this.#display.dirty || this.#emittedSlot < 0) await this.#emit(slot);
  }

  async #emit(slot: number): Promise<void> {
    this.#emittedSlot = slot;
    this.#frames++;
    await this.#sink(slot, this.clock.ptsOf(slot));
  }

  async #applyPending(): Promise<void> {
    const list = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    for (const ins of list) {
      const r = this.#display.apply(ins);
      if (r) await r;
    }
  }
}
