import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AdminApiKey, AdminScope } from '../config/config.js';
import type { GatewayMetrics } from './metrics.js';
import type { Logger } from './logger.js';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface StatusRoutesOptions {
  metrics: GatewayMetrics;
  /** The backlog figures (src/pipeline/backlog.ts), as served at /api/backlog. */
  backlog: () => Promise<unknown>;
  /** guacd reachable, spool writable, disk above the floor. */
  readiness: () => Promise<ReadinessCheck[]>;
  adminApiKeys: readonly AdminApiKey[];
  logger: Logger;
}

/**
 * The gateway's plain-HTTP routes, served on the same port as the WebSocket: /healthz (alive),
 * /readyz, /metrics (Prometheus text) and /api/backlog (JSON). When ADMIN_API_KEYS is set,
 * /api/* needs `Authorization: Bearer <secret>` of a key with SESSIONS_VIEW.
 */
export function createStatusRoutes(opts: StatusRoutesOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.on('finish', () => {
      opts.logger.info(
        {
          method: req.method,
          path: url.pathname, // never the query: it may carry a token
          status: res.statusCode,
          duration_ms: Number(process.hrtime.bigint() - started) / 1e6,
          request_ip: req.socket.remoteAddress,
          user_agent: req.headers['user-agent'],
        },
        'http request',
      );
    });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'only GET is served here' });
      return;
    }
    void route(url.pathname, req, res, opts).catch((err: unknown) => {
      opts.logger.error({ err, path: url.pathname }, 'status route failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error; see the gateway log' });
      else res.end();
    });
  };
}

async function route(path: string, req: IncomingMessage, res: ServerResponse, opts: StatusRoutesOptions): Promise<void> {
  switch (path) {
    case '/healthz':
      send(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      const checks = await opts.readiness();
      const ok = checks.every((c) => c.ok);
      send(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready', checks });
      return;
    }
    case '/metrics': {
      const { contentType, body } = await opts.metrics.render();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return;
    }
    case '/api/backlog': {
      if (!authorised(req, opts.adminApiKeys, 'SESSIONS_VIEW')) {
        send(res, 401, { error: 'an admin API key with SESSIONS_VIEW is required (Authorization: Bearer <secret>)' });
        return;
      }
      send(res, 200, await opts.backlog());
      return;
    }
    default:
      send(res, 404, { error: 'not found; this port serves the Guacamole WebSocket, /healthz, /readyz, /metrics and /api/backlog' });
  }
}

function authorised(req: IncomingMessage, keys: readonly AdminApiKey[], scope: AdminScope): boolean {
  if (keys.length === 0) return true;
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) return false;
  const given = Buffer.from(m[1]!.trim());
  return keys.some((k) => {
    const secret = Buffer.from(k.secret);
    return secret.length === given.length && timingSafeEqual(secret, given) && k.scopes.includes(scope);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}
