import { access } from 'node:fs/promises';
import { parseAll } from '../../src/protocol/index.js';
import type { Readable } from 'node:stream';

/** A stream's bytes, whole (objects read back from a store in tests). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** A recording cut after its nth `sync` (instructions kept whole), to keep browser tests short. */
export function upToSync(bytes: Buffer, n: number): Buffer {
  const out: Buffer[] = [];
  let syncs = 0;
  for (const ins of parseAll(bytes)) {
    out.push(ins.raw);
    if (ins.opcode === 'sync' && ++syncs >= n) break;
  }
  return Buffer.concat(out);
}
