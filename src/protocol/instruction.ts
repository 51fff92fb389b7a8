/**
 * One parsed Guacamole instruction: its exact bytes plus where each element's value lies in
 * them. Values are decoded only when asked for, because the relay forwards most instructions
 * (large base64 blobs above all) without ever looking inside them.
 */
export class Instruction {
  /** The instruction's bytes exactly as received, terminator included. */
  readonly raw: Buffer;
  readonly #offsets: readonly number[];
  #opcode: string | undefined;

  /** @param offsets [start, end) byte pairs of each element value within `raw`, opcode first. */
  constructor(raw: Buffer, offsets: readonly number[]) {
    this.raw = raw;
    this.#offsets = offsets;
  }

  get opcode(): string {
    if (this.#opcode === undefined) this.#opcode = this.raw.toString('utf8', this.#offsets[0], this.#offsets[1]);
    return this.#opcode;
  }

  /** Number of arguments (elements after the opcode). */
  get argCount(): number {
    return this.#offsets.length / 2 - 1;
  }

  /** Argument i (0-based, after the opcode) decoded as UTF-8; '' when absent. */
  arg(i: number): string {
    const k = (i + 1) * 2;
    if (k + 1 >= this.#offsets.length) return '';
    return this.raw.toString('utf8', this.#offsets[k], this.#offsets[k + 1]);
  }

  /** Argument i as raw bytes, without decoding (for base64 blobs). */
  argBytes(i: number): Buffer {
    const k = (i + 1) * 2;
    if (k + 1 >= this.#offsets.length) return Buffer.alloc(0);
    return this.raw.subarray(this.#offsets[k], this.#offsets[k + 1]);
  }

  /** Argument i parsed as an integer; NaN when absent or not a number. */
  intArg(i: number): number {
    const k = (i + 1) * 2;
    if (k + 1 >= this.#offsets.length) return Number.NaN;
    // Read plain decimals straight from the bytes: every guacd `sync` passes through here on the
    // relay's path, and decoding a string first cost more than the rest of the recording tap.
    const raw = this.raw;
    let p = this.#offsets[k]!;
    const end = this.#offsets[k + 1]!;
    const negative = raw[p] === 0x2d; /* '-' */
    if (negative) p++;
    if (end > p && end - p <= 15) {
      let n = 0;
      for (; p < end; p++) {
        const d = raw[p]! - 0x30;
        if (d < 0 || d > 9) break;
        n = n * 10 + d;
      }
      if (p === end) return negative ? -n : n;
    }
    const s = this.arg(i);
    return s === '' ? Number.NaN : Number(s);
  }

  args(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.argCount; i++) out.push(this.arg(i));
    return out;
  }

  /** Opcode and arguments as strings. */
  elements(): string[] {
    return [this.opcode, ...this.args()];
  }
}

/**
 * True when `raw`, one instruction's bytes, has the opcode `name` (ASCII, at most 9 characters),
 * found by comparing a few bytes: for the paths that look at every relayed instruction, where
 * decoding the opcode as a string would cost more than the rest of their work.
 */
export function hasOpcode(raw: Uint8Array, name: string): boolean {
  const n = name.length;
  if (raw[0] !== 0x30 + n || raw[1] !== 0x2e /* '.' */ || raw.length < n + 2) return false;
  for (let i = 0; i < n; i++) if (raw[i + 2] !== name.charCodeAt(i)) return false;
  return true;
}

/** Length of a string in Unicode code points (what Guacamole length prefixes count). */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Serialises elements (opcode first) as one Guacamole instruction. */
export function encodeInstruction(opcode: string, ...args: ReadonlyArray<string | number>): string {
  let out = `${codePointLength(opcode)}.${opcode}`;
  for (const a of args) {
    const s = typeof a === 'string' ? a : String(a);
    out += `,${codePointLength(s)}.${s}`;
  }
  return out + ';';
}

/** Same as encodeInstruction, as UTF-8 bytes. */
export function encodeInstructionBuffer(opcode: string, ...args: ReadonlyArray<string | number>): Buffer {
  return Buffer.from(encodeInstruction(opcode, ...args), 'utf8');
}
