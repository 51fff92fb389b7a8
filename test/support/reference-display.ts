import { readFileSync } from 'node:fs';
import { Image, createCanvas } from '@napi-rs/canvas';
import { chromium, type Browser, type Page } from 'playwright-core';

// The reference the display model is held to: guacamole-common-js 1.5.0's own Guacamole.Client
// and Guacamole.Display, running in Debian's Chromium, fed instructions through a stand-in
// tunnel. What the page paints (screenshot of the display element, cursor included) is what a
// user of the browser client saw.

const CHROMIUM_PATH = '/usr/bin/chromium';

const GUACAMOLE_COMMON_JS = readFileSync(new URL('../../node_modules/guacamole-common-js/dist/cjs/guacamole-common.js', import.meta.url), 'utf8').replace(
  /module\.exports\s*=\s*Guacamole;\s*$/,
  'window.Guacamole = Guacamole;',
);

// Runs in the page (plain JS: the project compiles without DOM types).
const PAGE_SETUP = `
  const tunnel = new Guacamole.Tunnel();
  tunnel.sendMessage = () => {};
  tunnel.connect = () => {};
  tunnel.disconnect = () => {};
  const client = new Guacamole.Client(tunnel);
  document.body.appendChild(client.getDisplay().getElement());
  window.recgwFeed = (text) => {
    const parser = new Guacamole.Parser();
    parser.oninstruction = (op, args) => tunnel.oninstruction(op, args);
    parser.receive(text);
  };
  window.recgwFlushed = () => new Promise((resolve) => client.getDisplay().flush(resolve));
`;

interface PageGlobals {
  recgwFeed(text: string): void;
  recgwFlushed(): Promise<void>;
}

export class ReferenceDisplay {
  readonly #browser: Browser;
  readonly #page: Page;

  private constructor(browser: Browser, page: Page) {
    this.#browser = browser;
    this.#page = page;
  }

  static async open(): Promise<ReferenceDisplay> {
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
      // Black page: transparent parts of the display show black, as the model's frames do.
      await page.setContent('<html><body style="margin:0;background:#000"></body></html>');
      await page.addScriptTag({ content: GUACAMOLE_COMMON_JS });
      await page.evaluate(PAGE_SETUP);
      return new ReferenceDisplay(browser, page);
    } catch (err) {
      await browser.close();
      throw err;
    }
  }

  /** A fresh client (a new page state), for independent cases in one browser. */
  async reset(): Promise<void> {
    await this.#page.setContent('<html><body style="margin:0;background:#000"></body></html>');
    await this.#page.addScriptTag({ content: GUACAMOLE_COMMON_JS });
    await this.#page.evaluate(PAGE_SETUP);
  }

  /** Feeds complete instructions (protocol text) to the client. */
  async feed(text: string): Promise<void> {
    await this.#page.evaluate((t) => (globalThis as unknown as PageGlobals).recgwFeed(t), text);
  }

  /** Waits for the display to finish drawing (images decode asynchronously), then returns the
   *  painted top-left width × height area as RGBA. */
  async frame(width: number, height: number): Promise<Uint8ClampedArray> {
    await this.#page.evaluate(() => (globalThis as unknown as PageGlobals).recgwFlushed());
    const png = await this.#page.screenshot({ clip: { x: 0, y: 0, width, height } });
    const image = new Image();
    image.src = png;
    const canvas = createCanvas(width, height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(image, 0, 0);
    return ctx.getImageData(0, 0, width, height).data;
  }

  async close(): Promise<void> {
    await this.#browser.close();
  }
}

/** Pixels whose R, G or B differ by more than `tolerance`; both buffers RGBA of the same size. */
export function countDifferingPixels(a: Uint8Array | Uint8ClampedArray, b: Uint8Array | Uint8ClampedArray, tolerance: number): number {
  let n = 0;
  for (let p = 0; p < a.length; p += 4) {
    if (Math.abs(a[p]! - b[p]!) > tolerance || Math.abs(a[p + 1]! - b[p + 1]!) > tolerance || Math.abs(a[p + 2]! - b[p + 2]!) > tolerance) n++;
  }
  return n;
}
