import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Gateway } from '../../src/gateway/gateway.js';
import type { RecordingStartInfo, SessionRecorder } from '../../src/gateway/recording-port.js';
import { encryptToken } from '../../src/gateway/token.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import { encodeInstruction, parseAll } from '../../src/protocol/index.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { GatewayHarness, TEST_TOKEN_KEY, TunnelClient } from '../support/gateway-harness.js';
import { startGuacamoleLite } from '../support/guacamole-lite.js';
import { waitFor } from '../support/wait-for.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');
const require = createRequire(import.meta.url);
// guacamole-lite 1.2.0 is CommonJS without type declarations; its token encryption is used here.
const Crypt = require('guacamole-lite/lib/Crypt.js') as new (cypher: string, key: Buffer) => { encrypt(data: unknown): string };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** guacamole-lite 1.2.0 as published, closed after the test. */
async function startLite(guacd: FakeGuacd): Promise<string> {
  const lite = await startGuacamoleLite(guacd, TEST_TOKEN_KEY);
  cleanups.push(() => lite.close());
  return lite.url;
}

async function fake(opts: Parameters<typeof FakeGuacd.start>[0]): Promise<FakeGuacd> {
  const g = await FakeGuacd.start(opts);
  cleanups.push(() => g.close());
  return g;
}

async function harness(g: FakeGuacd): Promise<GatewayHarness> {
  const h = await GatewayHarness.start(g);
  cleanups.push(() => h.stop());
  return h;
}

const SSH = { type: 'ssh' as const, settings: { hostname: 'shell', username: 'bob', password: 'pw' } };

describe('compatibility with guacamole-lite 1.2.0', () => {
  it('one token (made by encryptToken) works through guacamole-lite and through recgw, with the same instructions', async () => {
    const g = await fake({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const liteUrl = await startLite(g);
    const h = await harness(g);
    const token = encryptToken({ connection: SSH, session: { id: 'compat' } }, TEST_TOKEN_KEY);

    const viaLite = TunnelClient.connect(liteUrl, token);
    await viaLite.closed;
    const viaUs = TunnelClient.connect(h.url, token);
    await viaUs.closed;

    expect(g.connections).toHaveLength(2);
    const [liteConn, ourConn] = g.connections;
    // Both did guacd's handshake with the token's settings.
    for (const c of [liteConn!, ourConn!]) {
      expect(c.selector).toBe('ssh');
      expect(c.connectArgs.get('hostname')).toBe('shell');
      expect(c.connectArgs.get('username')).toBe('bob');
      expect(c.handshake.get('size')).toEqual(['1024', '768', '96']);
    }
    const strip = (t: TunnelClient) => t.instructions.filter((i) => i.opcode !== '').map((i) => i.raw.toString());
    expect(strip(viaUs)).toEqual(strip(viaLite));
    expect(strip(viaUs).join('')).toBe(ourConn!.sentAfterReady().toString());
    // Both send the tunnel's connection id first.
    expect(viaLite.instructions[0]!.opcode).toBe('');
    expect(viaUs.instructions[0]!.raw.toString()).toBe(encodeInstruction('', ourConn!.id));
  });

  it("a token made by guacamole-lite's own Crypt works with recgw", async () => {
    const g = await fake({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const h = await harness(g);
    const token = new Crypt('AES-256-CBC', TEST_TOKEN_KEY).encrypt({ connection: SSH, session: { id: 'their-token' } });
    const c = TunnelClient.connect(h.url, token);
    await c.closed;
    expect(c.errors()).toHaveLength(0);
    expect(g.connections[0]!.connectArgs.get('hostname')).toBe('shell');
    await waitFor(() => h.gateway.sessionCount === 0);
    expect((await h.segments('their-token')).files.length).toBe(1);
  });
});

describe("guacamole-lite's defects are not reachable through recgw", () => {
  it('split UTF-8 across guacd chunks: no crash, bytes intact', async () => {
    const replay = Buffer.from(encodeInstruction('name', 'Grüße 🎉 日本') + encodeInstruction('sync', 5));
    const g = await fake({ replay, chunkSize: 1, chunkDelayMs: 1 });
    const h = await harness(g);
    const c = TunnelClient.connect(h.url, h.token({ connection: SSH }));
    await c.closed;
    expect(c.parseError).toBeUndefined();
    expect(c.instructions.find((i) => i.opcode === 'name')!.arg(0)).toBe('Grüße 🎉 日本');
  });

  it('garbage tokens cause no unhandled rejection; non-ASCII payloads work', async () => {
    let unhandled = 0;
    const on = (): void => void unhandled++;
    process.on('unhandledRejection', on);
    cleanups.push(() => void process.off('unhandledRejection', on));
    const g = await fake({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const h = await harness(g);
    for (const t of ['%%%', 'e30=', 'eyJpdiI6MX0=', '']) {
      const c = TunnelClient.connect(h.url, t);
      await c.closed;
      expect(c.errors()).toHaveLength(1);
    }
    const c = TunnelClient.connect(h.url, h.token({ connection: { type: 'ssh', settings: { username: 'jürgen', password: 'пароль' } }, session: { id: 'nonascii', username: 'Jürgen Öß' } }));
    await c.closed;
    expect(c.errors()).toHaveLength(0);
    expect(g.connections.at(-1)!.connectArgs.get('username')).toBe('jürgen');
    expect(g.connections.at(-1)!.connectArgs.get('password')).toBe('пароль');
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toBe(0);
  });

  it('installs no signal handlers and never writes to the console', async () => {
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) => vi.spyOn(console, m));
    cleanups.push(() => spies.forEach((s) => s.mockRestore()));
    const g = await fake({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const h = await harness(g);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    const c = TunnelClient.connect(h.url, h.token({ connection: SSH }));
    c.send('3.key,3.120,1.1;');
    await c.closed;
    await TunnelClient.connect(h.url, 'bad').closed;
    for (const s of spies) expect(s).not.toHaveBeenCalled();
  });

  it('settings and recording are settled before guacd is dialled (no unawaited callback)', async () => {
    const g = await fake({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const h = await harness(g);
    // The real recorder, slowed down: guacd must not be contacted until it has started.
    const started: number[] = [];
    const slow: SessionRecorder = {
      checkWritable: () => h.recorder.checkWritable(),
      start: async (info: RecordingStartInfo) => {
        await new Promise((r) => setTimeout(r, 300));
        started.push(g.connections.length);
        return h.recorder.start(info);
      },
    };
    const server = createServer();
    const gw = new Gateway({ config: h.config, recorder: slow, loggers: createTestLoggers() });
    gw.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await gw.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const c = TunnelClient.connect(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, h.token({ connection: SSH, session: { id: 'slow' } }));
    await c.closed;
    expect(started).toEqual([0]);
    expect(g.connections).toHaveLength(1);
  });

  it('instructions in the same TCP chunk as ready reach the client and the recording', async () => {
    const replay = Buffer.from(encodeInstruction('size', 0, 640, 480) + encodeInstruction('sync', 1) + encodeInstruction('sync', 2));
    const g = await fake({ replay, readyWithFirstChunk: true });
    const h = await harness(g);
    const c = TunnelClient.connect(h.url, h.token({ connection: SSH, session: { id: 'early' } }));
    await c.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    expect(c.instructions.map((i) => i.opcode)).toEqual(['', 'size', 'sync', 'sync']);
    expect(parseAll(Buffer.concat((await h.segments('early')).files)).map((i) => i.raw.toString()).join('')).toBe(replay.toString());
  });
});
