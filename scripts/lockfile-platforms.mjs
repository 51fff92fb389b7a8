// The npm registry this project installs from mirrors native addons only for some platforms.
// `npm install` then leaves the other platforms' optional packages out of package-lock.json,
// and `npm ci` refuses such a lock ("Missing: @napi-rs/canvas-darwin-arm64@ from lock file").
// This script finds those holes and, with --fix, fills them with entries that name the
// platform (os/cpu/libc) so `npm ci` knows to skip them here. `npm test` runs the check.
import { readFileSync, writeFileSync } from 'node:fs';

const PATH = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(PATH, 'utf8'));
const packages = lock.packages;
const PLATFORM = /-(android|darwin|linux|win32|freebsd)-(arm64|x64|arm|ia32|riscv64|s390x|ppc64)(?:-(gnu|gnueabihf|musl|msvc))?$/;

const missing = [];
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key] || packages[`${path}/node_modules/${name}`]) continue;
    const m = PLATFORM.exec(name);
    if (!m) continue;
    missing.push({ key, version, os: m[1], cpu: m[2], libc: m[3] === 'musl' ? 'musl' : m[3]?.startsWith('gnu') ? 'glibc' : undefined });
  }
}

if (missing.length === 0) process.exit(0);
if (!process.argv.includes('--fix')) {
  console.error(`package-lock.json lacks ${missing.length} platform package(s) (${missing.map((m) => m.key.slice(13)).join(', ')}),`);
  console.error('so `npm ci` would fail. Run: node scripts/lockfile-platforms.mjs --fix');
  process.exit(1);
}
for (const m of missing) {
  packages[m.key] = {
    version: m.version,
    cpu: [m.cpu],
    ...(m.libc ? { libc: [m.libc] } : {}),
    optional: true,
    os: [m.os],
  };
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(PATH, JSON.stringify(lock, null, 2) + '\n');
console.error(`added ${missing.length} platform entries to package-lock.json`);
