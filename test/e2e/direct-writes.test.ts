import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAll } from '../../src/protocol/index.js';
import { directWrites } from '../../src/recording/page-cache.js';
import { directIoHere } from '../support/direct-io.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { GatewayHarness, TunnelClient } from '../support/gateway-harness.js';
import { waitFor } from '../support/wait-for.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');
const MiB = 1024 * 1024;

describe('a fast session with direct writes (RECORDING_DIRECT_WRITES, default on)', () => {
  it('records every byte exactly, most of them written straight from the read arenas, across rolls and mouse lines', async () => {
    // vnc-desktop 8 times over as fast as the sockets take it: 39 MB, several 16 MiB segments.
    const guacd = await FakeGuacd.start({ replay: join(FIXTURES, 'vnc-desktop.gz'), loops: 8, chunkSize: 64 * 1024, afterReplay: 'hold' });
    const h = await GatewayHarness.start(guacd, { env: { RECORDING_SEGMENT_BYTES: String(16 * MiB) } });
    try {
      expect(directWrites).toBeDefined();
      const here = directIoHere(h.tmp, directWrites!);
      const sessionId = 'e2e-direct';
      const client = TunnelClient.connect(h.url, h.token({ connection: { type: 'vnc', settings: { hostname: 'desk' } }, session: { id: sessionId } }));
      let mice = 0;
      // Mouse lines added to the recording move guacd's later bytes off their place in memory
      // until the next arena: those go through the bounce buffer, and must still be exact.
      client.onSync((_ts, n) => {
        if (n % 40 === 1) {
          client.send(`5.mouse,3.${100 + (n % 900)},3.200,1.0;`);
          mice++;
        }
      });
      await client.opened;
      await waitFor(() => guacd.connections.length === 1);
      const conn = guacd.connections[0]!;
      await conn.replayed;
      const sent = conn.sentAfterReady();
      await waitFor(() => conn.clientInstructions.filter((i) => i.opcode === 'mouse').length === mice);
      client.ws.close();
      await client.closed;
      await waitFor(() => h.gateway.sessionCount === 0, 20_000);

      const { files, journal } = await h.segments(sessionId);
      expect(files.length).toBeGreaterThanOrEqual(3);
      expect(journal.segments.every((s) => s.state === 'sealed')).toBe(true);
      const recorded = parseAll(Buffer.concat(files));
      expect(recorded.filter((i) => i.opcode === 'mouse' && i.argCount === 4).length).toBe(mice);
      const withoutMouse = Buffer.concat(recorded.filter((i) => !(i.opcode === 'mouse' && i.argCount === 4)).map((i) => i.raw));
      expect(withoutMouse.length).toBe(sent.length);
      expect(withoutMouse.equals(sent)).toBe(true);

      const seals = h.logs.records().filter((r) => r.msg === 'segment sealed');
      expect(seals.length).toBe(files.length);
      const direct = seals.reduce((n, r) => n + (r.direct_bytes as number), 0);
      const bounced = seals.reduce((n, r) => n + (r.bounced_bytes as number), 0);
      const total = files.reduce((n, f) => n + f.length, 0);
      if (here === 'none') {
        expect(direct).toBe(0);
      } else {
        expect(direct).toBeGreaterThan(total / 2);
        // Placed on the grid by the reader, most went straight from the arenas (without the
        // read alignment every block is copied: checked by switching it off).
        expect(bounced).toBeLessThan(direct * 0.25);
      }
    } finally {
      await h.stop();
      await guacd.close();
    }
  });
});
