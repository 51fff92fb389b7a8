import { hasOpcode, type Instruction } from '../protocol/index.js';

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
    if (!this.#includeAudio && hasOpcode(raw, 'audio')) return true;
    if (!this.#includeClipboard && hasOpcode(raw, 'clipboard')) return true;
    // Most of the time no stream is open, and blobs (images above all) need no look at all.
    return this.#open.size > 0 && (hasOpcode(raw, 'blob') || hasOpcode(raw, 'end'));
  }

  /** True when `ins` belongs in the recording. Call for every instruction, in order. */
  keep(ins: Instruction): boolean {
    const raw = ins.raw;
    if (!this.mayLeaveOut(raw)) return true;
    // A left-out stream's opening instruction, or a blob or end while some stream is left out.
    if (hasOpcode(raw, 'blob')) return !this.#open.has(ins.arg(0));
    if (hasOpcode(raw, 'end')) return !this.#open.delete(ins.arg(0));
    return this.#openStream(ins);
  }

  #openStream(ins: Instruction): false {
    this.#open.add(ins.arg(0));
    return false;
  }
}
