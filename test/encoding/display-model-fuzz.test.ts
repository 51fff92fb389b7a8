import { describe, expect, it } from 'vitest';
import { DisplayModel } from '../../src/encoding/display-model.js';
import { encodeInstruction as I, parseAll } from '../../src/protocol/index.js';

// Random and hostile instructions: apply() must never throw, whatever arrives, and the model
// must keep rendering frames of the right size.

/** Small deterministic PRNG (mulberry32) so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const OPCODES = [
  'blob', 'img', 'end', 'mouse', 'sync', 'cursor', 'copy', 'transfer', 'size', 'rect', 'cfill', 'move', 'shade',
  'dispose', 'arc', 'cstroke', 'lfill', 'lstroke', 'line', 'curve', 'start', 'close', 'clip', 'reset', 'push', 'pop',
  'identity', 'transform', 'distort', 'set', 'png', 'jpeg', 'key', 'nop', 'bogus',
];

describe('DisplayModel under random input', () => {
  // Seeds 4, 7 and 18 once found out-of-range coordinates and copies from 0×0 canvases.
  for (const seed of [1, 4, 7, 18]) {
    it(`never throws and keeps rendering (seed ${seed})`, async () => {
      const random = prng(seed);
      const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
      const value = (): string | number =>
        pick<() => string | number>([
          () => Math.floor(random() * 200) - 20, // mostly plausible coordinates and indices
          () => Math.floor(random() * 16),
          () => pick([-1, -2, 0, 1, 2, 3]),
          () => pick([0, 1e9, -1e9, 20000, 4294967296]),
          () => pick(['', 'x', 'NaN', '1.5', '-0', '1e3', 'image/png', 'image/jpeg', 'miter-limit', 'iVBORw0KGgo=', 'AAAA', '====']),
        ])();
      const model = new DisplayModel({ maxPixels: 4 * 1024 * 1024 });
      let text = I('size', 0, 120, 90);
      for (let i = 0; i < 3000; i++) {
        const args: Array<string | number> = [];
        const n = Math.floor(random() * 10);
        for (let k = 0; k < n; k++) args.push(value());
        text += I(pick(OPCODES), ...args);
      }
      for (const ins of parseAll(Buffer.from(text))) {
        let pending: Promise<void> | undefined;
        expect(() => {
          const result = model.apply(ins);
          if (result instanceof Promise) pending = result;
        }, ins.raw.toString().slice(0, 120)).not.toThrow();
        if (pending) await pending;
        if (random() < 0.05) {
          const frame = model.render();
          expect(frame.length).toBe(model.width * model.height * 4);
        }
      }
      expect(model.malformed).toBeGreaterThan(0);
      expect(model.unsupported.get('bogus')).toBeGreaterThan(0);
      // The state of whatever this became still rebuilds the same picture.
      const rebuilt = new DisplayModel({ maxPixels: 4 * 1024 * 1024 });
      for (const ins of parseAll(Buffer.from(model.serializeState()))) await rebuilt.apply(ins);
      expect(Buffer.from(rebuilt.render()).equals(Buffer.from(model.render()))).toBe(true);
    });
  }
});
