/**
 * Gathers the delayed small writes of every segment file into one moment per window.
 *
 * Why: a live session sends little and often, so its segment writer waits up to 25 ms for more
 * before writing (segment-writer.ts). Each writer timing that wait on its own spreads the writes
 * of many sessions evenly over time, and every write is handed to libuv's thread pool, which
 * has gone to sleep since the last one: a thread wake-up per write, on the relay's CPU (with 50
 * sessions, 2000 a second; on a VM each costs a cross-CPU interrupt, and the woken thread can
 * take the event loop's CPU). Writes that fall due together are queued together, and the pool's
 * threads wake once for all of them. No write waits longer than before: the window that a write
 * joins closes at most `delayMs` after it was asked for.
 */
export class WriteWindow {
  readonly #delayMs: number;
  #due = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  /** Calls `write` when the open window closes (opening one, of delayMs, if none is open). */
  add(write: () => void): void {
    this.#due.add(write);
    this.#timer ??= setTimeout(this.#close, this.#delayMs);
  }

  /** Takes `write` out of the open window (it is due sooner, or no longer). */
  delete(write: () => void): void {
    this.#due.delete(write);
    if (this.#due.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Writes waiting for the window to close. */
  get size(): number {
    return this.#due.size;
  }

  readonly #close = (): void => {
    this.#timer = undefined;
    const due = this.#due;
    this.#due = new Set();
    for (const write of due) write();
  };
}

const windows = new Map<number, WriteWindow>();

/** The process-wide window for writes that may wait `delayMs`. */
export function writeWindow(delayMs: number): WriteWindow {
  let w = windows.get(delayMs);
  if (w === undefined) {
    w = new WriteWindow(delayMs);
    windows.set(delayMs, w);
  }
  return w;
}
