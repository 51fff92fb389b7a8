// Starts a relay of bench/relay-server.ts in a child process of its own and talks to it over
// IPC: the relay benchmarks (relay.ts, latency.ts) run every relay this way, so each has its own
// process and CPU figures, as in production where guacd and the browser are elsewhere.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { RelayKind } from './relay-server.js';

/** A relay under test, wherever it runs: its process's CPU time so far, all threads and main only. */
export interface Relay {
  url: string;
  cpuSeconds(): Promise<{ all: number; main: number }>;
  close(): Promise<void>;
}

interface ChildMessage {
  type: 'ready' | 'cpu';
  url?: string;
  user?: number;
  system?: number;
  mainThread?: number;
}

function nextMessage(child: ChildProcess, type: ChildMessage['type']): Promise<ChildMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: ChildMessage): void => {
      if (msg.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(msg);
    };
    const onExit = (code: number | null): void => reject(new Error(`relay child exited (${code}) waiting for ${type}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/**
 * Forks bench/relay-server.ts as a `kind` relay in front of the guacd stand-in at host:port.
 * BENCH_RELAY_NODE_ARGS adds node flags to the child (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof");
 * BENCH_RELAY_STDOUT=1 shows the child's stdout.
 */
export async function startChildRelay(kind: RelayKind, guacd: { host: string; port: number }, key: Buffer): Promise<Relay> {
  const child = fork(join(import.meta.dirname, 'relay-server.ts'), [kind, guacd.host, String(guacd.port), key.toString('hex')], {
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter(Boolean)],
    stdio: ['ignore', process.env.BENCH_RELAY_STDOUT ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  });
  const ready = await nextMessage(child, 'ready');
  return {
    url: ready.url!,
    cpuSeconds: async () => {
      const reply = nextMessage(child, 'cpu');
      child.send({ type: 'cpu' });
      const { user, system, mainThread } = await reply;
      return { all: (user! + system!) / 1e6, main: mainThread! / 1e6 };
    },
    close: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      await exited;
    },
  };
}
