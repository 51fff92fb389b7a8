import { resolve } from 'node:path';
import { GuacStatus, RecgwError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { freeBytesOnFileSystem } from './free-space.js';
import type { Recorder } from './recorder.js';

/**
 * A measurement taken this recently (or still under way) answers later callers too: every
 * recorded session's admission measures the spool, and a burst of connections (a shift
 * starting) needs one answer, not one per connection. A quarter second is far less than the
 * floor's margin can be used up in (the watchdog ends sessions at half the floor).
 */
export const FREE_SPACE_REUSE_MS = 250;

/**
 * Wraps a free-space measurement so that calls for the same path within `reuseMs` of the last
 * measurement's start share it; a failed measurement is never reused.
 */
export function sharedMeasurement(measure: (path: string) => Promise<number>, reuseMs: number, now: () => number = () => performance.now()): (path: string) => Promise<number> {
  const last = new Map<string, { at: number; free: Promise<number> }>();
  return (path) => {
    const key = resolve(path);
    const prev = last.get(key);
    if (prev && now() - prev.at < reuseMs) return prev.free;
    const entry = { at: now(), free: measure(key) };
    last.set(key, entry);
    entry.free.catch(() => {
      if (last.get(key) === entry) last.delete(key);
    });
    return entry.free;
  };
}

/**
 * Free bytes (for an unprivileged user) on the file system holding `path` (free-space.ts; the
 * spool may not exist yet on a fresh machine: its nearest existing parent is measured).
 * Measurements are shared for FREE_SPACE_REUSE_MS.
 */
export const freeBytes: (path: string) => Promise<number> = sharedMeasurement(freeBytesOnFileSystem, FREE_SPACE_REUSE_MS);

/** Throws RECGW_ERR_DISK_FLOOR when the spool's file system has less than `minFreeBytes` free. */
export async function checkDiskFloor(spoolDir: string, minFreeBytes: number): Promise<void> {
  const free = await freeBytes(spoolDir);
  if (free < minFreeBytes) {
    throw new RecgwError(
      'RECGW_ERR_DISK_FLOOR',
      `only ${formatBytes(free)} free on the recording spool's disk (${spoolDir}), under RECORDING_MIN_FREE_BYTES (${formatBytes(minFreeBytes)}); free some space or lower the floor`,
      { guacStatus: GuacStatus.SERVER_BUSY },
    );
  }
}

export interface DiskWatchdogOptions {
  spoolDir: string;
  minFreeBytes: number;
  intervalMs: number;
  recorder: Recorder;
  logger: Logger;
  /** Measures free space; tests inject one. Default freeBytes(). */
  freeBytes?: (path: string) => Promise<number>;
}

/**
 * Watches the spool's free space while sessions run. Under the floor new sessions are refused
 * (admission checks that itself); under HALF the floor every running recording is ended with
 * RECGW_ERR_DISK_FLOOR, because a recording that runs the disk out would fail mid-write anyway,
 * and the margin keeps room to seal and journal what was written.
 */
export class DiskWatchdog {
  readonly #o: DiskWatchdogOptions;
  readonly #measure: (path: string) => Promise<number>;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #belowFloor = false;

  constructor(o: DiskWatchdogOptions) {
    this.#o = o;
    this.#measure = o.freeBytes ?? freeBytes;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    // Never the reason the process stays up.
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One measurement and its consequences; start() calls it every intervalMs. */
  async check(): Promise<void> {
    if (this.#running) return; // a slow file system (a hung NFS mount) must not pile up calls
    this.#running = true;
    try {
      const { spoolDir, minFreeBytes, recorder, logger } = this.#o;
      let free: number;
      try {
        free = await this.#measure(spoolDir);
      } catch (err) {
        logger.error({ reason: errorMessage(err) }, 'cannot measure free space on the recording spool');
        return;
      }
      const half = minFreeBytes / 2;
      if (free < half) {
        const active = [...recorder.active];
        logger.error(
          { free_bytes: free, min_free_bytes: minFreeBytes, sessions: active.length },
          'free space on the recording spool is under half the floor; ending recorded sessions',
        );
        const err = new RecgwError(
          'RECGW_ERR_DISK_FLOOR',
          `only ${formatBytes(free)} free on the recording spool's disk (${spoolDir}), under half of RECORDING_MIN_FREE_BYTES (${formatBytes(minFreeBytes)}); the session was ended so it is never relayed unrecorded`,
          { guacStatus: GuacStatus.SERVER_ERROR },
        );
        for (const rec of active) rec.fail(err);
      } else if (free < minFreeBytes) {
        if (!this.#belowFloor) {
          logger.warn({ free_bytes: free, min_free_bytes: minFreeBytes }, 'free space on the recording spool is under the floor; new recorded sessions are refused');
        }
      }
      this.#belowFloor = free < minFreeBytes;
    } finally {
      this.#running = false;
    }
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 * 1024) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${n} bytes`;
}
