import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeInstruction, parseAll } from '../../src/protocol/index.js';
import { ARENA_BYTES } from '../../src/protocol/read-arenas.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { GatewayHarness } from '../support/gateway-harness.js';

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/**
 * A WebSocket client that keeps the frames as they came off the wire (ws and browsers show only
 * reassembled messages). Resolves when the server closes the connection.
 */
function rawFrames(url: string): Promise<Frame[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames: Frame[] = [];
    socket.on('connect', () => {
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: guacamole\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        expect(buf.subarray(0, 12).toString()).toBe('HTTP/1.1 101');
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1]! & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          at = 10;
        }
        if (buf.length < at + len) return;
        const frame = { fin: (buf[0]! & 0x80) !== 0, opcode: buf[0]! & 0x0f, payload: Buffer.from(buf.subarray(at, at + len)) };
        buf = buf.subarray(at + len);
        if (frame.opcode === 0x8) {
          socket.end();
          continue;
        }
        frames.push(frame);
      }
    });
    socket.on('close', () => resolve(frames));
    socket.on('error', reject);
  });
}

describe('frames to the browser', () => {
  it('sends a batch that is two slices as one message in fragments (text, then continuation), never a partial instruction', async () => {
    // An image larger than a read arena ends in a fresh arena, joined into a buffer of its own;
    // the instructions after it in the same read are a slice of that arena: two slices.
    const big = encodeInstruction('img', '1', '14', '0', 'image/png', '0', '0') + encodeInstruction('blob', '1', 'A'.repeat(ARENA_BYTES + 70_000));
    // Drawing after the image, in the same TCP write as the image's end.
    const small = Array.from({ length: 50 }, (_, k) => encodeInstruction('rect', '0', k, k, 1, 1)).join('');
    const stream = Buffer.from(encodeInstruction('sync', '999') + big + small + encodeInstruction('sync', '1000'));
    const guacd = await FakeGuacd.start({ replay: stream, chunkSize: 32 * 1024 });
    const h = await GatewayHarness.start(guacd);
    try {
      const token = h.token({ connection: { type: 'vnc', settings: { hostname: 'desk' } }, session: { id: 'frames' }, recording: false });
      const frames = await rawFrames(`${h.url}?token=${encodeURIComponent(token)}`);
      // Reassemble messages as a browser does, checking the opcodes as it would.
      const messages: Buffer[] = [];
      let open: Buffer[] | undefined;
      for (const f of frames) {
        if (open === undefined) expect(f.opcode).toBe(0x1);
        else expect(f.opcode).toBe(0x0);
        (open ??= []).push(f.payload);
        if (f.fin) {
          messages.push(Buffer.concat(open));
          open = undefined;
        }
      }
      expect(open).toBeUndefined();
      expect(frames.some((f) => !f.fin)).toBe(true); // the case under test did happen
      for (const m of messages) expect(() => parseAll(m)).not.toThrow();
      const conn = guacd.connections[0]!;
      const idLine = Buffer.from(encodeInstruction('', conn.id));
      expect(Buffer.concat(messages).equals(Buffer.concat([idLine, conn.sentAfterReady()]))).toBe(true);
    } finally {
      await h.stop();
      await guacd.close();
    }
  });
});
