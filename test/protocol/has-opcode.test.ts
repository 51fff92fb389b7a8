import { describe, expect, it } from 'vitest';
import { hasOpcode, parseAll } from '../../src/protocol/index.js';

describe('hasOpcode', () => {
  it('agrees with the decoded opcode of every instruction of a mixed stream, for every name asked', () => {
    const stream =
      '4.sync,4.1000;4.size,1.0,3.640,3.480;5.audio,1.1,9.audio/L16;9.clipboard,1.3,10.text/plain;4.blob,1.1,4.AAAA;' +
      '3.end,1.1;5.mouse,1.1,1.2,1.0;3.key,2.65,1.1;0.,4.ping;3.img,1.2,2.14,1.0,9.image/png,1.0,1.0;5.syncx;';
    const names = ['sync', 'size', 'audio', 'clipboard', 'blob', 'end', 'mouse', 'key', '', 'img'];
    const all = parseAll(Buffer.from(stream));
    expect(all).toHaveLength(11);
    for (const ins of all) for (const name of names) expect(hasOpcode(ins.raw, name), `${ins.raw.toString()} vs '${name}'`).toBe(ins.opcode === name);
  });

  it('compares the length prefix as written and needs the whole opcode', () => {
    expect(hasOpcode(Buffer.from('05.audio,1.1;'), 'audio')).toBe(false); // a leading zero is not the one-digit prefix
    expect(hasOpcode(Buffer.from('10.disconnect;'), 'disconnect')).toBe(false); // ten or more: not for byte tests
    expect(hasOpcode(Buffer.from('4.syn'), 'sync')).toBe(false);
    expect(hasOpcode(Buffer.from('4'), 'sync')).toBe(false);
    expect(hasOpcode(Buffer.alloc(0), '')).toBe(false);
  });
});
