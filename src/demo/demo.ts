import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { encryptToken, type ConnectionType } from '../gateway/token.js';
import type { Loggers } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { startGateway, type RunningGateway } from '../cli/serve.js';
import { PACKAGE_ROOT } from '../runtime-paths.js';
import { withDemoRoutes, type RequestHandler } from './demo-routes.js';
import type { FakeGuacd } from './replay-guacd.js';

/** The real guacd recordings shipped in fixtures/recordings, by protocol. */
export const DEMO_RECORDINGS: Record<'vnc' | 'ssh' | 'rdp', string> = {
  vnc: 'vnc-desktop.gz',
  ssh: 'ssh-terminal.gz',
  rdp: 'rdp-desktop.gz',
};

/** Path of a shipped recording, from the package root (so it resolves from src/ and dist/ alike). */
export function demoRecordingPath(protocol: keyof typeof DEMO_RECORDINGS): string {
  return join(PACKAGE_ROOT, 'fixtures', 'recordings', DEMO_RECORDINGS[protocol]);
}

export interface RunningDemo {
  gateway: RunningGateway;
  /** The page to open: http://host:port/demo?token=… */
  url: string;
  /** Stops the gateway (sealing open segments) and the guacd stand-in. */
  shutdown(reason: string): Promise<void>;
}

export interface DemoOptions {
  /** The gateway configuration; GUACD_HOST/PORT must already point at `guacd`. */
  config: Config;
  loggers: Loggers;
  metrics: GatewayMetrics;
  env: NodeJS.ProcessEnv;
  /** The guacd stand-in replaying a recording. */
  guacd: FakeGuacd;
  /** The connection type the token asks for: the recording's protocol. */
  protocol: ConnectionType;
  /** Token lifetime; the printed URL stops working after it. */
  tokenTtlMs?: number;
}

/**
 * The real gateway (startGateway, the same one `recgw serve` runs) in front of a guacd stand-in,
 * with the demo page added on its port. Each page load is a new recorded session (the token
 * carries no session id, so the gateway gives each connection its own).
 */
export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const gateway = await startGateway(opts.config, opts.loggers, opts.metrics, opts.env, 'demo');
  try {
    // Wrap, don't replace: the status routes (/healthz, /metrics, …) keep answering.
    const handlers = gateway.server.listeners('request') as RequestHandler[];
    const statusRoutes: RequestHandler = (req, res) => {
      for (const h of handlers) h(req, res);
    };
    gateway.server.removeAllListeners('request');
    gateway.server.on('request', withDemoRoutes(statusRoutes, opts.loggers.web));
  } catch (err) {
    await gateway.shutdown('demo could not start');
    throw err;
  }

  // startGateway always fills tokenKey in (TOKEN_KEY, else the development key beside the spool).
  const key = gateway.config.tokenKey!;
  const token = encryptToken(
    {
      connection: { type: opts.protocol, settings: { hostname: 'recgw-demo' } },
      session: { username: 'demo', image_friendly_name: 'recgw demo' },
      expires: Date.now() + (opts.tokenTtlMs ?? 24 * 3600_000),
    },
    key,
  );
  const host = pageHost(opts.config.gateway.host);
  const url = `http://${host}:${gateway.port}/demo?token=${encodeURIComponent(token)}`;

  let stopping: Promise<void> | undefined;
  return {
    gateway,
    url,
    shutdown(reason) {
      stopping ??= (async () => {
        await gateway.shutdown(reason);
        await opts.guacd.close();
      })();
      return stopping;
    },
  };
}

/** A host a browser can open: a wildcard listen address becomes loopback. */
function pageHost(listenHost: string): string {
  if (listenHost === '0.0.0.0' || listenHost === '') return '127.0.0.1';
  if (listenHost === '::') return '[::1]';
  return listenHost.includes(':') ? `[${listenHost}]` : listenHost;
}
