import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256OfFile } from '../../src/recording/file-hasher.js';
import { sha256, tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

describe('sha256OfFile (hash worker)', () => {
  it('hashes the first `bytes` bytes of files, many at once, across read-buffer boundaries', async () => {
    const files = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 17].map((n, k) => {
      const data = randomBytes(n + 100); // 100 bytes past what is hashed: a file still growing
      const path = join(spool.dir, `h${k}.guac`);
      writeFileSync(path, data);
      return { path, n, want: sha256(data.subarray(0, n)) };
    });
    const got = await Promise.all(files.map((f) => sha256OfFile(f.path, f.n)));
    expect(got).toEqual(files.map((f) => f.want));
  });

  it('rejects with the read error when the file is shorter than said or missing', async () => {
    const path = join(spool.dir, 'short.guac');
    writeFileSync(path, Buffer.from('4.sync,1.1;'));
    await expect(sha256OfFile(path, 12)).rejects.toMatchObject({ code: 'ESHORT' });
    await expect(sha256OfFile(join(spool.dir, 'missing.guac'), 5)).rejects.toMatchObject({ code: 'ENOENT' });
    // The worker survives a failed job.
    expect(await sha256OfFile(path, 11)).toBe(sha256(Buffer.from('4.sync,1.1;')));
  });
});
