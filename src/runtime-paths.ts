import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Path of the compiled JavaScript for a module next to `fromUrl`. Worker threads and child
 * processes need plain JavaScript: under vitest the caller is src/*.ts, so this maps it to the
 * same place in dist/ (built by `npm run build`, which `npm test` runs first).
 */
export function compiledSibling(fromUrl: string, relativeJs: string): string {
  const here = dirname(fileURLToPath(fromUrl));
  const srcRoot = join(PACKAGE_ROOT, 'src');
  const distRoot = join(PACKAGE_ROOT, 'dist');
  const dir = here.startsWith(srcRoot) ? distRoot + here.slice(srcRoot.length) : here;
  const path = join(dir, relativeJs);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run "npm run build" first`);
  }
  return path;
}
