import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GuacStatus, RecgwError } from '../../src/errors.js';
import { resolveConnection } from '../../src/gateway/connection-settings.js';
import { GuacdConnection } from '../../src/gateway/guacd-client.js';
import type { Instruction } from '../../src/protocol/index.js';
import { FakeGuacd } from '../support/fake-guacd.js';

const conn = resolveConnection(
  { connection: { type: 'vnc', settings: { hostname: 'h', password: 'p' } }, session: { id: 's' }, recording: true },
  new URLSearchParams(),
);

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/** A TCP server whose connections get `onSocket` (a misbehaving guacd). */
async function rawServer(onSocket: (s: Socket) => void): Promise<number> {
  const s = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

async function dialError(port: number, timeouts = {}): Promise<RecgwError> {
  try {
    const c = await GuacdConnection.dial({ host: '127.0.0.1', port, connection: conn, ...timeouts });
    c.close();
  } catch (err) {
    expect(err).toBeInstanceOf(RecgwError);
    return err as RecgwError;
  }
  throw new Error('dial succeeded');
}

describe('GuacdConnection', () => {
  it('performs the handshake and delivers what follows ready, from the same chunk on', async () => {
    const g = await FakeGuacd.start({ replay: Buffer.from('4.sync,1.1;4.sync,1.2;') });
    try {
      const c = await GuacdConnection.dial({ host: g.host, port: g.port, connection: conn });
      expect(c.connectionId).toBe(g.connections[0]!.id);
      expect(c.protocolVersion).toBe('VERSION_1_5_0');
      const got: Instruction[] = [];
      const closed = new Promise<RecgwError | undefined>((resolve) => c.start((b) => got.push(...b), resolve));
      expect(await closed).toBeUndefined();
      expect(got.map((i) => i.raw.toString()).join('')).toBe('4.sync,1.1;4.sync,1.2;');
      expect(g.connections[0]!.connectArgs.get('password')).toBe('p');
      expect(g.connections[0]!.connectArgs.get('VERSION')).toBe('VERSION_1_5_0');
    } finally {
      await g.close();
    }
  });

  it('times out a guacd that never answers', async () => {
    const port = await rawServer(() => undefined);
    const err = await dialError(port, { handshakeTimeoutMs: 150 });
    expect(err.code).toBe('RECGW_ERR_GUACD_HANDSHAKE');
    expect(err.guacStatus).toBe(GuacStatus.UPSTREAM_TIMEOUT);
    expect(err.message).toMatch(/150 ms/);
  });

  it("passes guacd's own error on, with its status", async () => {
    const port = await rawServer((s) => s.on('data', () => s.end('5.error,22.Protocol not supported,3.256;')));
    const err = await dialError(port);
    expect(err.code).toBe('RECGW_ERR_GUACD_HANDSHAKE');
    expect(err.guacStatus).toBe(0x0100);
    expect(err.message).toMatch(/Protocol not supported/);
  });

  it('refuses malformed handshake data and an early close', async () => {
    const bad = await rawServer((s) => s.on('data', () => s.write('garbage;')));
    expect((await dialError(bad)).message).toMatch(/malformed/);
    const early = await rawServer((s) => s.on('data', () => s.end()));
    expect((await dialError(early)).message).toMatch(/closed the connection during the handshake/);
  });

  it('reports a closed port as unreachable', async () => {
    const port = await rawServer(() => undefined);
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const err = await dialError(port);
    expect(err.code).toBe('RECGW_ERR_GUACD_UNREACHABLE');
    expect(err.guacStatus).toBe(GuacStatus.UPSTREAM_UNAVAILABLE);
  });

  it('reports guacd closing inside an instruction as an error', async () => {
    const port = await rawServer((s) =>
      s.on('data', (d) => {
        if (d.toString().includes('select')) s.write('4.args,13.VERSION_1_5_0,8.hostname;');
        if (d.toString().includes('connect')) s.end('5.ready,2.$x;4.sync,');
      }),
    );
    const c = await GuacdConnection.dial({ host: '127.0.0.1', port, connection: conn });
    const err = await new Promise<RecgwError | undefined>((resolve) => c.start(() => undefined, resolve));
    expect(err?.message).toMatch(/inside an instruction/);
  });
});
