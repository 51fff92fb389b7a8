import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';

export interface RecordingSource {
  /** The recording's Guacamole protocol bytes, decompressed when the file is gzip. */
  stream: Readable;
  /** Size of the file on disk (compressed size for .gz), for progress reporting. */
  fileBytes: number;
  /** Bytes of the file read so far (compressed bytes for .gz). */
  bytesRead(): number;
  gzip: boolean;
}

/**
 * Opens a recording for streaming, whether plain protocol text (.guac, guacd's own files) or
 * gzip-compressed: the gzip magic number decides, not the file name.
 */
export async function openRecording(path: string, highWaterMark = 256 * 1024): Promise<RecordingSource> {
  const info = await stat(path);
  const head = await readHead(path);
  const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  const file = createReadStream(path, { highWaterMark });
  if (!gzip) {
    return { stream: file, fileBytes: info.size, bytesRead: () => file.bytesRead, gzip };
  }
  const gunzip = createGunzip({ chunkSize: highWaterMark });
  file.on('error', (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  return { stream: gunzip, fileBytes: info.size, bytesRead: () => file.bytesRead, gzip };
}

async function readHead(path: string): Promise<Buffer> {
  const { open } = await import('node:fs/promises');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
