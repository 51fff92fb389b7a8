import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/recgw', import.meta.url));

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

/**
 * `recgw serve` as a real child process (the way operators run it), with its JSON log lines
 * collected so tests can wait for events. dist/ must be built (`npm test` builds it first).
 */
export class ServeProcess {
  readonly logs: LogRecord[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<{ match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }> = [];

  private constructor(readonly child: ChildProcess) {
    let partial = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        let rec: LogRecord;
        try {
          rec = JSON.parse(line) as LogRecord;
        } catch {
          rec = { msg: line, level: 'raw' };
        }
        this.logs.push(rec);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.match(rec)) return true;
          w.resolve(rec);
          return false;
        });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(env: Record<string, string>, cwd: string): Promise<{ proc: ServeProcess; port: number }> {
    if (!existsSync(`${ROOT}dist/cli/main.js`)) throw new Error('dist/ is missing: run npm run build (npm test does)');
    const child = spawn(process.execPath, [BIN, 'serve'], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', GATEWAY_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new ServeProcess(child);
    const listening = await Promise.race([
      proc.waitFor((r) => r.msg === 'recgw listening', 20_000),
      proc.exited.then((e) => {
        throw new Error(`recgw serve exited (${e.code ?? e.signal}) before listening: ${proc.stderr}`);
      }),
    ]);
    return { proc, port: Number(listening.port) };
  }

  /** Resolves with the first log line (already seen or coming) that matches. */
  waitFor(match: (r: LogRecord) => boolean, timeoutMs = 30_000): Promise<LogRecord> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.#waiters.push({
        match,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}
