import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RecgwError, errorMessage } from '../errors.js';

/** In the spool's root: who is using the spool. */
export const SPOOL_LOCK_FILE = 'recgw.lock';

interface LockOwner {
  pid: number;
  /** The recgw command holding it: serve, demo, recover. */
  command: string;
  hostname: string;
  started_at: string;
  /** The process's start time (Linux /proc), so a reused pid is not taken for the holder. */
  process_start?: string;
}

/** Lock files this process holds, by path. */
const held = new Set<string>();

/**
 * One gateway per spool. Two processes working one spool would cut each other's open segments
 * (start-up recovery seals whatever is open), encode and upload the same segments twice and
 * race on the journals. `recgw serve` (and demo) and `recgw recover` take this lock; a lock
 * whose process is gone (kill -9, a crash, a container restarted) is taken over.
 */
export class SpoolLock {
  readonly path: string;
  #released = false;

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Takes the spool's lock for `command`. Throws RECGW_ERR_SPOOL_IN_USE, naming the holder,
   * when a live process holds it (or one on another host, whose liveness cannot be told).
   */
  static async acquire(spoolDir: string, command: string): Promise<SpoolLock> {
    try {
      await mkdir(spoolDir, { recursive: true });
    } catch (err) {
      throw unwritable(spoolDir, err);
    }
    const path = join(spoolDir, SPOOL_LOCK_FILE);
    const me: LockOwner = {
      pid: process.pid,
      command,
      hostname: hostname(),
      started_at: new Date().toISOString(),
      ...optional('process_start', processStart(process.pid)),
    };
    // A stale lock is removed and the create retried; of two processes starting at once after
    // a crash, one creates the file and the other then finds it held.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o640);
        try {
          await fh.writeFile(`${JSON.stringify(me)}\n`);
        } finally {
          await fh.close();
        }
        held.add(path);
        return new SpoolLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(spoolDir, err);
      }
      const owner = await readOwner(path);
      if (owner && holds(owner, path)) {
        throw new RecgwError(
          'RECGW_ERR_SPOOL_IN_USE',
          `spool ${spoolDir} is in use by recgw ${owner.command} (pid ${owner.pid} on ${owner.hostname}, since ${owner.started_at}); ` +
            `stop it first, or remove ${path} if that process is gone`,
        );
      }
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw unwritable(spoolDir, err);
      });
    }
    throw new RecgwError('RECGW_ERR_SPOOL_IN_USE', `spool ${spoolDir}: could not take ${path}; another recgw is starting on it`);
  }

  /** Gives the spool up (idempotent); the file goes only if it is still this process's. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    held.delete(this.path);
    const owner = await readOwner(this.path);
    if (owner?.pid === process.pid && owner.hostname === hostname()) await unlink(this.path).catch(() => undefined);
  }
}

/** Whether the lock's owner still holds it, as far as this host can tell. */
function holds(owner: LockOwner, path: string): boolean {
  if (owner.hostname !== hostname()) return true;
  if (owner.pid === process.pid) return held.has(path);
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: alive, someone else's; ESRCH: gone.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // The pid is alive, but after a restart it may be another program's now.
  const start = processStart(owner.pid);
  return owner.process_start === undefined || start === undefined || start === owner.process_start;
}

/** The lock's contents; undefined when it is gone or unreadable (a crash mid-write: stale). */
async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.hostname !== 'string') return undefined;
    return { pid: o.pid, command: String(o.command), hostname: o.hostname, started_at: String(o.started_at), ...optional('process_start', o.process_start) };
  } catch {
    return undefined;
  }
}

/** Linux: field 22 of /proc/<pid>/stat, the start time in clock ticks since boot. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function unwritable(spoolDir: string, err: unknown): RecgwError {
  return new RecgwError('RECGW_ERR_SPOOL_UNWRITABLE', `cannot use the spool ${spoolDir} (${errorMessage(err)}); check RECORDING_SPOOL_DIR`, { cause: err });
}
