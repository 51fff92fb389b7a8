import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** What the metrics read at scrape time; each source is handed in by whoever owns the figure. */
export interface MetricSources {
  activeSessions(): number;
  backlog(): Promise<{
    segments_by_state: Record<string, number>;
    bytes_waiting_upload: number;
    oldest_waiting_age_seconds: number | null;
    upload_failures: number;
  }>;
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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'recgw_process_' });
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
    const segments = new Gauge({
      name: 'recgw_segments',
      help: 'Recorded segments in the spool by state',
      labelNames: ['state'],
      registers: [this.registry],
    });
    const waitingBytes = new Gauge({
      name: 'recgw_upload_backlog_bytes',
      help: 'Bytes of clips waiting to be uploaded',
      registers: [this.registry],
    });
    const oldest = new Gauge({
      name: 'recgw_backlog_oldest_seconds',
      help: 'Age of the oldest segment not yet uploaded (0 when none)',
      registers: [this.registry],
    });
    const failures = new Gauge({
      name: 'recgw_upload_failures',
      help: 'Segments whose last upload or encode attempt failed',
      registers: [this.registry],
    });
    // One collect reads the backlog once for all four gauges.
    new Gauge({
      name: 'recgw_backlog_scrape_ok',
      help: '1 when the spool backlog could be read at this scrape',
      registers: [this.registry],
      async collect() {
        if (!self.#sources) return;
        try {
          const b = await self.#sources.backlog();
          segments.reset();
          for (const [state, n] of Object.entries(b.segments_by_state)) segments.set({ state }, n);
          waitingBytes.set(b.bytes_waiting_upload);
          oldest.set(b.oldest_waiting_age_seconds ?? 0);
          failures.set(b.upload_failures);
          this.set(1);
        } catch {
          this.set(0);
        }
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
