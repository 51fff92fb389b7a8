// Runs before `npm test`. The browser test drives Debian's chromium through playwright-core
// (playwright's own browser download cannot work offline), and the page-cache tests need
// native/page-cache, which `npm ci` builds when a compiler is there. On a fresh Debian machine,
// install what is missing when we may; otherwise say exactly what is missing.
import { existsSync, statSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
let aptUpdated = false;

function aptInstall(packages) {
  if (!aptUpdated) execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  aptUpdated = true;
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
}

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  if (!isRoot) {
    console.error(`recgw tests need Chromium at ${CHROMIUM}: run "sudo apt-get install -y chromium" (or set CHROMIUM_PATH)`);
    process.exit(1);
  }
  console.error('installing Debian chromium for the browser test...');
  aptInstall(['chromium']);
}

const ADDON = join(root, 'native', 'page-cache', 'build', 'Release', 'recgw_page_cache.node');
const SOURCE = join(root, 'native', 'page-cache', 'page_cache.c');
// Built before its source last changed (a pull that added a call): build it again.
const stale = () => statSync(SOURCE).mtimeMs > statSync(ADDON).mtimeMs;
if (process.platform === 'linux' && (!existsSync(ADDON) || stale())) {
  const missing = ['python3', 'make', 'g++'].filter((c) => !onPath(c));
  if (missing.length > 0) {
    if (!isRoot) {
      console.error(`recgw tests need native/page-cache built: run "sudo apt-get install -y ${missing.join(' ')}" and "npm run build:native"`);
      process.exit(1);
    }
    console.error(`installing ${missing.join(', ')} to build native/page-cache...`);
    aptInstall(missing);
  }
  execFileSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--required'], { stdio: 'inherit' });
}
