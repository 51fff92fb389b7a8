import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DisplayModel } from '../../src/encoding/display-model.js';
import { parseAll, type Instruction } from '../../src/protocol/index.js';

const FIXTURES = ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'] as const;

function fixture(name: string): Instruction[] {
  return parseAll(gunzipSync(readFileSync(new URL(`../../fixtures/recordings/${name}.gz`, import.meta.url))));
}

async function applyAll(model: DisplayModel, instructions: readonly Instruction[], onSync?: (index: number) => void): Promise<void> {
  for (let k = 0; k < instructions.length; k++) {
    const ins = instructions[k]!;
    const pending = model.apply(ins);
    if (pending) await pending;
    if (onSync && ins.opcode === 'sync') onSync(k);
  }
}

/** Share of pixels that are not black, and how many distinct colours a frame has (capped). */
function frameStats(frame: Buffer): { lit: number; colours: number } {
  let lit = 0;
  const colours = new Set<number>();
  for (let p = 0; p < frame.length; p += 4) {
    if (frame[p]! + frame[p + 1]! + frame[p + 2]! > 0) lit++;
    if (colours.size < 1000) colours.add(frame.readUInt32LE(p));
  }
  return { lit: lit / (frame.length / 4), colours: colours.size };
}

function differingPixels(a: Buffer, b: Buffer): number {
  let n = 0;
  for (let p = 0; p < a.length; p += 4) if (a.readUInt32LE(p) !== b.readUInt32LE(p)) n++;
  return n;
}

describe('DisplayModel on real guacd recordings', () => {
  for (const name of FIXTURES) {
    it(`${name}: every instruction is understood and the last frame shows a desktop`, async () => {
      const warnings: string[] = [];
      const model = new DisplayModel({ onWarning: (op, msg) => warnings.push(`${op}: ${msg}`) });
      await applyAll(model, fixture(name));
      expect(warnings).toEqual([]);
      expect([...model.unsupported]).toEqual([]);
      expect(model.malformed).toBe(0);
      expect([model.width, model.height]).toEqual([1024, 768]);
      const { lit, colours } = frameStats(model.render());
      expect(lit).toBeGreaterThan(0.05); // the terminal is mostly black; desktops far above
      expect(colours).toBeGreaterThan(8);
    });
  }

  // vnc-desktop renders layer 0 alone (read straight out); ssh-terminal has nested layers
  // (composited on a frame canvas first). A model rendering at every sync (many small changed
  // areas) must show what one rendering every 60th sync (large merged areas) shows, at each of
  // those, and at the end what a single full render shows.
  for (const name of ['vnc-desktop', 'ssh-terminal'] as const) {
    it(`${name}: rendering only the changed areas, often or rarely, gives the same frames as a full render`, async () => {
      const instructions = fixture(name);
      const often = new DisplayModel();
      const rarely = new DisplayModel();
      let syncs = 0;
      let compared = 0;
      for (const ins of instructions) {
        await often.apply(ins);
        await rarely.apply(ins);
        if (ins.opcode !== 'sync') continue;
        const frame = often.render();
        if (++syncs % 60 === 0) {
          expect(differingPixels(frame, rarely.render()), `at sync ${syncs}`).toBe(0);
          compared++;
        }
      }
      expect(compared).toBeGreaterThan(4);
      const whole = new DisplayModel();
      await applyAll(whole, instructions);
      expect(differingPixels(often.render(), whole.render())).toBe(0);
    });
  }

  for (const name of FIXTURES) {
    it(`${name}: state saved at a sync and replayed gives identical frames, now and after the rest of the stream`, async () => {
      const instructions = fixture(name);
      const syncs = instructions.flatMap((ins, k) => (ins.opcode === 'sync' ? [k] : []));
      const cut = syncs[Math.floor(syncs.length / 2)]! + 1;

      const whole = new DisplayModel();
      await applyAll(whole, instructions.slice(0, cut));
      const state = whole.serializeState();

      const resumed = new DisplayModel();
      await applyAll(resumed, parseAll(Buffer.from(state)));
      expect(resumed.unsupported.size + resumed.malformed).toBe(0);
      expect(differingPixels(resumed.render(), whole.render())).toBe(0);

      // Segment 2 on both; compare at sampled syncs and at the end.
      const rest = instructions.slice(cut);
      let compared = 0;
      for (let k = 0, syncCount = 0; k < rest.length; k++) {
        const ins = rest[k]!;
        await whole.apply(ins);
        await resumed.apply(ins);
        if (ins.opcode === 'sync' && syncCount++ % 40 === 0) {
          expect(differingPixels(resumed.render(), whole.render()), `after instruction ${cut + k}`).toBe(0);
          compared++;
        }
      }
      expect(compared).toBeGreaterThan(3);
      expect(differingPixels(resumed.render(), whole.render())).toBe(0);
    });
  }
});
