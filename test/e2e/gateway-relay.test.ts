import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAll } from '../../src/protocol/index.js';
import { FakeGuacd, INJECTED_AUDIO_STREAM, INJECTED_CLIPBOARD_STREAM } from '../support/fake-guacd.js';
import { GatewayHarness, TunnelClient } from '../support/gateway-harness.js';
import { waitFor } from '../support/wait-for.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');

// SSH's recording is 0.7 MB: a smaller segment size still makes it roll over several times.
describe.each([
  ['vnc-desktop', 1024 * 1024],
  ['ssh-terminal', 256 * 1024],
  ['rdp-desktop', 1024 * 1024],
] as const)('relay of the %s recording', (name, segmentBytes) => {
  it('client gets exactly what guacd sent; segments hold it less audio/clipboard, plus mouse lines', async () => {
    const protocol = name.split('-')[0]!;
    const guacd = await FakeGuacd.start({ replay: join(FIXTURES, `${name}.gz`), chunkSize: 16 * 1024, inject: { audio: true, clipboard: true }, afterReplay: 'hold' });
    const h = await GatewayHarness.start(guacd, { env: { RECORDING_SEGMENT_BYTES: String(segmentBytes) } });
    try {
      const sessionId = `e2e-${name}`;
      const client = TunnelClient.connect(h.url, h.token({ connection: { type: protocol as 'vnc', settings: { hostname: 'desk', password: 'pw' } }, session: { id: sessionId, username: 'alice' } }));
      let mice = 0;
      client.onSync((_ts, n) => {
        // A few mouse moves, as a browser sends them, after some syncs.
        if (n % 50 === 1) {
          client.send(`5.mouse,3.${100 + n % 900},3.200,1.0;`);
          mice++;
        }
      });
      await client.opened;
      expect(client.ws.protocol).toBe('guacamole');
      await waitFor(() => guacd.connections.length === 1);
      const conn = guacd.connections[0]!;
      await conn.replayed;
      const idLine = Buffer.from(`0.,${conn.id.length}.${conn.id};`);
      const sent = conn.sentAfterReady();
      await waitFor(() => client.received().length >= idLine.length + sent.length);
      await waitFor(() => conn.clientInstructions.filter((i) => i.opcode === 'mouse').length === mice);
      client.ws.close();
      await client.closed;
      await conn.closed;
      // wait for the gateway to seal
      await waitFor(() => h.gateway.sessionCount === 0);

      expect(client.parseError).toBeUndefined();
      expect(client.messages.every((m) => !m.isBinary)).toBe(true);
      const got = client.received();
      const want = Buffer.concat([idLine, sent]);
      if (!got.equals(want)) {
        let i = 0;
        while (i < got.length && got[i] === want[i]) i++;
        throw new Error(`received ${got.length} bytes, sent ${want.length}; first difference at ${i}: got ${JSON.stringify(got.subarray(i - 40, i + 60).toString())} want ${JSON.stringify(want.subarray(i - 40, i + 60).toString())}`);
      }

      const { files, journal } = await h.segments(sessionId);
      expect(files.length).toBeGreaterThan(1);
      for (const f of files) {
        expect(f.length).toBeLessThanOrEqual(segmentBytes);
        expect(f[f.length - 1]).toBe(0x3b);
      }
      expect(journal.segments.every((s) => s.state !== 'recording')).toBe(true);
      const recorded = parseAll(Buffer.concat(files));
      const mouseLines = recorded.filter((i) => i.opcode === 'mouse' && i.argCount === 4);
      expect(mouseLines.length).toBe(mice);
      const withoutMouse = Buffer.concat(recorded.filter((i) => !(i.opcode === 'mouse' && i.argCount === 4)).map((i) => i.raw));
      const expected = Buffer.concat(
        parseAll(sent)
          .filter((i) => ![INJECTED_AUDIO_STREAM, INJECTED_CLIPBOARD_STREAM].includes(i.arg(0)) || !['audio', 'clipboard', 'blob', 'end'].includes(i.opcode))
          .map((i) => i.raw),
      );
      expect(withoutMouse.equals(expected)).toBe(true);
      // the stand-in saw the browser's mouse moves, never before its first sync
      const moves = conn.clientInstructions.filter((i) => i.opcode === 'mouse');
      expect(moves.length).toBe(mice);
      expect(moves.every((m) => m.syncsSentBefore > 0)).toBe(true);
    } finally {
      await h.stop();
      await guacd.close();
    }
  });
});
