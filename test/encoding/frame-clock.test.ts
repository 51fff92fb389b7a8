import { describe, expect, it } from 'vitest';
import { FrameClock, TimedReplay, timestampOf } from '../../src/encoding/frame-clock.js';
import { encodeInstruction, parseAll, type Instruction } from '../../src/protocol/index.js';

const i = (op: string, ...args: Array<string | number>): Instruction => parseAll(Buffer.from(encodeInstruction(op, ...args)))[0]!;

/** A display whose picture is the list of `rect` x values applied; dirty until captured. */
class ListDisplay {
  drawn: number[] = [];
  dirty = false;
  apply(ins: Instruction): void {
    if (ins.opcode === 'rect') {
      this.drawn.push(ins.intArg(1));
      this.dirty = true;
    }
    if (ins.opcode === 'mouse') this.dirty = true;
  }
}

async function replay(instructions: Instruction[], fps = 10): Promise<{ frames: Array<{ slot: number; pts: number; shows: number[] }>; clock: FrameClock }> {
  const display = new ListDisplay();
  const clock = new FrameClock(fps);
  const frames: Array<{ slot: number; pts: number; shows: number[] }> = [];
  const r = new TimedReplay(display, clock, async (slot, pts) => {
    frames.push({ slot, pts, shows: [...display.drawn] });
    display.dirty = false;
  });
  for (const ins of instructions) await r.push(ins);
  await r.finish();
  return { frames, clock };
}

describe('timestampOf', () => {
  it('reads sync and timestamped mouse, nothing else', () => {
    expect(timestampOf(i('sync', 1234))).toBe(1234);
    expect(timestampOf(i('mouse', 1, 2, 0, 999))).toBe(999);
    expect(timestampOf(i('mouse', 1, 2))).toBeUndefined();
    expect(timestampOf(i('rect', 0, 0, 0, 1, 1))).toBeUndefined();
    expect(timestampOf(i('sync', 'x'))).toBeUndefined();
  });
});

describe('TimedReplay (guacenc timeline, change-only frames)', () => {
  it('puts the state after the last event of a slot in that slot, and skips idle slots', async () => {
    const { frames } = await replay([
      i('rect', 0, 1, 0, 1, 1),
      i('sync', 1000), // origin, slot 0
      i('rect', 0, 2, 0, 1, 1),
      i('sync', 1120), // slot 1
      i('rect', 0, 3, 0, 1, 1),
      i('sync', 1190), // slot 1 again: replaces the state of 1120
      i('sync', 5000), // slot 40, nothing changed: only the final hold
    ]);
    expect(frames).toEqual([
      { slot: 0, pts: 0, shows: [1] },
      { slot: 1, pts: 100, shows: [1, 2, 3] },
      { slot: 40, pts: 4000, shows: [1, 2, 3] },
    ]);
  });

  it('shows instructions after an event only once the next event stamps them', async () => {
    const { frames } = await replay([i('sync', 0), i('rect', 0, 7, 0, 1, 1), i('sync', 300), i('rect', 0, 8, 0, 1, 1)]);
    // rect 8 comes after the last sync: applied (for the end state) but never shown.
    expect(frames.map((f) => [f.slot, f.shows])).toEqual([
      [0, []],
      [3, [7]],
    ]);
  });

  it('lets a timestamped mouse advance the clock; refuses timestamps going backwards', async () => {
    const { frames, clock } = await replay([i('sync', 1000), i('mouse', 5, 5, 0, 1250), i('sync', 900), i('rect', 0, 9, 0, 1, 1), i('sync', 1400)]);
    expect(clock.refused).toBe(1);
    expect(clock.last).toBe(1400);
    expect(frames.map((f) => f.slot)).toEqual([0, 2, 4]);
    expect(frames[2]!.shows).toEqual([9]);
  });

  it('starts at the first sync: a mouse timestamp before it does not set the origin', async () => {
    const { frames, clock } = await replay([i('mouse', 1, 1, 0, 10), i('sync', 500), i('sync', 700)]);
    expect(clock.origin).toBe(500);
    expect(frames.map((f) => f.slot)).toEqual([0, 2]);
  });

  it('uses exact frame times at rates that do not divide a second', async () => {
    const { frames, clock } = await replay([i('sync', 0), i('rect', 0, 1, 0, 1, 1), i('sync', 1000)], 30);
    expect(frames.map((f) => f.slot)).toEqual([0, 30]);
    expect(frames[1]!.pts).toBe(1000);
    expect(clock.timeOf(30)).toBe(1000);
    expect(clock.slotOf(33)).toBe(0);
    expect(clock.slotOf(34)).toBe(1);
  });

  it('draws nothing without a sync', async () => {
    const { frames } = await replay([i('rect', 0, 1, 0, 1, 1), i('mouse', 1, 1, 0, 50)]);
    expect(frames).toEqual([]);
  });
});
