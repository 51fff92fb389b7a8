import { monitorEventLoopDelay } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import { MetricName, type Logger } from './logger.js';
import type { MetricSources } from './metrics.js';

/** The metrics' sources, and the recordings running now. */
export interface StatusSources extends MetricSources {
  activeRecordings(): number;
}

/** The event-loop monitor's tick: each sample is the time between two ticks, so a free loop gives ~10 ms. */
const LOOP_TICK_MS = 10;

/** Segment states that still wait for a stage (everything but recording, uploaded, expired). */
const WAITING = ['sealed', 'encoding', 'encoded', 'uploading', 'failed'];

/**
 * Logs the gateway's resources as one line with metric_name `scaling.status.resources`, at
 * start and then every interval: for operators who read logs rather than Prometheus, and for
 * scaling decisions (one more gateway, a bigger spool, more encode slots). Besides load and
 * spare room it reports how long the event loop was held up since the last line, which is the
 * delay every user's keystrokes and screen updates met in the relay.
 */
export class StatusReporter {
  readonly #sources: StatusSources;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #loopDelay = monitorEventLoopDelay({ resolution: LOOP_TICK_MS });
  #timer: NodeJS.Timeout | undefined;

  constructor(sources: StatusSources, logger: Logger, intervalMs: number) {
    this.#sources = sources;
    this.#log = logger;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#timer) return;
    this.#loopDelay.enable();
    void this.report();
    this.#timer = setInterval(() => void this.report(), this.#intervalMs);
    this.#timer.unref(); // never the reason the process stays up
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#loopDelay.disable();
  }

  /** Logs one status line now and returns its fields; a figure that cannot be read is null. */
  async report(): Promise<Record<string, number | null>> {
    const s = this.#sources;
    const sessions = s.activeSessions();
    const recordings = s.activeRecordings();
    const [free, backlog] = await Promise.all([
      s.spoolFreeBytes().catch((err: unknown) => this.#unread('spool free space', err)),
      s.backlog().catch((err: unknown) => this.#unread('backlog', err)),
    ]);
    const memory = process.memoryUsage();
    const h = this.#loopDelay;
    // Samples are tick-to-tick times in ns: what exceeds the tick is how long the loop was held up.
    const ms = (ns: number): number => Math.max(0, Math.round((ns / 1e6 - LOOP_TICK_MS) * 100) / 100);
    const fields: Record<string, number | null> = {
      sessions_active: sessions,
      recordings_active: recordings,
      spool_free_bytes: free,
      segments_waiting: backlog ? WAITING.reduce((n, state) => n + (backlog.segments_by_state[state] ?? 0), 0) : null,
      bytes_waiting_encode: backlog?.bytes_waiting_encode ?? null,
      bytes_waiting_upload: backlog?.bytes_waiting_upload ?? null,
      oldest_waiting_age_seconds: backlog?.oldest_waiting_age_seconds ?? null,
      rss_bytes: memory.rss,
      heap_used_bytes: memory.heapUsed,
      event_loop_delay_p99_ms: h.count > 0 ? ms(h.percentile(99)) : null,
      event_loop_delay_max_ms: h.count > 0 ? ms(h.max) : null,
    };
    h.reset();
    this.#log.info({ metric_name: MetricName.scalingStatus, ...fields }, 'resource status');
    return fields;
  }

  #unread(what: string, err: unknown): null {
    this.#log.warn({ err: errorMessage(err) }, `resource status: cannot read the ${what}`);
    return null;
  }
}
