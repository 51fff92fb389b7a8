// Compares DisplayModel's frames with what guacamole-common-js 1.5.0 actually paints in Chromium
// for the same instructions: each fixture recording goes to both, and at a few syncs the
// browser's display is screenshotted and compared with render(). Prints the share of pixels that
// differ by more than a small tolerance. Not part of npm test (it needs Chromium and a while).
// Run: npx tsx bench/display-fidelity.ts [name ...]   (FIDELITY_DUMP=dir also writes both PNGs)
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createCanvas } from '@napi-rs/canvas';
import { DisplayModel } from '../src/encoding/display-model.js';
import { parseAll, type Instruction } from '../src/protocol/index.js';
import { ReferenceDisplay, countDifferingPixels } from '../test/support/reference-display.js';

const TOLERANCE = 3;
const CHECKPOINTS = 4;
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'];

const reference = await ReferenceDisplay.open();
try {
  for (const name of names) {
    const instructions = parseAll(gunzipSync(readFileSync(new URL(`../fixtures/recordings/${name}.gz`, import.meta.url))));
    await reference.reset();
    const model = new DisplayModel();
    const syncs = instructions.flatMap((ins, k) => (ins.opcode === 'sync' ? [k] : []));
    const checkpoints = new Set<number>();
    for (let c = 1; c <= CHECKPOINTS; c++) checkpoints.add(syncs[Math.floor((syncs.length - 1) * (c / CHECKPOINTS))]!);

    let from = 0;
    const report: string[] = [];
    for (let k = 0; k < instructions.length; k++) {
      const pending = model.apply(instructions[k]!);
      if (pending) await pending;
      if (!checkpoints.has(k)) continue;
      await reference.feed(textOf(instructions.slice(from, k + 1)));
      from = k + 1;
      const theirs = await reference.frame(model.width, model.height);
      const ours = model.render();
      if (process.env.FIDELITY_DUMP) {
        writeFileSync(`${process.env.FIDELITY_DUMP}/${name}-${report.length}-browser.png`, toPng(theirs, model.width, model.height));
        writeFileSync(`${process.env.FIDELITY_DUMP}/${name}-${report.length}-model.png`, toPng(ours, model.width, model.height));
      }
      report.push(`${((100 * countDifferingPixels(ours, theirs, TOLERANCE)) / (ours.length / 4)).toFixed(3)}%`);
    }
    console.log(`${name.padEnd(13)} pixels differing from Chromium + guacamole-common-js (>±${TOLERANCE}) at ${CHECKPOINTS} syncs: ${report.join(', ')}`);
  }
} finally {
  await reference.close();
}

function textOf(list: readonly Instruction[]): string {
  return list.map((ins) => ins.raw.toString('utf8')).join('');
}

function toPng(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): Buffer {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const data = ctx.createImageData(width, height);
  data.data.set(rgba);
  ctx.putImageData(data, 0, 0);
  return canvas.encodeSync('png');
}
