import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { guacamoleCommonJsPath } from '../../src/demo/guacamole-common-js.js';

// The real browser side of the end-to-end tests: Debian's Chromium (never a downloaded one)
// driven by playwright-core, opening a page that runs guacamole-common-js 1.5.0 itself.

export const CHROMIUM_PATH = '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One Chromium with a fresh profile; close() removes the profile. */
export class Chromium {
  private constructor(
    readonly context: BrowserContext,
    readonly profileDir: string,
  ) {}

  static async launch(): Promise<Chromium> {
    const profileDir = await mkdtemp(join(tmpdir(), 'recgw-chromium-'));
    // launchPersistentContext passes --user-data-dir itself: a fresh one per launch.
    const context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 820 },
    });
    return new Chromium(context, profileDir);
  }

  async newPage(): Promise<Page> {
    const page = await this.context.newPage();
    return page;
  }

  async close(): Promise<void> {
    await this.context.close();
    await rm(this.profileDir, { recursive: true, force: true });
  }
}

/**
 * The instrumented page. It loads guacamole-common-js as the ES module it ships as and exposes
 * `window.recgwTest`: a live session through the real Guacamole.WebSocketTunnel and
 * Guacamole.Client, and playback through Guacamole.SessionRecording. Everything the tests
 * assert on is read back from the page as plain JSON.
 */
const PAGE_SCRIPT = String.raw`
import Guacamole from '/guacamole-common.js';

async function digest(canvas) {
  if (canvas.width === 0 || canvas.height === 0) return 'empty';
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const hash = await crypto.subtle.digest('SHA-256', data);
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('');
}

function variance(canvas) {
  if (canvas.width === 0 || canvas.height === 0) return 0;
  const ctx = canvas.getContext('2d');
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let n = 0, sum = 0, sumSq = 0;
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] * 0.299 + data[i + 1] * 0.587 + data[i + 2] * 0.114;
    sum += v; sumSq += v * v; n++;
  }
  if (n === 0) return 0;
  const mean = sum / n;
  return sumSq / n - mean * mean;
}

const live = { states: [], errors: [], tunnelErrors: [], syncs: 0, uuid: null, mouseSentAtSyncs: null, client: null, tunnel: null };

window.recgwTest = {
  startLive(wsUrl, token, mouse) {
    const tunnel = new Guacamole.WebSocketTunnel(wsUrl);
    const client = new Guacamole.Client(tunnel);
    live.client = client;
    live.tunnel = tunnel;
    tunnel.onerror = (status) => live.tunnelErrors.push({ code: status.code, message: status.message });
    tunnel.onuuid = (uuid) => { live.uuid = uuid; };
    client.onerror = (status) => live.errors.push({ code: status.code, message: status.message });
    client.onsync = () => { live.syncs++; };
    client.onstatechange = (state) => live.states.push(state);
    // The tunnel opens on its first message, the id line, which comes before any frame. A real
    // user's first mouse move can come this early; the gateway must hold it until guacd's first
    // sync. (Guacamole.Client 1.5.0 leaves tunnel.onstatechange to its user.)
    tunnel.onstatechange = (state) => {
      if (state === Guacamole.Tunnel.State.OPEN && mouse && live.mouseSentAtSyncs === null) {
        live.mouseSentAtSyncs = live.syncs;
        client.sendMouseState(new Guacamole.Mouse.State({ x: mouse.x, y: mouse.y, left: false, middle: false, right: false, up: false, down: false }));
      }
    };
    const el = client.getDisplay().getElement();
    document.getElementById('display').appendChild(el);
    client.connect('token=' + encodeURIComponent(token));
  },
  liveStatus() {
    const d = live.client.getDisplay();
    return {
      states: live.states.slice(),
      errors: live.errors.slice(),
      tunnelErrors: live.tunnelErrors.slice(),
      syncs: live.syncs,
      uuid: live.uuid,
      tunnelUuid: live.tunnel.uuid,
      mouseSentAtSyncs: live.mouseSentAtSyncs,
      width: d.getWidth(),
      height: d.getHeight(),
    };
  },
  liveVariance() {
    return new Promise((resolve) => {
      // flush() queues a frame after every frame received so far: its callback runs once all of
      // them are drawn (image decodes included), in a focused tab one frame per animation frame.
      live.client.getDisplay().flush(() => resolve(variance(live.client.getDisplay().flatten())));
    });
  },
  disconnect() { live.client.disconnect(); },

  // source 'http': the recording streamed by Guacamole.StaticHTTPTunnel (how Guacamole's own
  // player loads recordings); 'blob': the whole file as a Blob.
  async playRecording(url, source, timeoutMs = 30000) {
    const blob = source === 'blob' ? await (await fetch(url)).blob() : null;
    return new Promise((resolve, reject) => {
      const recording = new Guacamole.SessionRecording(blob ?? new Guacamole.StaticHTTPTunnel(url));
      const errors = [];
      recording.onerror = (message) => errors.push(String(message));
      const display = recording.getDisplay();
      document.getElementById('display').appendChild(display.getElement());
      const timer = setTimeout(() => reject(new Error('recording did not load and play to its end within ' + timeoutMs / 1000 + ' s; errors: ' + errors.join('; '))), timeoutMs);
      recording.onload = () => {
        const duration = recording.getDuration();
        recording.seek(duration, () => {
          display.flush(async () => {
            clearTimeout(timer);
            const canvas = display.flatten();
            resolve({ duration, errors, width: display.getWidth(), height: display.getHeight(), variance: variance(canvas), digest: await digest(canvas) });
          });
        });
      };
      recording.connect();
    });
  },
};
window.recgwReady = true;
`;

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>recgw browser test</title></head>
<body style="margin:0;background:#222"><div id="display"></div>
<script type="module" src="/page.js"></script></body></html>`;

/** A tiny HTTP server for the page and the library (the page must not be a file:// URL for modules). */
export class PageServer {
  readonly #files = new Map<string, Buffer>();
  private constructor(readonly server: Server) {}

  /** Serves bytes at a path (recordings for the player); returns the URL. */
  addFile(path: string, body: Buffer): string {
    this.#files.set(path, body);
    return new URL(path, this.url).href;
  }

  static async start(): Promise<PageServer> {
    const lib = await readFile(guacamoleCommonJsPath());
    let files: Map<string, Buffer> | undefined;
    const server = createServer((req, res) => {
      const type = (t: string) => ({ 'content-type': t, 'cache-control': 'no-store' });
      if (req.url === '/') res.writeHead(200, type('text/html; charset=utf-8')).end(PAGE_HTML);
      else if (req.url === '/page.js') res.writeHead(200, type('text/javascript; charset=utf-8')).end(PAGE_SCRIPT);
      else if (req.url === '/guacamole-common.js') res.writeHead(200, type('text/javascript; charset=utf-8')).end(lib);
      else if (files?.has(req.url ?? '')) res.writeHead(200, type('application/octet-stream')).end(files.get(req.url ?? ''));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pages = new PageServer(server);
    files = pages.#files;
    return pages;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Opens the instrumented page and waits until guacamole-common-js has loaded in it. */
export async function openTestPage(browser: Chromium, pages: PageServer): Promise<Page> {
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(pages.url);
  await page.waitForFunction('window.recgwReady === true', undefined, { timeout: 15_000 }).catch((err: unknown) => {
    throw new Error(`test page did not load: ${pageErrors.join('; ') || String(err)}`);
  });
  return page;
}

export interface LiveStatus {
  states: number[];
  errors: Array<{ code: number; message: string }>;
  tunnelErrors: Array<{ code: number; message: string }>;
  syncs: number;
  uuid: string | null;
  tunnelUuid: string | null;
  mouseSentAtSyncs: number | null;
  width: number;
  height: number;
}

export interface PlaybackResult {
  duration: number;
  errors: string[];
  width: number;
  height: number;
  variance: number;
  /** SHA-256 of the flattened display's RGBA pixels at the end. */
  digest: string;
}

/** Guacamole.Client.State.CONNECTED */
export const CLIENT_CONNECTED = 3;
