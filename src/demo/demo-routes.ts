import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { DEMO_PAGE_HTML } from './demo-page.js';
import { guacamoleCommonJsPath } from './guacamole-common-js.js';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Wraps the gateway's HTTP handler (the status routes) so /demo serves the demo page and
 * /demo/guacamole-common.js the client library; every other request goes to `fallback`
 * untouched. Only `recgw demo` installs it: `recgw serve` never serves pages.
 */
export function withDemoRoutes(fallback: RequestHandler, logger: Logger): RequestHandler {
  // Read once at start: 0.5 MB, served on every page load.
  const library = readFileSync(guacamoleCommonJsPath());
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/demo' && path !== '/demo/' && path !== '/demo/guacamole-common.js') {
      fallback(req, res);
      return;
    }
    // The page's address carries the token: log the path only, never the query.
    res.on('finish', () => logger.info({ method: req.method, path, status: res.statusCode, request_ip: req.socket.remoteAddress }, 'http request'));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const [type, body] = path.endsWith('.js') ? ['text/javascript; charset=utf-8', library] : ['text/html; charset=utf-8', DEMO_PAGE_HTML];
    res.writeHead(200, {
      'content-type': type,
      'cache-control': 'no-store',
      // The token is in the page's URL: never send it on as a Referer.
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
