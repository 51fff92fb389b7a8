import { describe, expect, it } from 'vitest';
import type { Backlog } from '../../src/observability/metrics.js';
import { StatusReporter, type StatusSources } from '../../src/observability/status-report.js';
import { captureLogs } from '../support/log-capture.js';

const backlog: Backlog = {
  segments_by_state: { recording: 2, sealed: 3, encoding: 1, encoded: 4, uploading: 1, uploaded: 40, failed: 2, expired: 5 },
  bytes_waiting_encode: 123_456,
  bytes_waiting_upload: 789,
  oldest_waiting_age_seconds: 42,
  upload_failures: 0,
};

function sources(over: Partial<StatusSources> = {}): StatusSources {
  return {
    activeSessions: () => 7,
    activeRecordings: () => 6,
    backlog: async () => backlog,
    spoolFreeBytes: async () => 5_000_000_000,
    ...over,
  };
}

describe('StatusReporter', () => {
  it('logs load, spare room, backlog, memory and event-loop delay as scaling.status.resources', async () => {
    const logs = captureLogs();
    const reporter = new StatusReporter(sources(), logs.logger, 60_000);
    reporter.start(); // one line at once
    await new Promise((r) => setTimeout(r, 50));
    const busyUntil = Date.now() + 300; // the event loop held up for 300 ms
    while (Date.now() < busyUntil);
    await new Promise((r) => setTimeout(r, 50));
    const fields = await reporter.report();
    reporter.stop();
    const lines = logs.withMetric('scaling.status.resources');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 'info',
      msg: 'resource status',
      sessions_active: 7,
      recordings_active: 6,
      spool_free_bytes: 5_000_000_000,
      segments_waiting: 11, // sealed, encoding, encoded, uploading, failed
      bytes_waiting_encode: 123_456,
      bytes_waiting_upload: 789,
      oldest_waiting_age_seconds: 42,
    });
    expect(fields.rss_bytes).toBeGreaterThan(10_000_000);
    expect(fields.heap_used_bytes).toBeGreaterThan(1_000_000);
    expect(fields.event_loop_delay_max_ms).toBeGreaterThanOrEqual(280);
    expect(fields.event_loop_delay_max_ms).toBeLessThan(10_000);
    // Each line covers the time since the one before: the block is not counted twice.
    await new Promise((r) => setTimeout(r, 60));
    const again = await reporter.report();
    expect(again.event_loop_delay_max_ms ?? 0).toBeLessThan(250);
  });

  it('says null for a figure it cannot read, warns why, and still logs the line', async () => {
    const logs = captureLogs();
    const reporter = new StatusReporter(
      sources({
        backlog: () => Promise.reject(new Error('journal unreadable')),
        spoolFreeBytes: () => Promise.reject(new Error('df failed')),
      }),
      logs.logger,
      60_000,
    );
    const fields = await reporter.report();
    expect(fields).toMatchObject({ spool_free_bytes: null, segments_waiting: null, bytes_waiting_upload: null, sessions_active: 7 });
    expect(logs.withMetric('scaling.status.resources')).toHaveLength(1);
    const warnings = logs.lines.filter((l) => l.level === 'warn').map((l) => `${String(l.msg)} ${String(l.err)}`);
    expect(warnings).toEqual(['resource status: cannot read the spool free space df failed', 'resource status: cannot read the backlog journal unreadable']);
  });

  it('logs every interval until stopped', async () => {
    const logs = captureLogs();
    const reporter = new StatusReporter(sources(), logs.logger, 30);
    reporter.start();
    await new Promise((r) => setTimeout(r, 110));
    reporter.stop();
    const n = logs.withMetric('scaling.status.resources').length;
    expect(n).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 80));
    expect(logs.withMetric('scaling.status.resources').length).toBe(n);
  });
});
