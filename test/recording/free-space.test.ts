import checkDiskSpaceModule from 'check-disk-space';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freeBytesOnFileSystem } from '../../src/recording/free-space.js';

// Its types are CommonJS-flavoured under NodeNext (default = the module), while Node loads its
// ESM build, whose default export is the function itself; accept either.
type CheckDiskSpace = typeof checkDiskSpaceModule.default;
const checkDiskSpace: CheckDiskSpace =
  typeof checkDiskSpaceModule === 'function' ? (checkDiskSpaceModule as CheckDiskSpace) : checkDiskSpaceModule.default;

const dir = mkdtempSync(join(tmpdir(), 'recgw-free-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('freeBytesOnFileSystem', () => {
  it('agrees with check-disk-space (df), the package the product names', async () => {
    const ours = await freeBytesOnFileSystem(dir);
    const theirs = (await checkDiskSpace(dir)).free;
    expect(ours).toBeGreaterThan(0);
    // Others write to this disk meanwhile; df also rounds to KiB.
    expect(Math.abs(ours - theirs)).toBeLessThan(256 * 1024 ** 2);
  });

  it('measures a path that does not exist yet on its nearest existing parent', async () => {
    const parent = await freeBytesOnFileSystem(dir);
    const missing = await freeBytesOnFileSystem(join(dir, 'not', 'yet', 'there'));
    expect(Math.abs(missing - parent)).toBeLessThan(256 * 1024 ** 2);
  });

  it('fails clearly where a path cannot be measured (a file in the way)', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    await expect(freeBytesOnFileSystem(join(file, 'below'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
