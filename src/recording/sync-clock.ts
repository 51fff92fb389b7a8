/**
 * Gives client input (mouse moves, keys) a timestamp on guacd's `sync` clock, the clock every
 * player of a recording runs on.
 *
 * guacd's sync timestamps are milliseconds since its host booted, not wall-clock time, and
 * repeat at times, so an input event is stamped with the last sync seen plus the wall time
 * elapsed since that sync arrived, and never earlier than a stamp already given: guacenc refuses
 * a timestamp that goes backwards.
 */
export class SyncClock {
  readonly #now: () => number;
  #lastSync: number | undefined;
  #lastSyncAt = 0;
  #lastStamp = Number.NEGATIVE_INFINITY;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** True once a sync has been seen; before that there is nothing to time input by. */
  get started(): boolean {
    return this.#lastSync !== undefined;
  }

  /**
   * Records a server `sync` timestamp (ms) that arrived at `arrivedAt` (the clock given to the
   * constructor; read now when not given). Syncs from one socket read share one arrival time.
   */
  sync(timestamp: number, arrivedAt?: number): void {
    if (!Number.isFinite(timestamp)) return;
    this.#lastSync = timestamp;
    this.#lastSyncAt = arrivedAt ?? this.#now();
  }

  /** Timestamp for an input event happening now; undefined before the first sync. */
  stamp(): number | undefined {
    if (this.#lastSync === undefined) return undefined;
    const t = Math.max(this.#lastSync + Math.floor(this.#now() - this.#lastSyncAt), this.#lastStamp);
    this.#lastStamp = t;
    return t;
  }
}
