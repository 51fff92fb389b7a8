import type { Instruction } from '../protocol/index.js';

export interface LeftOutStreamOptions {
  includeAudio: boolean;
  includeClipboard: boolean;
}

/**
 * Decides which guacd→client instructions stay out of a recording: audio and clipboard streams
 * (as guacd's own recorder does), unless kept by configuration.
 *
 * A stream is named by the index its opening instruction (`audio` / `clipboard`, index = arg 0)
 * gives it; its `blob`s and its `end` carry that index. After the `end` guacd may reuse the index
 * for any other stream (an `img`, say), which must be kept, so an index is left out only while
 * its stream is open.
 */
export class LeftOutStreams {
  readonly #includeAudio: boolean;
  readonly #includeClipboard: boolean;
  readonly #open = new Set<string>();

  constructor(options: LeftOutStreamOptions) {
    this.#includeAudio = options.includeAudio;
    this.#includeClipboard = options.includeClipboard;
  }

  /**
   * False when keep() is sure to say true for an instruction with these bytes, whatever came
   * before; true when keep() has to look. Reads a few bytes and changes nothing, so the relay's
   * tap can pass over a whole socket read with it and hand the read on in one piece.
   */
  mayLeaveOut(raw: Buffer): boolean {
    const len = raw[0];
    if (raw[1] !== 0x2e /* '.' */) return false; // opcodes of ten or more bytes: none of ours
    if (len === 0x35) return !this.#includeAudio && opcodeIs(raw, AUDIO);
    if (len === 0x39) return !this.#includeClipboard && opcodeIs(raw, CLIPBOARD);
    if (this.#open.size === 0) return false;
    return (len === 0x34 && opcodeIs(raw, BLOB)) || (len === 0x33 && opcodeIs(raw, END));
  }

  /** True when `ins` belongs in the recording. Call for every instruction, in order. */
  keep(ins: Instruction): boolean {
    // Cheap first-byte test: most instructions (img, sync, copy, ...) need no look at all, and
    // no stream is open most of the time.
    const raw = ins.raw;
    const len = raw[0];
    // '5.audio', '9.clipboard', '4.blob', '3.end'
    if (len === 0x35 /* 5 */) {
      if (!this.#includeAudio && ins.opcode === 'audio') return this.#openStream(ins);
      return true;
    }
    if (len === 0x39 /* 9 */) {
      if (!this.#includeClipboard && ins.opcode === 'clipboard') return this.#openStream(ins);
      return true;
    }
    if (this.#open.size === 0) return true;
    if (len === 0x34 /* 4 */ && ins.opcode === 'blob') return !this.#open.has(ins.arg(0));
    if (len === 0x33 /* 3 */ && ins.opcode === 'end') return !this.#open.delete(ins.arg(0));
    return true;
  }

  #openStream(ins: Instruction): false {
    this.#open.add(ins.arg(0));
    return false;
  }
}

const AUDIO = Buffer.from('audio');
const CLIPBOARD = Buffer.from('clipboard');
const BLOB = Buffer.from('blob');
const END = Buffer.from('end');

/** True when the opcode of `raw`, whose length prefix is a single digit, is `name`. */
function opcodeIs(raw: Buffer, name: Buffer): boolean {
  if (raw.length < name.length + 2) return false;
  for (let i = 0; i < name.length; i++) if (raw[i + 2] !== name[i]) return false;
  return true;
}
