import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The backlog figures the gauges and the status line show (a subset of src/pipeline/backlog.ts's Backlog). */
export interface Backlog {
  segments_by_state: Record<string, number>;
  bytes_waiting_encode: number;
  bytes_waiting_upload: number;
  oldest_waiting_age_seconds: number | null;
  upload_failures: number;
}

/** What the metrics read at scrape time; each source is handed in by whoever owns the figure. */
export interface MetricSources {
  activeSessions(): number;
  backlog(): Promise<Backlog>;
  spoolFreeBytes(): Promise<number>;
}

/**
 * Prometheus registry of the gateway. Event counts come from the log lines that carry a
 * metric_name (see createLoggers' onMetric), so every stage that logs an important event is
 * counted without knowing about Prometheus; gauges are read from their owners at scrape time.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #events: Counter<'metric_name'>;
  #sources: MetricSources | undefined;
  #backlogRead: { at: number; value: Promise<Backlog | undefined> } | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'recgw_' });
    this.#events = new Counter({
      name: 'recgw_events_total',
      help: 'Important events by the metric_name of their log line',
      labelNames: ['metric_name'],
      registers: [this.registry],
    });
    const self = this;
    new Gauge({
      name: 'recgw_sessions_active',
      help: 'Client sessions being relayed now',
      registers: [this.registry],
      collect() {
        this.set(self.#sources?.activeSessions() ?? 0);
      },
    });
    // prom-client collects the metrics of one scrape concurrently; the backlog gauges share one
    // read of the spool per scrape instead of walking every journal five times.
    const backlogGauge = (name: string, help: string, read: (b: Backlog) => number, labelled = false) =>
      new Gauge({
        name,
        help,
        labelNames: labelled ? ['state'] : [],
        registers: [this.registry],
        async collect() {
          const b = await self.#backlogOnce();
          if (!b) return;
          if (labelled) {
            this.reset();
            for (const [state, n] of Object.entries(b.segments_by_state)) this.set({ state }, n);
          } else {
            this.set(read(b));
          }
        },
      });
    backlogGauge('recgw_segments', 'Recorded segments in the spool by state', () => 0, true);
    backlogGauge('recgw_upload_backlog_bytes', 'Bytes of clips waiting to be uploaded', (b) => b.bytes_waiting_upload);
    backlogGauge('recgw_backlog_oldest_seconds', 'Age of the oldest segment not yet uploaded (0 when none)', (b) => b.oldest_waiting_age_seconds ?? 0);
    backlogGauge('recgw_upload_failures', 'Segments whose last upload attempt failed', (b) => b.upload_failures);
    new Gauge({
      name: 'recgw_backlog_scrape_ok',
      help: '1 when the spool backlog could be read at this scrape',
      registers: [this.registry],
      async collect() {
        this.set((await self.#backlogOnce()) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'recgw_spool_free_bytes',
      help: 'Free bytes on the spool filesystem',
      registers: [this.registry],
      async collect() {
        if (!self.#sources) return;
        try {
          this.set(await self.#sources.spoolFreeBytes());
        } catch {
          // leave the last value: a failed statfs is reported by /readyz
        }
      },
    });
  }

  /** The backlog, read at most once per scrape (a read older than 500 ms is not reused). */
  #backlogOnce(): Promise<Backlog | undefined> {
    const now = Date.now();
    if (!this.#backlogRead || now - this.#backlogRead.at > 500) {
      const sources = this.#sources;
      this.#backlogRead = { at: now, value: sources ? sources.backlog().catch(() => undefined) : Promise.resolve(undefined) };
    }
    return this.#backlogRead.value;
  }

  setSources(sources: MetricSources): void {
    this.#sources = sources;
  }

  countEvent(metricName: string): void {
    this.#events.inc({ metric_name: metricName });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
