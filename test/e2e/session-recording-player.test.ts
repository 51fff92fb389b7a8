import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { DisplayModel } from '../../src/encoding/display-model.js';
import { parseAll } from '../../src/protocol/index.js';
import { upToSync } from '../support/files.js';
import { FakeGuacd, loadReplay } from '../support/fake-guacd.js';
import { GatewayHarness, TunnelClient } from '../support/gateway-harness.js';
import { Chromium, PageServer, openTestPage, type PlaybackResult } from '../support/guac-browser.js';
import { waitFor } from '../support/wait-for.js';

// "A recording written this way plays in guacamole-common-js's SessionRecording player": a
// session relayed and recorded by the gateway (rolled into several segments, with the client's
// mouse lines) is concatenated and played by Guacamole.SessionRecording 1.5.0 in Chromium; and
// "state + segment replays alone in any Guacamole player" (DESIGN.md) is held to the same player.

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');

let browser: Chromium;
let pages: PageServer;

beforeAll(async () => {
  [browser, pages] = await Promise.all([Chromium.launch(), PageServer.start()]);
});

afterAll(async () => {
  await Promise.all([browser?.close(), pages?.close()]);
});

// The player, like the live client, draws one frame per animation frame while it seeks, so a
// seek to the end costs about syncs/60 s: the terminal plays whole (332 syncs), the desktop up to
// its 200th sync (images, several segments).
describe.each([
  ['ssh-terminal', 128 * 1024, Number.POSITIVE_INFINITY],
  ['rdp-desktop', 256 * 1024, 200],
] as const)('gateway recording of %s in Guacamole.SessionRecording', (name, segmentBytes, syncLimit) => {
  it('loads, lasts the sync span of the recording, shows the picture at its end; the last segment opened by the state before it ends on the same picture', async () => {
    const protocol = name.split('-')[0] as 'ssh' | 'rdp';
    const replay = upToSync(await loadReplay(join(FIXTURES, `${name}.gz`)), syncLimit);
    const guacd = await FakeGuacd.start({ replay, chunkSize: 16 * 1024, afterReplay: 'hold' });
    const h = await GatewayHarness.start(guacd, { env: { RECORDING_SEGMENT_BYTES: String(segmentBytes) } });
    let page: Page | undefined;
    try {
      const sessionId = `player-${name}`;
      const client = TunnelClient.connect(h.url, h.token({ connection: { type: protocol, settings: { hostname: 'desk' } }, session: { id: sessionId } }));
      let mice = 0;
      client.onSync((_ts, n) => {
        if (n % 40 === 1) {
          client.send(`5.mouse,3.${100 + (n % 800)},3.300,1.0;`);
          mice++;
        }
      });
      await client.opened;
      await waitFor(() => guacd.connections.length === 1);
      const conn = guacd.connections[0]!;
      await conn.replayed;
      await waitFor(() => client.syncsSeen === conn.syncsSent, 15_000);
      await waitFor(() => conn.clientInstructions.filter((i) => i.opcode === 'mouse').length === mice);
      client.ws.close();
      await conn.closed;
      await waitFor(() => h.gateway.sessionCount === 0);

      const { files } = await h.segments(sessionId);
      expect(files.length).toBeGreaterThan(1);
      const recording = Buffer.concat(files);
      const instructions = parseAll(recording);
      expect(instructions.filter((i) => i.opcode === 'mouse' && i.argCount === 4).length).toBe(mice);
      const syncs = instructions.filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
      const span = syncs.at(-1)! - syncs[0]!;

      page = await openTestPage(browser, pages);
      const url = pages.addFile(`/${sessionId}.guac`, recording);
      const played = (await page.evaluate(`window.recgwTest.playRecording(${JSON.stringify(url)}, 'http')`)) as PlaybackResult;
      expect(played.errors).toEqual([]);
      expect(Math.abs(played.duration - span)).toBeLessThanOrEqual(50);
      expect(played.duration).toBeGreaterThan(5_000);
      expect({ width: played.width, height: played.height }).toEqual({ width: 1024, height: 768 });
      expect(played.variance).toBeGreaterThan(0);
      await page.screenshot({ path: `/tmp/recgw-player-${name}.png` });

      // The last segment alone, opened by the display state at the end of the ones before it
      // (what the encoder writes as NNNNNN.state.guac), ends on exactly the same picture.
      const model = new DisplayModel();
      for (const ins of parseAll(Buffer.concat(files.slice(0, -1)))) await model.apply(ins);
      const alone = Buffer.concat([Buffer.from(model.serializeState(), 'utf8'), files.at(-1)!]);
      const lastSyncs = parseAll(files.at(-1)!).filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
      const alonePage = await openTestPage(browser, pages);
      try {
        const tail = (await alonePage.evaluate(`window.recgwTest.playRecording(${JSON.stringify(pages.addFile(`/${sessionId}-last.guac`, alone))}, 'http')`)) as PlaybackResult;
        expect(tail.errors).toEqual([]);
        expect(tail.duration).toBe(lastSyncs.at(-1)! - lastSyncs[0]!);
        expect({ width: tail.width, height: tail.height }).toEqual({ width: 1024, height: 768 });
        expect(tail.digest).toBe(played.digest);
        // ...which it does not without the state: the state carries the picture. Played bare, a
        // segment that starts mid-session can also leave the player stuck before its end (seen
        // now and then with rdp, depending on where the segment starts); that is no picture either.
        const bare = (await alonePage
          .evaluate(`window.recgwTest.playRecording(${JSON.stringify(pages.addFile(`/${sessionId}-bare.guac`, files.at(-1)!))}, 'http', 15000)`)
          .catch((err: Error) => {
            expect(err.message).toMatch(/did not load and play to its end/);
            return undefined;
          })) as PlaybackResult | undefined;
        if (bare) expect(bare.digest).not.toBe(played.digest);
      } finally {
        await alonePage.close();
      }

      // guacamole-common-js 1.5.0 (npm) cannot play a Blob at all: its constructor reads the
      // Blob through a variable it never assigns, whatever the recording (GUACAMOLE-1793, fixed
      // upstream in 1.5.3 by apache/guacamole-client#877; still open for the npm package as
      // tophcodes/guacamole-common-js#32). Pinned so an upgrade that fixes it is noticed; until
      // then players load recordings over HTTP (StaticHTTPTunnel), as Guacamole's own does.
      const blobPage = await openTestPage(browser, pages);
      try {
        await expect(blobPage.evaluate(`window.recgwTest.playRecording(${JSON.stringify(url)}, 'blob')`)).rejects.toThrow(/reading 'size'/);
      } finally {
        await blobPage.close();
      }
    } finally {
      await page?.close();
      await h.stop();
      await guacd.close();
    }
  });
});
