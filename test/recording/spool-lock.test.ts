import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRecgwError } from '../../src/errors.js';
import { SPOOL_LOCK_FILE, SpoolLock } from '../../src/recording/spool-lock.js';
import { tempSpool } from './helpers.js';

const spool = tempSpool();
afterAll(() => spool.cleanup());

let n = 0;
const freshSpool = (): string => join(spool.dir, `spool-${++n}`);
const lockOf = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, SPOOL_LOCK_FILE), 'utf8')) as Record<string, unknown>;

async function refusal(dir: string): Promise<Error> {
  try {
    await SpoolLock.acquire(dir, 'recover');
  } catch (err) {
    expect(isRecgwError(err, 'RECGW_ERR_SPOOL_IN_USE')).toBe(true);
    return err as Error;
  }
  throw new Error('the lock was taken');
}

describe('SpoolLock', () => {
  it('is taken once, names its holder to the next taker, and is given up on release', async () => {
    const dir = freshSpool();
    const lock = await SpoolLock.acquire(dir, 'serve');
    expect(lockOf(dir)).toMatchObject({ pid: process.pid, command: 'serve', hostname: hostname() });
    const err = await refusal(dir);
    expect(err.message).toContain(`in use by recgw serve (pid ${process.pid}`);
    expect(err.message).toContain(join(dir, SPOOL_LOCK_FILE));
    await lock.release();
    expect(existsSync(join(dir, SPOOL_LOCK_FILE))).toBe(false);
    const again = await SpoolLock.acquire(dir, 'recover');
    await again.release();
  });

  it('refuses while another live process holds it', async () => {
    const dir = freshSpool();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      await SpoolLock.acquire(dir, 'x').then((l) => l.release()); // creates the directory
      writeFileSync(join(dir, SPOOL_LOCK_FILE), JSON.stringify({ pid: child.pid, command: 'serve', hostname: hostname(), started_at: 'then' }));
      expect((await refusal(dir)).message).toContain(`pid ${child.pid}`);
    } finally {
      child.kill();
    }
  });

  it('takes over a lock left by a process that is gone (kill -9), or one cut short while written', async () => {
    const dir = freshSpool();
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    await SpoolLock.acquire(dir, 'x').then((l) => l.release());
    writeFileSync(join(dir, SPOOL_LOCK_FILE), JSON.stringify({ pid: child.pid, command: 'serve', hostname: hostname(), started_at: 'then' }));
    const lock = await SpoolLock.acquire(dir, 'serve');
    expect(lockOf(dir).pid).toBe(process.pid);
    await lock.release();
    writeFileSync(join(dir, SPOOL_LOCK_FILE), '{"pid":12');
    const second = await SpoolLock.acquire(dir, 'serve');
    expect(lockOf(dir).pid).toBe(process.pid);
    await second.release();
  });

  it('takes over when the pid lives on in another program (a restart reused it)', async () => {
    const dir = freshSpool();
    await SpoolLock.acquire(dir, 'x').then((l) => l.release());
    // Our parent is alive, but it started at another time than the lock says.
    writeFileSync(join(dir, SPOOL_LOCK_FILE), JSON.stringify({ pid: process.ppid, command: 'serve', hostname: hostname(), started_at: 'then', process_start: '1' }));
    const lock = await SpoolLock.acquire(dir, 'serve');
    expect(lockOf(dir).pid).toBe(process.pid);
    await lock.release();
  });

  it('refuses a lock held on another host, whose process it cannot see', async () => {
    const dir = freshSpool();
    await SpoolLock.acquire(dir, 'x').then((l) => l.release());
    writeFileSync(join(dir, SPOOL_LOCK_FILE), JSON.stringify({ pid: 1, command: 'serve', hostname: 'elsewhere', started_at: 'then' }));
    expect((await refusal(dir)).message).toContain('pid 1 on elsewhere');
  });
});
