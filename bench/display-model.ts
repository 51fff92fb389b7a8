// Applies each fixture recording to a DisplayModel and renders the frames a 25 fps clock would
// ask for (guacenc's timeline: origin at the first sync, sync and timestamped mouse advance it),
// then prints wall time, CPU time, and where it went. Not part of npm test.
// Run: npx tsx bench/display-model.ts [name ...]
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DisplayModel } from '../src/encoding/display-model.js';
import { parseAll } from '../src/protocol/index.js';

const FPS = 25;
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'];

for (const name of names) {
  const instructions = parseAll(gunzipSync(readFileSync(new URL(`../fixtures/recordings/${name}.gz`, import.meta.url))));
  const model = new DisplayModel();
  const frameMs = 1000 / FPS;
  let origin: number | undefined;
  let last = -Infinity;
  let slot = 0;
  let frames = 0;
  let renders = 0;
  let applyMs = 0;
  let renderMs = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const ins of instructions) {
    const a = performance.now();
    const pending = model.apply(ins);
    if (pending) await pending;
    applyMs += performance.now() - a;
    const ts = ins.opcode === 'sync' ? ins.intArg(0) : ins.opcode === 'mouse' && ins.argCount >= 4 ? ins.intArg(3) : Number.NaN;
    if (!Number.isFinite(ts) || ts < last) continue;
    last = ts;
    origin ??= ts;
    // Every frame slot that ends before this timestamp shows the display as it was.
    while (origin + frameMs * (slot + 1) <= ts) {
      const r = performance.now();
      if (model.dirty) renders++;
      model.render();
      renderMs += performance.now() - r;
      frames++;
      slot++;
    }
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const spanS = origin === undefined ? 0 : (last - origin) / 1000;
  console.log(
    `${name.padEnd(13)} ${model.width}x${model.height} ${instructions.length} instructions, ${spanS.toFixed(1)} s recorded, ` +
      `${frames} frames (${renders} changed): wall ${wall.toFixed(0)} ms (apply ${applyMs.toFixed(0)}, render ${renderMs.toFixed(0)}), ` +
      `cpu user ${(cpu.user / 1000).toFixed(0)} ms sys ${(cpu.system / 1000).toFixed(0)} ms, ${(spanS / (wall / 1000)).toFixed(1)}x real time`,
  );
}
