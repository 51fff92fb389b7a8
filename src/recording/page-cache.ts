import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { DirectWriteSupport } from './direct-write.js';

/**
 * Page-cache advice for write-once recording files, from native/page-cache (Linux only).
 *
 * Why: a recording is written once and read back once or twice soon after (hash, encode). Left
 * to the kernel, every recorded byte takes a page-cache page until memory pressure evicts it, so
 * recordings push out pages that matter; and on a VM that hands free memory back to its host,
 * each of those pages is first faulted in from the host, which cost the relay more than all the
 * rest of recording (bench/relay.ts prints both). Starting writeback of what was just written and
 * dropping it once clean keeps a file's footprint to a few MiB of pages that are reused.
 *
 * Optional: when the addon was not built (no compiler at install time, not Linux) `pageCache` is
 * undefined, files are written as plain buffered files, and `pageCacheStatus` says why.
 */
export interface PageCacheAdvice {
  /**
   * Starts writeback of [writeOffset, +writeLength) and drops the clean pages of
   * [dropOffset, +dropLength) from the cache; dirty pages stay, so nothing is ever lost. Runs on
   * libuv's pool. Returns undefined, doing nothing, while another call is still running: both
   * system calls can wait on the disk, and one of the pool's four threads is all this may take
   * from the segment writes that share it.
   */
  flushBehind(fd: number, writeOffset: number, writeLength: number, dropOffset: number, dropLength: number): Promise<void> | undefined;
  /** The addon's path, for a worker thread to load and call dropCachedSync(fd, offset, length). */
  readonly addonPath: string;
}

interface Addon {
  flushBehind(
    fd: number,
    writeOffset: number,
    writeLength: number,
    dropOffset: number,
    dropLength: number,
    done: (err: NodeJS.ErrnoException | null) => void,
  ): void;
  dropCachedSync(fd: number, offset: number, length: number): number;
  /** Absent from an addon built before it was added (a stale build): no direct writes then. */
  addressPhase?: (bytes: Uint8Array) => number;
}

/** The same from src/recording (vitest) and dist/recording. */
const ADDON_PATH = fileURLToPath(new URL('../../native/page-cache/build/Release/recgw_page_cache.node', import.meta.url));

function load(): { advice?: PageCacheAdvice; direct?: DirectWriteSupport; status: string } {
  if (process.platform !== 'linux') return { status: 'not used (Linux only)' };
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { status: e.code === 'MODULE_NOT_FOUND' ? 'not built (npm run build:native)' : `not loaded (${e.message})` };
  }
  let running = false;
  const addressPhase = addon.addressPhase;
  return {
    status: 'on',
    ...(typeof addressPhase === 'function' ? { direct: { addressPhase } } : {}),
    advice: {
      addonPath: ADDON_PATH,
      flushBehind(fd, writeOffset, writeLength, dropOffset, dropLength) {
        if (running) return undefined;
        running = true;
        return new Promise<void>((resolve, reject) => {
          try {
            addon.flushBehind(fd, writeOffset, writeLength, dropOffset, dropLength, (err) => {
              running = false;
              if (err) reject(err);
              else resolve();
            });
          } catch (err) {
            // Refused before it was queued (bad arguments): no callback will come to free the slot.
            running = false;
            reject(err as Error);
          }
        });
      },
    },
  };
}

const loaded = load();
/** The advice, or undefined when native/page-cache is not available here. */
export const pageCache: PageCacheAdvice | undefined = loaded.advice;
/** What direct writes need from the addon (direct-write.ts), or undefined without it. */
export const directWrites: DirectWriteSupport | undefined = loaded.direct;
/** 'on', or why not, for the start-up log. */
export const pageCacheStatus: string = loaded.status;
