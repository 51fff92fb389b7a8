import { describe, expect, it } from 'vitest';
import { adjacentRuns, joinRaw } from '../../src/gateway/session.js';
import { parseAll } from '../../src/protocol/index.js';

const a = parseAll(Buffer.from('4.sync,1.1;3.img,1.2;4.rect,1.0;'));
const b = parseAll(Buffer.from('4.sync,1.3;5.mouse,1.1;'));
const text = (bufs: Buffer[]): string => Buffer.concat(bufs).toString();

describe('adjacentRuns / joinRaw', () => {
  it('gives instructions parsed from one buffer as one view of it, without a copy', () => {
    const runs = adjacentRuns(a);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.buffer).toBe(a[0]!.raw.buffer);
    expect(runs[0]!.toString()).toBe('4.sync,1.1;3.img,1.2;4.rect,1.0;');
    expect(adjacentRuns([a[1]!])[0]).toBe(a[1]!.raw);
    const joined = joinRaw(a);
    expect(joined.buffer).toBe(a[0]!.raw.buffer);
    expect(joined.toString()).toBe(runs[0]!.toString());
  });

  it('starts a new view wherever the next instruction does not follow on, keeping the order', () => {
    const list = [a[0]!, a[1]!, b[0]!, b[1]!, a[2]!];
    const runs = adjacentRuns(list);
    expect(runs.map((r) => r.toString())).toEqual(['4.sync,1.1;3.img,1.2;', '4.sync,1.3;5.mouse,1.1;', '4.rect,1.0;']);
    expect(text(runs)).toBe(joinRaw(list).toString());
    // a gap inside the same buffer also breaks the run
    expect(adjacentRuns([a[0]!, a[2]!]).map((r) => r.toString())).toEqual(['4.sync,1.1;', '4.rect,1.0;']);
  });
});
