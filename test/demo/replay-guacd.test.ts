import { describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { encodeInstruction, GuacamoleParser, type Instruction } from '../../src/protocol/index.js';
import { FakeGuacd } from '../../src/demo/replay-guacd.js';

// The stand-in's looping, as `recgw demo` uses it: endless timed loops whose sync clock keeps
// moving forward, stopping as soon as the client leaves.

const RECORDING = Buffer.from(
  [
    encodeInstruction('size', 0, 64, 48),
    encodeInstruction('sync', 1000),
    encodeInstruction('rect', 0, 0, 0, 8, 8),
    encodeInstruction('sync', 1040),
    encodeInstruction('sync', 1040),
    encodeInstruction('sync', 1080),
  ].join(''),
);

function handshake(guacd: FakeGuacd): { socket: Socket; received: Instruction[] } {
  const socket = connect(guacd.port, guacd.host);
  const received: Instruction[] = [];
  const parser = new GuacamoleParser((ins) => {
    received.push(ins);
    if (ins.opcode === 'args') {
      socket.write(encodeInstruction('size', 1024, 768, 96) + encodeInstruction('audio') + encodeInstruction('video') + encodeInstruction('image') + encodeInstruction('connect', 'VERSION_1_5_0', 'host'));
    }
  });
  socket.on('data', (chunk: Buffer) => parser.push(chunk));
  socket.write(encodeInstruction('select', 'vnc'));
  return { socket, received };
}

describe('FakeGuacd loops', () => {
  it('shifts each later loop past the previous one so sync timestamps never go back', async () => {
    const guacd = await FakeGuacd.start({ replay: RECORDING, speed: 20, loops: 3 });
    try {
      const { socket, received } = handshake(guacd);
      await new Promise((resolve) => socket.once('close', resolve));
      const syncs = received.filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
      // span 80 ms + 1 s gap per loop
      expect(syncs).toEqual([1000, 1040, 1040, 1080, 2080, 2120, 2120, 2160, 3160, 3200, 3200, 3240]);
      expect(received.filter((i) => i.opcode === 'rect').length).toBe(3);
    } finally {
      await guacd.close();
    }
  });

  it('an endless loop ends when the client leaves', async () => {
    const guacd = await FakeGuacd.start({ replay: RECORDING, speed: 50, loops: Number.POSITIVE_INFINITY, keepSent: false, keepReceived: false });
    try {
      const { socket, received } = handshake(guacd);
      while (received.filter((i) => i.opcode === 'sync').length < 8) await new Promise((resolve) => setTimeout(resolve, 10));
      socket.destroy();
      const conn = guacd.connections[0]!;
      await conn.closed;
      const sent = conn.syncsSent;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(conn.syncsSent).toBe(sent); // the loop stopped, it does not spin on a closed socket
      expect(conn.sentChunks.length).toBe(0);
      expect(conn.clientInstructions.length).toBe(0);
    } finally {
      await guacd.close();
    }
  });
});

describe('FakeGuacd timeSyncs (bench/latency.ts)', () => {
  it('times each sync from its write to the client acknowledging it', async () => {
    const guacd = await FakeGuacd.start({ replay: RECORDING, speed: 4, timeSyncs: true, afterReplay: 'hold' });
    try {
      const { socket, received } = handshake(guacd);
      const acked = new Set<number>();
      // Acknowledge each sync 30 ms after it arrives, except 1080, which is never answered.
      const timer = setInterval(() => {
        for (const ins of received) {
          const ts = ins.opcode === 'sync' ? ins.intArg(0) : undefined;
          if (ts === undefined || acked.has(ts) || ts === 1080) continue;
          acked.add(ts);
          setTimeout(() => socket.write(encodeInstruction('sync', ts)), 30);
        }
      }, 1);
      const conn = () => guacd.connections[0]!;
      while (guacd.connections.length === 0 || conn().syncRoundTrips.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      clearInterval(timer);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // 1000 and 1040 answered once each (1040 is sent twice, timed from its first write); 1080 waits.
      expect(conn().syncRoundTrips.length).toBe(2);
      for (const rtt of conn().syncRoundTrips) {
        expect(rtt).toBeGreaterThanOrEqual(29);
        expect(rtt).toBeLessThan(1000);
      }
      expect(conn().syncSentAt.has(1080)).toBe(true);
      expect(conn().syncSentAt.has(1000)).toBe(false);
      socket.destroy();
    } finally {
      await guacd.close();
    }
  });
});
