import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// guacamole-lite 1.2.0 is CommonJS without type declarations; only its server class is used here.
const GuacamoleLite = require('guacamole-lite') as new (
  ws: { server: Server },
  guacd: { host: string; port: number },
  client: Record<string, unknown>,
) => { close(): void };

export interface RunningGuacamoleLite {
  /** ws:// URL the client connects to (token goes in ?token=). */
  url: string;
  close(): Promise<void>;
}

/**
 * guacamole-lite 1.2.0 as published, in this process, on a random loopback port, pointed at a
 * guacd (stand-in): the compatibility tests' and the relay bench's reference. `clientOptions`
 * are added to its client options (e.g. maxInactivityTime).
 */
export async function startGuacamoleLite(
  guacd: { host: string; port: number },
  key: Buffer,
  clientOptions: Record<string, unknown> = {},
): Promise<RunningGuacamoleLite> {
  const server = createServer();
  // It console.logs every connection whatever its log level (one of its defects): silenced
  // while it runs, so test and bench output stays readable.
  const consoleLog = console.log;
  console.log = () => undefined;
  // A plain object: it copies own properties, and FakeGuacd's host and port are getters.
  const lite = new GuacamoleLite({ server }, { host: guacd.host, port: guacd.port }, {
    crypt: { cypher: 'AES-256-CBC', key },
    log: { level: 0, stdLog: () => undefined, errorLog: () => undefined },
    ...clientOptions,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    async close() {
      lite.close(); // also removes the SIGTERM/SIGINT handlers it installed
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      console.log = consoleLog;
    },
  };
}
