import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isRecgwError, ProtocolError } from '../../src/errors.js';
import { GuacamoleParser, parseAll } from '../../src/protocol/parser.js';
import { codePointLength, encodeInstruction, Instruction } from '../../src/protocol/instruction.js';

const FIXTURES = ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'] as const;

function fixture(name: string): Buffer {
  return gunzipSync(readFileSync(new URL(`../../fixtures/recordings/${name}.gz`, import.meta.url)));
}

/** Parses `data` fed in chunks of the given sizes (cycled); returns each instruction's raw bytes. */
function parseChunked(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  const parser = new GuacamoleParser((ins) => out.push(Buffer.from(ins.raw)));
  let pos = 0;
  let k = 0;
  while (pos < data.length) {
    const n = sizes[k++ % sizes.length]!;
    parser.push(data.subarray(pos, pos + n));
    pos += n;
  }
  parser.end();
  return out;
}

describe('GuacamoleParser', () => {
  it('parses elements, opcode first, with code-point lengths', () => {
    const [a, b] = parseAll(Buffer.from('4.size,1.0,4.1024,3.768;5.mouse,1.1,1.2,1.0,2.€é;'));
    expect(a!.elements()).toEqual(['size', '0', '1024', '768']);
    expect(b!.opcode).toBe('mouse');
    expect(b!.arg(3)).toBe('€é');
    expect(b!.intArg(0)).toBe(1);
    expect(b!.argCount).toBe(4);
  });

  it('reads integer arguments from the bytes exactly as Number() reads their text', () => {
    const values = ['0', '7', '-12', '1700000000123', '999999999999999', '9999999999999999', '-0', '', '-', '1e3', ' 5', '0x10', '1.5', '12a', '€'];
    const [ins] = parseAll(Buffer.from(encodeInstruction('sync', ...values)));
    values.forEach((v, k) => {
      const want = v === '' ? Number.NaN : Number(v);
      expect(Object.is(ins!.intArg(k), want) || (Number.isNaN(want) && Number.isNaN(ins!.intArg(k)))).toBe(true);
    });
    expect(ins!.intArg(values.length)).toBeNaN(); // absent
  });

  it('counts code points, not UTF-16 units, for characters beyond the BMP', () => {
    const text = 'a😀b';
    expect(codePointLength(text)).toBe(3);
    const wire = encodeInstruction('clipboard', text);
    expect(wire).toBe('9.clipboard,3.a😀b;');
    expect(parseAll(Buffer.from(wire))[0]!.arg(0)).toBe(text);
  });

  it('handles empty opcodes (tunnel-internal instructions) and empty values', () => {
    const [ins] = parseAll(Buffer.from('0.,4.ping,0.;'));
    expect(ins!.opcode).toBe('');
    expect(ins!.args()).toEqual(['ping', '']);
  });

  it.each(FIXTURES)('every chunking of %s gives the same instructions', (name) => {
    const data = fixture(name);
    const whole = parseAll(data).map((i) => i.raw);
    expect(whole.length).toBeGreaterThan(1000);
    expect(Buffer.concat(whole).equals(data)).toBe(true);
    for (const sizes of [[1], [2, 3, 5, 7], [4096], [65536], [13, 1, 999]]) {
      const chunked = parseChunked(data, sizes);
      expect(chunked.length).toBe(whole.length);
      expect(Buffer.concat(chunked).equals(data)).toBe(true);
    }
  });

  it('reassembles multi-byte characters split at every byte position', () => {
    const wire = Buffer.from(encodeInstruction('name', 'Zoë 日本 😀 ok') + encodeInstruction('sync', '1'));
    for (let cut = 1; cut < wire.length; cut++) {
      const got: Instruction[] = [];
      const p = new GuacamoleParser((i) => got.push(i));
      p.push(wire.subarray(0, cut));
      p.push(wire.subarray(cut));
      p.end();
      expect(got.map((i) => i.elements())).toEqual([['name', 'Zoë 日本 😀 ok'], ['sync', '1']]);
    }
  });

  it('keeps partial instructions pending and reports complete bytes', () => {
    const got: string[] = [];
    const p = new GuacamoleParser((i) => got.push(i.opcode));
    p.push(Buffer.from('4.sync,3.123;4.sy'));
    expect(got).toEqual(['sync']);
    expect(p.completeBytes).toBe(13);
    expect(p.pendingBytes).toBe(4);
    expect(() => p.end()).toThrow(ProtocolError);
  });

  const malformed: Array<[string, string]> = [
    ['garbage', 'hello world;'],
    ['missing dot', '4size;'],
    ['wrong terminator', '4.sync:1.0;'],
    ['length too short for the value', '2.sync;'],
    ['negative length', '-1.a;'],
  ];
  it.each(malformed)('rejects %s with a ProtocolError carrying its code', (_name, text) => {
    let caught: unknown;
    try {
      parseAll(Buffer.from(text));
    } catch (err) {
      caught = err;
    }
    expect(isRecgwError(caught, 'RECGW_ERR_PROTOCOL')).toBe(true);
  });

  it('stays failed after an error', () => {
    const p = new GuacamoleParser(() => undefined);
    expect(() => p.push(Buffer.from('x'))).toThrow(ProtocolError);
    expect(() => p.push(Buffer.from('4.sync,1.0;'))).toThrow(ProtocolError);
  });

  it('refuses a length prefix above the limit before buffering the value', () => {
    const p = new GuacamoleParser(() => undefined, { maxElementLength: 1000 });
    expect(() => p.push(Buffer.from('99999999999999999999.'))).toThrow(/exceeds the limit of 1000/);
    expect(p.pendingBytes).toBe(0);
  });

  it('bounds the bytes one instruction may buffer', () => {
    const p = new GuacamoleParser(() => undefined, { maxInstructionBytes: 4096 });
    p.push(Buffer.from('4.blob,1.0,9999.'));
    expect(() => p.push(Buffer.alloc(8192, 0x41))).toThrow(/exceeds the limit of 4096 bytes/);
  });

  it('bounds the number of elements', () => {
    const p = new GuacamoleParser(() => undefined, { maxElements: 3 });
    expect(() => p.push(Buffer.from('1.a,1.b,1.c,1.d;'))).toThrow(/more than 3 elements/);
  });

  it('parses a large element arriving in many small chunks in linear time', () => {
    const value = 'A'.repeat(2 * 1024 * 1024);
    const wire = Buffer.from(encodeInstruction('blob', '1', value));
    const got: Instruction[] = [];
    const p = new GuacamoleParser((i) => got.push(i));
    for (let i = 0; i < wire.length; i += 512) p.push(wire.subarray(i, i + 512));
    expect(got).toHaveLength(1);
    expect(got[0]!.argBytes(1).length).toBe(value.length);
  });
});
