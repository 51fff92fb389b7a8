import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { allocateBounce, DIRECT_BLOCK, type DirectWriteSupport } from '../../src/recording/direct-write.js';

/**
 * What the file system under `dir` does with O_DIRECT writes, so tests can expect the right
 * thing wherever they run: 'none' (refused: written buffered), 'aligned' (taken from memory on
 * the 4096 grid only, like ext4 and xfs on a disk), 'any' (taken from anywhere, like tmpfs).
 */
export function directIoHere(dir: string, support: DirectWriteSupport): 'none' | 'aligned' | 'any' {
  const path = join(dir, `.direct-probe-${process.pid}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o600);
  } catch {
    return 'none';
  }
  try {
    const block = allocateBounce(2 * DIRECT_BLOCK, support);
    try {
      writeSync(fd, block, 0, DIRECT_BLOCK, 0);
    } catch {
      return 'none';
    }
    try {
      writeSync(fd, block, 1, DIRECT_BLOCK, DIRECT_BLOCK);
      return 'any';
    } catch {
      return 'aligned';
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}
