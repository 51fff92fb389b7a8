import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestLoggers } from '../../src/observability/logger.js';
import { GatewayMetrics } from '../../src/observability/metrics.js';
import { createStatusRoutes, type ReadinessCheck } from '../../src/observability/status-routes.js';
import { LogCapture } from '../support/gateway-harness.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function serve(opts: { checks?: ReadinessCheck[]; keys?: Array<{ name: string; secret: string; scopes: Array<'SESSIONS_VIEW' | 'SESSION_RECORDINGS_VIEW'> }> }) {
  const metrics = new GatewayMetrics();
  const backlog = { segments_by_state: { sealed: 2, uploaded: 5 }, bytes_waiting_encode: 0, bytes_waiting_upload: 1234, oldest_waiting_age_seconds: 42, upload_failures: 1 };
  metrics.setSources({ activeSessions: () => 3, backlog: async () => backlog, spoolFreeBytes: async () => 10_000 });
  const logs = new LogCapture();
  const loggers = createTestLoggers(logs, 'info');
  // A line with a metric_name counts in recgw_events_total when the loggers are wired to it.
  metrics.countEvent('provision.create');
  server = createServer(
    createStatusRoutes({
      metrics,
      backlog: async () => backlog,
      readiness: async () => opts.checks ?? [{ name: 'guacd', ok: true }],
      adminApiKeys: opts.keys ?? [],
      logger: loggers.web,
    }),
  );
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, logs };
}

describe('status routes', () => {
  it('serves health, readiness and Prometheus metrics read from their owners', async () => {
    const { base, logs } = await serve({});
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics?token=SECRET-TOKEN`)).text();
    expect(text).toContain('recgw_sessions_active 3');
    expect(text).toContain('recgw_segments{state="sealed"} 2');
    expect(text).toContain('recgw_upload_backlog_bytes 1234');
    expect(text).toContain('recgw_backlog_oldest_seconds 42');
    expect(text).toContain('recgw_events_total{metric_name="provision.create"} 1');
    expect(text).toContain('recgw_spool_free_bytes 10000');
    expect(text).toContain('recgw_process_');
    // The access log names the path, never the query (it may carry a token).
    await new Promise((r) => setTimeout(r, 20));
    expect(logs.text).toContain('"path":"/metrics"');
    expect(logs.text).not.toContain('SECRET-TOKEN');
    expect(logs.text).toContain('"log_type":"web"');
  });

  it('answers 503 with the failing check when not ready', async () => {
    const { base } = await serve({ checks: [{ name: 'guacd', ok: false, detail: 'ECONNREFUSED' }, { name: 'spool_writable', ok: true }] });
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { checks: ReadinessCheck[] };
    expect(body.checks[0]).toEqual({ name: 'guacd', ok: false, detail: 'ECONNREFUSED' });
  });

  it('serves the backlog openly without admin keys, and only to a key with SESSIONS_VIEW when keys are set', async () => {
    const open = await serve({});
    expect(((await (await fetch(`${open.base}/api/backlog`)).json()) as { bytes_waiting_upload: number }).bytes_waiting_upload).toBe(1234);
    await new Promise<void>((r) => server!.close(() => r()));
    const locked = await serve({
      keys: [
        { name: 'ops', secret: 'ops-secret', scopes: ['SESSIONS_VIEW'] },
        { name: 'aud', secret: 'aud-secret', scopes: ['SESSION_RECORDINGS_VIEW'] },
      ],
    });
    expect((await fetch(`${locked.base}/api/backlog`)).status).toBe(401);
    expect((await fetch(`${locked.base}/api/backlog`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${locked.base}/api/backlog`, { headers: { authorization: 'Bearer aud-secret' } })).status).toBe(401);
    expect((await fetch(`${locked.base}/api/backlog`, { headers: { authorization: 'Bearer ops-secret' } })).status).toBe(200);
  });

  it('answers unknown paths and methods clearly', async () => {
    const { base } = await serve({});
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
  });
});
