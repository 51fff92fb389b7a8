import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAll } from '../../src/protocol/index.js';
import { Chromium } from '../support/guac-browser.js';
import { waitForAsync } from '../support/wait-for.js';

// `recgw demo` as a person runs it: the launcher in bin/, compiled dist/, a fresh folder, port 0.
// The printed address opens in Chromium and shows the replayed VNC desktop live; SIGTERM ends it
// cleanly with the session's segment sealed in the spool.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/recgw');

interface DemoStatus {
  states: number[];
  errors: Array<{ code: number; message: string }>;
  syncs: number;
  width: number;
  height: number;
  variance: number;
}

let browser: Chromium;
let cwd: string;

beforeAll(async () => {
  ensureBuilt();
  [browser, cwd] = await Promise.all([Chromium.launch(), mkdtemp(join(tmpdir(), 'recgw-demo-'))]);
});

afterAll(async () => {
  await browser?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe('recgw demo', () => {
  it('prints a URL whose page shows the live replayed session; SIGTERM exits 0 with the segment sealed', async () => {
    const child = spawn(process.execPath, [BIN, 'demo'], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', GATEWAY_PORT: '0', RECORDING_MIN_FREE_BYTES: '1MiB', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collect(child);
    try {
      const url = await waitForUrl(out, child);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/demo\?token=/);
      // The token is for the person at the terminal only: no log line carries it.
      const token = decodeURIComponent(new URL(url).searchParams.get('token')!);
      expect(token.length).toBeGreaterThan(40);

      // The status routes still answer on the same port.
      const health = await fetch(new URL('/healthz', url));
      expect(health.status).toBe(200);

      const page = await browser.newPage();
      await page.goto(url);
      const status = (): Promise<DemoStatus> => page.evaluate('window.recgwDemo.status()') as Promise<DemoStatus>;
      await waitForAsync(async () => {
        const s = await status().catch(() => undefined);
        return s !== undefined && s.states.at(-1) === 3 && s.syncs > 5 && s.variance > 0;
      }, 20_000);
      const s = await status();
      expect(s.errors).toEqual([]);
      expect(s.states.at(-1)).toBe(3); // Guacamole.Client.State.CONNECTED
      expect({ width: s.width, height: s.height }).toEqual({ width: 1024, height: 768 });
      expect(s.variance).toBeGreaterThan(0);
      await page.screenshot({ path: '/tmp/recgw-demo.png' });
      // A person moving the mouse over the picture (it starts 32 px down, under the header).
      await page.mouse.move(300, 300);
      await page.mouse.move(310, 320);
      await new Promise((resolve) => setTimeout(resolve, 300));

      child.kill('SIGTERM');
      const exit = await exited(child);
      expect(exit).toEqual({ code: 0, signal: null });
      await page.close();

      expect(out.text).not.toContain(token);
      const sessions = join(cwd, 'data/spool/sessions');
      const ids = await readdir(sessions);
      expect(ids.length).toBe(1);
      const journal = JSON.parse(await readFile(join(sessions, ids[0]!, 'session.json'), 'utf8')) as {
        protocol?: string;
        segments: Array<{ file: string; state: string; bytes: number }>;
      };
      expect(journal.segments.length).toBeGreaterThanOrEqual(1);
      for (const seg of journal.segments) {
        // Sealed at shutdown; the encode queue may already have picked it up.
        expect(seg.state).not.toBe('recording');
        expect(seg.bytes).toBeGreaterThan(1000);
        expect((await stat(join(sessions, ids[0]!, seg.file))).size).toBe(seg.bytes);
      }
      const recorded = await readFile(join(sessions, ids[0]!, journal.segments[0]!.file));
      expect(recorded.subarray(-1).toString()).toBe(';');
      expect(recorded.includes('4.sync,')).toBe(true);
      const mice = parseAll(recorded).filter((i) => i.opcode === 'mouse' && i.argCount === 4);
      expect(mice.map((m) => [m.intArg(0), m.intArg(1)])).toContainEqual([310, 288]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

/** Rebuilds dist/ when any src/ file is newer than it (npm test builds first anyway). */
function ensureBuilt(): void {
  const built = join(ROOT, 'dist/cli/demo.js');
  const newestSrc = newestMtime(join(ROOT, 'src'));
  if (existsSync(built) && existsSync(join(ROOT, 'dist/demo/demo.js')) && statSync(built).mtimeMs >= newestSrc) return;
  // tsc emits even when some file elsewhere does not typecheck (the typecheck step reports
  // that); this test only needs the JavaScript.
  spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'ignore' });
  if (!existsSync(built)) throw new Error('npm run build did not produce dist/cli/demo.js');
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function collect(child: ChildProcess): { text: string } {
  const out = { text: '' };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (t: string) => (out.text += t));
  child.stderr!.on('data', (t: string) => (out.text += t));
  return out;
}

async function waitForUrl(out: { text: string }, child: ChildProcess): Promise<string> {
  let url: string | undefined;
  await waitForAsync(async () => {
    if (child.exitCode !== null) throw new Error(`recgw demo exited (${child.exitCode}): ${out.text}`);
    url = /recgw demo: open (\S+)/.exec(out.text)?.[1];
    return url !== undefined;
  }, 20_000);
  return url!;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
