import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { parseAll } from '../../src/protocol/index.js';
import { upToSync } from '../support/files.js';
import { FakeGuacd, loadReplay } from '../support/fake-guacd.js';
import { GatewayHarness, TEST_TOKEN_KEY } from '../support/gateway-harness.js';
import { CLIENT_CONNECTED, Chromium, PageServer, openTestPage, type LiveStatus } from '../support/guac-browser.js';
import { startGuacamoleLite } from '../support/guacamole-lite.js';
import { waitFor, waitForAsync } from '../support/wait-for.js';

// The real client: guacamole-common-js 1.5.0 in Chromium, through the gateway, to the guacd
// stand-in replaying each real recording 20× faster than it was recorded.

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');
const SPEED = 20;
// In a focused tab guacamole-common-js 1.5.0 draws one frame (one sync) per animation frame, so
// a 20× replay leaves it about syncs/60 s behind. The desktops (about 1,200 syncs each) are
// replayed up to their 200th sync (0.6-0.8 MB, 8 s of the original); the terminal whole.
const SYNC_LIMIT: Record<string, number> = { 'ssh-terminal': Number.POSITIVE_INFINITY, 'vnc-desktop': 200, 'rdp-desktop': 200 };
const MOUSE = { x: 321, y: 234 };

let browser: Chromium;
let pages: PageServer;

beforeAll(async () => {
  [browser, pages] = await Promise.all([Chromium.launch(), PageServer.start()]);
});

afterAll(async () => {
  await Promise.all([browser?.close(), pages?.close()]);
});

describe.each(['ssh-terminal', 'vnc-desktop', 'rdp-desktop'] as const)('guacamole-common-js in Chromium, %s', (name) => {
  it('connects, sees every sync and the whole picture; its early mouse move is held until the first sync and recorded', async () => {
    const protocol = name.split('-')[0] as 'ssh' | 'vnc' | 'rdp';
    const replay = upToSync(await loadReplay(join(FIXTURES, `${name}.gz`)), SYNC_LIMIT[name]!);
    const guacd = await FakeGuacd.start({ replay, speed: SPEED, afterReplay: 'hold', crashOnEarlyMouse: true });
    const h = await GatewayHarness.start(guacd);
    let page: Page | undefined;
    try {
      page = await openTestPage(browser, pages);
      const sessionId = `browser-${name}`;
      const token = h.token({ connection: { type: protocol, settings: { hostname: 'desk', password: 'pw' } }, session: { id: sessionId, username: 'alice' } });
      await page.evaluate(`window.recgwTest.startLive(${JSON.stringify(h.url)}, ${JSON.stringify(token)}, ${JSON.stringify(MOUSE)})`);

      await waitFor(() => guacd.connections.length === 1, 10_000);
      const conn = guacd.connections[0]!;
      await conn.replayed;
      const status = (): Promise<LiveStatus> => page!.evaluate('window.recgwTest.liveStatus()') as Promise<LiveStatus>;
      // Every sync the stand-in sent must reach the client's sync handler (a split message drops some).
      await waitForAsync(async () => (await status()).syncs >= conn.syncsSent, 15_000);
      const s = await status();

      expect(s.errors).toEqual([]);
      expect(s.tunnelErrors).toEqual([]);
      expect(s.states).toContain(CLIENT_CONNECTED);
      expect(s.states.at(-1)).toBe(CLIENT_CONNECTED);
      expect(s.syncs).toBe(conn.syncsSent);
      expect(conn.syncsSent).toBeGreaterThan(10);
      expect({ width: s.width, height: s.height }).toEqual({ width: 1024, height: 768 });
      // The tunnel's id is guacd's connection id, from the gateway's `0.,<len>.$<id>;` line.
      expect(s.uuid).toBe(conn.id);
      expect(s.tunnelUuid).toBe(conn.id);
      expect(s.mouseSentAtSyncs).toBe(0);

      const variance = (await page.evaluate('window.recgwTest.liveVariance()')) as number;
      expect(variance).toBeGreaterThan(0);
      await page.screenshot({ path: `/tmp/recgw-browser-${name}.png` });

      // The move was sent before any frame; it must reach guacd only after the first sync
      // (guacd 1.5.5's VNC crashes otherwise: the stand-in drops the connection like it).
      const moves = conn.clientInstructions.filter((i) => i.opcode === 'mouse');
      expect(moves.length).toBeGreaterThanOrEqual(1);
      expect(moves[0]!.args.slice(0, 2)).toEqual([String(MOUSE.x), String(MOUSE.y)]);
      expect(moves.every((m) => m.syncsSentBefore > 0)).toBe(true);
      expect(conn.crashed).toBe(false);

      await page.evaluate('window.recgwTest.disconnect()');
      await conn.closed;
      await waitFor(() => h.gateway.sessionCount === 0, 10_000);
      const { files, journal } = await h.segments(sessionId);
      expect(journal.segments.every((seg) => seg.state === 'sealed')).toBe(true);
      const recorded = parseAll(Buffer.concat(files));
      const mouseLines = recorded.filter((i) => i.opcode === 'mouse' && i.argCount === 4);
      expect(mouseLines.map((m) => [m.arg(0), m.arg(1)])).toContainEqual([String(MOUSE.x), String(MOUSE.y)]);
      // Its timestamp is on guacd's sync clock: not before the first recorded sync.
      const firstSync = recorded.find((i) => i.opcode === 'sync')!.intArg(0);
      expect(mouseLines[0]!.intArg(3)).toBeGreaterThanOrEqual(firstSync);
    } finally {
      await page?.close();
      await h.stop();
      await guacd.close();
    }
  });
});

describe('guacamole-common-js in Chromium, recgw beside guacamole-lite 1.2.0', () => {
  it('one token, the same page: both reach CONNECTED with the same size, syncs and tunnel id form', async () => {
    const replay = upToSync(await loadReplay(join(FIXTURES, 'ssh-terminal.gz')), 100);
    const guacd = await FakeGuacd.start({ replay, speed: SPEED, afterReplay: 'hold' });
    const h = await GatewayHarness.start(guacd);
    const lite = await startGuacamoleLite(guacd, TEST_TOKEN_KEY);
    const token = h.token({ connection: { type: 'ssh', settings: { hostname: 'shell', username: 'bob', password: 'pw' } }, session: { id: 'browser-lite' } });
    const results: LiveStatus[] = [];
    try {
      for (const url of [lite.url, h.url]) {
        const page = await openTestPage(browser, pages);
        try {
          const before = guacd.connections.length;
          await page.evaluate(`window.recgwTest.startLive(${JSON.stringify(url)}, ${JSON.stringify(token)}, null)`);
          await waitFor(() => guacd.connections.length === before + 1, 10_000);
          const conn = guacd.connections[before]!;
          await conn.replayed;
          await waitForAsync(async () => ((await page.evaluate('window.recgwTest.liveStatus()')) as LiveStatus).syncs >= conn.syncsSent, 15_000);
          const s = (await page.evaluate('window.recgwTest.liveStatus()')) as LiveStatus;
          expect(s.uuid).toBe(conn.id);
          expect(s.syncs).toBe(conn.syncsSent);
          results.push(s);
          await page.evaluate('window.recgwTest.disconnect()');
          await conn.closed;
        } finally {
          await page.close();
        }
      }
      const [viaLite, viaUs] = results.map((r) => ({ states: r.states, errors: r.errors, tunnelErrors: r.tunnelErrors, syncs: r.syncs, width: r.width, height: r.height }));
      expect(viaLite!.states.at(-1)).toBe(CLIENT_CONNECTED);
      expect(viaUs).toEqual(viaLite);
    } finally {
      await lite.close();
      await h.stop();
      await guacd.close();
    }
  });
});
