// Builds native/page-cache (npm's install step runs this; so does `npm test`'s pretest when the
// addon is missing). The gateway runs without it, so by default a failed build only warns;
// --required makes it an error.
//
// node-gyp is the copy npm ships (npm hands its path to lifecycle scripts). Node's own headers
// are used when they sit beside the node binary (official and NodeSource builds have them), so
// the build needs no download; otherwise node-gyp's own rules apply (nodedir or a download).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const required = process.argv.includes('--required');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addonDir = join(root, 'native', 'page-cache');
const ADDON = join(addonDir, 'build', 'Release', 'recgw_page_cache.node');

function fail(message, detail = '') {
  const text = `recgw: ${message}` + (detail ? `\n${detail}` : '');
  if (required) {
    console.error(text);
    process.exit(1);
  }
  console.warn(
    `${text}\nrecgw: the gateway works without it; recordings then stay in the page cache until the kernel evicts them (README, "Page cache").`,
  );
  process.exit(0);
}

if (process.platform !== 'linux') {
  console.warn('recgw: native/page-cache is for Linux only (sync_file_range); skipped');
  process.exit(0);
}

function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  // Run by hand: npm's own copy, found from npm's location.
  const npmCli = process.env.npm_execpath;
  if (npmCli) {
    const bundled = join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return [process.execPath, bundled];
  }
  for (const prefix of [join(dirname(process.execPath), '..', 'lib'), '/usr/lib', '/usr/local/lib']) {
    const bundled = join(prefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return [process.execPath, bundled];
  }
  return ['node-gyp'];
}

const args = ['rebuild'];
const headers = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(headers, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${headers}`);
}
const [command, ...prefix] = nodeGyp();
const result = spawnSync(command, [...prefix, ...args], { cwd: addonDir, encoding: 'utf8' });
if (result.error || result.status !== 0 || !existsSync(ADDON)) {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  fail(
    'could not build native/page-cache (it needs python3, make, a C compiler and Node\'s headers)',
    result.error ? String(result.error) : output,
  );
}
console.log('recgw: built native/page-cache');
