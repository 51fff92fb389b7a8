// Compares DisplayModel's frames with what guacamole-common-js 1.5.0 actually paints in Chromium
// for the same instructions: each fixture recording is fed to a Guacamole.Client (through a
// stand-in tunnel) and to a DisplayModel; at a few points the browser's display element is
// screenshotted and compared with render(). Prints the share of pixels that differ by more than
// a small tolerance. Not part of npm test (it needs Chromium and takes a while).
// Run: npx tsx bench/display-fidelity.ts [name ...]
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Image, createCanvas } from '@napi-rs/canvas';
import { chromium } from 'playwright-core';
import { DisplayModel } from '../src/encoding/display-model.js';
import { parseAll, type Instruction } from '../src/protocol/index.js';

const TOLERANCE = 3;
const CHECKPOINTS = 4;
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'];

const guacSource = readFileSync(new URL('../node_modules/guacamole-common-js/dist/cjs/guacamole-common.js', import.meta.url), 'utf8').replace(
  /module\.exports\s*=\s*Guacamole;\s*$/,
  'window.Guacamole = Guacamole;',
);

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
try {
  for (const name of names) {
    const data = gunzipSync(readFileSync(new URL(`../fixtures/recordings/${name}.gz`, import.meta.url)));
    const instructions = parseAll(data);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
    await page.setContent('<html><body style="margin:0;background:#000"></body></html>');
    await page.addScriptTag({ content: guacSource });
    await page.evaluate(() => {
      // The stand-in tunnel: the client only needs something to send its replies (sync) to.
      const g = (window as unknown as { Guacamole: any }).Guacamole; // any: untyped browser global
      const tunnel = new g.Tunnel();
      tunnel.sendMessage = () => {};
      tunnel.connect = () => {};
      tunnel.disconnect = () => {};
      const client = new g.Client(tunnel);
      const element = client.getDisplay().getElement();
      element.id = 'display';
      document.body.appendChild(element);
      const w = window as unknown as Record<string, unknown>;
      w.feed = (text: string) => {
        const parser = new g.Parser();
        parser.oninstruction = (op: string, args: string[]) => tunnel.oninstruction(op, args);
        parser.receive(text);
      };
      w.flushed = () => new Promise<void>((resolve) => client.getDisplay().flush(resolve));
    });

    const model = new DisplayModel();
    const checkpoints = new Set<number>();
    const syncs = instructions.flatMap((ins, k) => (ins.opcode === 'sync' ? [k] : []));
    for (let c = 1; c <= CHECKPOINTS; c++) checkpoints.add(syncs[Math.floor((syncs.length - 1) * (c / CHECKPOINTS))]!);

    let from = 0;
    const report: string[] = [];
    for (let k = 0; k < instructions.length; k++) {
      const pending = model.apply(instructions[k]!);
      if (pending) await pending;
      if (!checkpoints.has(k)) continue;
      await page.evaluate((text) => (window as unknown as { feed: (t: string) => void }).feed(text), textOf(instructions.slice(from, k + 1)));
      from = k + 1;
      await page.evaluate(() => (window as unknown as { flushed: () => Promise<void> }).flushed());
      const shot = await page.screenshot({ clip: { x: 0, y: 0, width: model.width, height: model.height } });
      const browserPixels = decode(shot);
      const ours = model.render();
      let differing = 0;
      for (let p = 0; p < ours.length; p += 4) {
        if (
          Math.abs(ours[p]! - browserPixels[p]!) > TOLERANCE ||
          Math.abs(ours[p + 1]! - browserPixels[p + 1]!) > TOLERANCE ||
          Math.abs(ours[p + 2]! - browserPixels[p + 2]!) > TOLERANCE
        ) {
          differing++;
        }
      }
      if (process.env.FIDELITY_DUMP) {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(`${process.env.FIDELITY_DUMP}/${name}-${report.length}-browser.png`, shot);
        const c = createCanvas(model.width, model.height);
        const id = c.getContext('2d').createImageData(model.width, model.height);
        id.data.set(ours);
        c.getContext('2d').putImageData(id, 0, 0);
        writeFileSync(`${process.env.FIDELITY_DUMP}/${name}-${report.length}-model.png`, c.encodeSync('png'));
      }
      report.push(`${((100 * differing) / (ours.length / 4)).toFixed(3)}%`);
    }
    console.log(`${name.padEnd(13)} pixels differing from Chromium + guacamole-common-js (>±${TOLERANCE}) at ${CHECKPOINTS} syncs: ${report.join(', ')}`);
    await page.close();
  }
} finally {
  await browser.close();
}

function textOf(list: readonly Instruction[]): string {
  return list.map((ins) => ins.raw.toString('utf8')).join('');
}

/** RGBA pixels of a PNG screenshot (opaque: the page background is black). */
function decode(png: Buffer): Uint8ClampedArray {
  const img = new Image();
  img.src = png;
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, img.width, img.height).data;
}
