import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, constants, copyFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RecgwError } from '../errors.js';
import type { ObjectStore, PutBody, PutOptions, PutResult, StoredObject } from './object-store.js';

/**
 * file:// store: objects are files under `root`, at the same keys S3 would use. Each file is
 * written to a temporary name in the same folder, fsynced, then renamed, and the folder is
 * fsynced: a crash leaves either no file or the whole file under the final name, never half a
 * clip. (A leftover `.<name>.tmp-*` is debris from a crash and safe to delete.)
 */
export class LocalStore implements ObjectStore {
  readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.location = `file://${this.root}`;
  }

  /** The file a key maps to; refuses keys that would leave the root (defence in depth). */
  pathOf(key: string): string {
    const path = resolve(this.root, key);
    if (!path.startsWith(this.root + sep) || key.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new RecgwError('RECGW_ERR_UPLOAD_LOCATION', `key "${key}" would leave the upload folder ${this.root}`);
    }
    return path;
  }

  async put(key: string, body: PutBody, _options: PutOptions): Promise<PutResult> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${randomBytes(6).toString('hex')}`);
    try {
      if ('path' in body) {
        // copy_file_range/reflink where the kernel offers it: as fast as cp.
        await copyFile(body.path, tmp);
      } else {
        await pipeline(body.stream, createWriteStream(tmp, { flags: 'wx' }));
      }
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await syncDir(dir);
    const st = await stat(path);
    return { key, bytes: st.size };
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const st = await stat(this.pathOf(key));
      return { bytes: st.size, contentType: undefined, metadata: {} };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    await stat(path); // fail now (ENOENT) rather than on the first read
    return createReadStream(path);
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && !e.name.startsWith('.')) {
          const key = relative(this.root, p).split(sep).join('/');
          if (key.startsWith(prefix)) out.push(key);
        }
      }
    };
    await walk(this.root);
    return out.sort();
  }

  async probe(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await access(this.root, constants.W_OK);
  }

  close(): void {}
}

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
