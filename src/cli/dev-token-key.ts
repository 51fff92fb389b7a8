import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Outside production TOKEN_KEY may be left unset so the embedded default runs with no set-up:
 * a random key is made once and kept beside the spool (mode 0600), and `recgw token` reads the
 * same file, so tokens made on this machine work with this gateway.
 */
export function devTokenKeyPath(spoolDir: string): string {
  return join(dirname(spoolDir), 'token.key');
}

export function loadOrCreateDevTokenKey(spoolDir: string): { key: Buffer; path: string; created: boolean } {
  const path = devTokenKeyPath(spoolDir);
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (Buffer.byteLength(text) === 32) return { key: Buffer.from(text, 'utf8'), path, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // 24 random bytes → 32 base64 characters: a 32-byte key that is also printable.
  const text = randomBytes(24).toString('base64');
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text + '\n', { mode: 0o600 });
  return { key: Buffer.from(text, 'utf8'), path, created: true };
}
