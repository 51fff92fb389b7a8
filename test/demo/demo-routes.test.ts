import { describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { withDemoRoutes } from '../../src/demo/demo-routes.js';
import { guacamoleCommonJsPath } from '../../src/demo/guacamole-common-js.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import { LogCapture } from '../support/gateway-harness.js';

async function serve(): Promise<{ server: Server; base: string; logs: LogCapture; fallbackHits: string[] }> {
  const logs = new LogCapture();
  const fallbackHits: string[] = [];
  const handler = withDemoRoutes((req, res) => {
    fallbackHits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  }, createTestLoggers(logs).web);
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, logs, fallbackHits };
}

describe('withDemoRoutes', () => {
  it('serves the page and the library, passes everything else through, never logs the token', async () => {
    const { server, base, logs, fallbackHits } = await serve();
    try {
      const page = await fetch(`${base}/demo?token=SECRET-TOKEN-VALUE`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('referrer-policy')).toBe('no-referrer');
      const html = await page.text();
      expect(html).toContain("import Guacamole from '/demo/guacamole-common.js'");
      expect(html).toContain('new Guacamole.WebSocketTunnel(');

      const lib = await fetch(`${base}/demo/guacamole-common.js`);
      expect(lib.headers.get('content-type')).toMatch(/^text\/javascript/);
      const body = Buffer.from(await lib.arrayBuffer());
      expect(body.equals(await readFile(guacamoleCommonJsPath()))).toBe(true);
      expect(body.subarray(-200).toString()).toContain('export default Guacamole');

      const health = await fetch(`${base}/healthz`);
      expect(await health.json()).toEqual({ status: 'ok' });
      expect((await fetch(`${base}/demonstration`)).status).toBe(200);
      expect(fallbackHits).toEqual(['/healthz', '/demonstration']);

      expect((await fetch(`${base}/demo`, { method: 'POST' })).status).toBe(405);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const demoLines = logs.records().filter((r) => r.path === '/demo');
      expect(demoLines.length).toBe(2);
      expect(logs.text).not.toContain('SECRET-TOKEN-VALUE');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
