import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GuacStatus, RecgwError } from '../../src/errors.js';
import { encryptToken } from '../../src/gateway/token.js';
import { encodeInstruction, parseAll } from '../../src/protocol/index.js';
import { FakeGuacd } from '../support/fake-guacd.js';
import { GatewayHarness, TEST_TOKEN_KEY, TunnelClient } from '../support/gateway-harness.js';
import { waitFor } from '../support/wait-for.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/recordings');
const VNC = { type: 'vnc' as const, settings: { hostname: 'desk', port: 5900, password: 'S3cr3t-pässwörd' } };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Parameters<typeof FakeGuacd.start>[0] = {}, env: Record<string, string> = {}, spoolDir?: string) {
  const guacd = await FakeGuacd.start(opts);
  const h = await GatewayHarness.start(guacd, { env, ...(spoolDir ? { spoolDir } : {}) });
  cleanups.push(async () => {
    await h.stop();
    await guacd.close();
  });
  return { guacd, h };
}

/** Connects, waits for the close, returns the error instructions and close code. */
async function refused(url: string, token: string | undefined, query?: string) {
  const c = TunnelClient.connect(url, token, query ? { query } : {});
  const { code } = await c.closed;
  return { client: c, code, errors: c.errors().map((e) => ({ message: e.arg(0), status: Number(e.arg(1)) })) };
}

function auditRecords(h: GatewayHarness) {
  return h.logs.records().filter((r) => r.log_type === 'audit' && r.action === 'session.connect');
}

describe('admission, before guacd is contacted', () => {
  it('refuses missing, garbage, tampered, wrong-key and expired tokens with an error instruction', async () => {
    const { guacd, h } = await setup();
    const good = h.token({ connection: VNC });
    const env = JSON.parse(Buffer.from(good, 'base64').toString()) as { iv: string; value: string };
    const v = Buffer.from(env.value, 'base64');
    v[3]! ^= 1;
    const tampered = Buffer.from(JSON.stringify({ iv: env.iv, value: v.toString('base64') })).toString('base64');
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'RECGW_ERR_TOKEN_INVALID'],
      ['not-a-token', 'RECGW_ERR_TOKEN_INVALID'],
      [tampered, 'RECGW_ERR_TOKEN_INVALID'],
      [encryptToken({ connection: VNC }, Buffer.alloc(32, 1)), 'RECGW_ERR_TOKEN_INVALID'],
      [h.token({ connection: VNC, expires: Date.now() - 1000 }), 'RECGW_ERR_TOKEN_EXPIRED'],
    ];
    for (const [token, code] of cases) {
      const r = await refused(h.url, token);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]!.status).toBe(GuacStatus.CLIENT_UNAUTHORIZED);
      expect(r.client.messages.every((m) => !m.isBinary)).toBe(true);
      const last = auditRecords(h).at(-1)!;
      expect(last.access_granted).toBe(false);
      expect(last.access_denied_reason).toBe(code);
    }
    expect(h.logs.records().filter((r) => r.metric_name === 'account.login.failed_invalid_token')).toHaveLength(cases.length);
    expect(guacd.connections).toHaveLength(0);
    expect(h.gateway.sessionCount).toBe(0);
  });

  it('refuses a recorded session when free space is under the floor (SERVER_BUSY), nothing reaches guacd', async () => {
    const { guacd, h } = await setup({}, { RECORDING_MIN_FREE_BYTES: '9000000000000000' });
    const r = await refused(h.url, h.token({ connection: VNC }));
    expect(r.errors).toEqual([{ message: expect.stringMatching(/free space/i), status: GuacStatus.SERVER_BUSY }]);
    expect(auditRecords(h).at(-1)!.access_denied_reason).toBe('RECGW_ERR_DISK_FLOOR');
    expect(h.logs.records().some((x) => x.metric_name === 'provision.refused')).toBe(true);
    expect(guacd.connections).toHaveLength(0);
  });

  it('refuses a recorded session when the spool is not writable', async () => {
    const { guacd: g0, h: h0 } = await setup();
    const file = join(h0.tmp, 'a-file');
    await writeFile(file, 'x');
    const guacd = await FakeGuacd.start();
    const h = await GatewayHarness.start(guacd, { spoolDir: join(file, 'spool') });
    cleanups.push(async () => {
      await h.stop();
      await guacd.close();
    });
    const r = await refused(h.url, h.token({ connection: VNC }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.message).toMatch(/not writable/);
    expect(r.errors[0]!.message).not.toContain(file); // paths stay in the logs
    expect(auditRecords(h).at(-1)!.access_denied_reason).toBe('RECGW_ERR_SPOOL_UNWRITABLE');
    expect(guacd.connections).toHaveLength(0);
    expect(g0.connections).toHaveLength(0);
  });

  it('refuses a session id that cannot name a folder', async () => {
    const { guacd, h } = await setup();
    const r = await refused(h.url, encryptToken({ connection: VNC, session: { id: '../../etc' } }, TEST_TOKEN_KEY));
    expect(r.errors[0]!.message).toMatch(/session\.id/);
    expect(guacd.connections).toHaveLength(0);
  });

  it('reports an unreachable guacd with UPSTREAM_UNAVAILABLE', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const h = await GatewayHarness.start({ host: '127.0.0.1', port });
    cleanups.push(() => h.stop());
    const r = await refused(h.url, h.token({ connection: VNC }));
    expect(r.errors).toEqual([{ message: expect.stringMatching(/unavailable/), status: GuacStatus.UPSTREAM_UNAVAILABLE }]);
    await waitFor(() => h.gateway.sessionCount === 0);
  });
});

describe('while sessions run', () => {
  it('garbage and bad tokens from other clients are refused while a session runs unharmed', async () => {
    let unhandled = 0;
    const onUnhandled = (): void => void unhandled++;
    process.on('unhandledRejection', onUnhandled);
    cleanups.push(async () => void process.off('unhandledRejection', onUnhandled));
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz'), speed: 40, chunkSize: 4096 });
    const main = TunnelClient.connect(h.url, h.token({ connection: { type: 'ssh', settings: { hostname: 'h' } }, session: { id: 'steady' } }));
    await main.opened;
    const bad = [
      'garbage',
      '',
      '////',
      Buffer.from('{"iv":"AAAA","value":"BBBB"}').toString('base64'),
      h.token({ connection: VNC, expires: 1 }),
      encryptToken({ connection: VNC }, Buffer.alloc(32, 7)),
      Buffer.from('\u00ff\u00fe'.repeat(100), 'latin1').toString('base64'),
    ];
    const results = await Promise.all(bad.flatMap((t) => [refused(h.url, t), refused(h.url, t, 'width=abc')]));
    for (const r of results) expect(r.errors).toHaveLength(1);
    await main.closed;
    const conn = guacd.connections[0]!;
    expect(guacd.connections).toHaveLength(1);
    expect(main.errors()).toHaveLength(0);
    expect(main.parseError).toBeUndefined();
    const idLine = Buffer.from(`0.,${conn.id.length}.${conn.id};`);
    expect(main.received().equals(Buffer.concat([idLine, conn.sentAfterReady()]))).toBe(true);
    expect(unhandled).toBe(0);
  });

  it('a multi-byte UTF-8 character split across guacd TCP chunks arrives intact, in whole-instruction text frames', async () => {
    const title = 'Übung — 日本語 🎉 ok';
    const replay = Buffer.from(
      encodeInstruction('size', 0, 800, 600) + encodeInstruction('name', title) + encodeInstruction('sync', 1000) + encodeInstruction('name', `${title}²`) + encodeInstruction('sync', 1001),
    );
    const { guacd, h } = await setup({ replay, chunkSize: 1, chunkDelayMs: 1 });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'utf8' } }));
    await c.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    expect(c.parseError).toBeUndefined();
    expect(c.messages.every((m) => !m.isBinary && m.data.toString('utf8').endsWith(';'))).toBe(true);
    const names = c.instructions.filter((i) => i.opcode === 'name').map((i) => i.arg(0));
    expect(names).toEqual([title, `${title}²`]);
    const conn = guacd.connections[0]!;
    expect(c.received().subarray(-replay.length).equals(replay)).toBe(true);
    expect(conn.sentAfterReady().equals(replay)).toBe(true);
    const { files } = await h.segments('utf8');
    expect(Buffer.concat(files).equals(replay)).toBe(true);
  });

  it('holds client input until guacd sends its first sync; answers pings itself', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'vnc-desktop.gz'), firstSyncDelayMs: 300, crashOnEarlyMouse: true, afterReplay: 'hold' });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'held' } }));
    await c.opened;
    c.send('5.mouse,2.10,2.20,1.0;');
    c.send('0.,4.ping,13.1700000000000;');
    c.send('5.mouse,2.11,2.21,1.0;3.key,5.65307,1.1;');
    await waitFor(() => c.instructions.some((i) => i.opcode === '' && i.arg(0) === 'ping'));
    await waitFor(() => guacd.connections[0]?.clientInstructions.length === 3);
    const conn = guacd.connections[0]!;
    expect(conn.crashed).toBe(false);
    expect(conn.clientInstructions.map((i) => [i.opcode, ...i.args])).toEqual([
      ['mouse', '10', '20', '0'],
      ['mouse', '11', '21', '0'],
      ['key', '65307', '1'],
    ]);
    expect(conn.clientInstructions.every((i) => i.syncsSentBefore > 0)).toBe(true);
    const pong = c.instructions.find((i) => i.opcode === '')!;
    expect(pong.raw.toString()).toBe('0.,4.ping,13.1700000000000;');
    c.ws.close();
    await conn.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    const recorded = parseAll(Buffer.concat((await h.segments('held')).files));
    expect(recorded.filter((i) => i.opcode === 'mouse' && i.argCount === 4).map((i) => i.args().slice(0, 3))).toEqual([
      ['10', '20', '0'],
      ['11', '21', '0'],
    ]);
    expect(recorded.some((i) => i.opcode === '' || i.opcode === 'key')).toBe(false);
  });

  it('query parameters cannot switch recording off or set guacd recording parameters', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const c = TunnelClient.connect(h.url, h.token({ connection: { type: 'ssh', settings: { hostname: 'h' } }, session: { id: 'forced' } }), {
      query: 'recording=false&recording-path=/tmp/evil&create-recording-path=true&recording-exclude-output=true&typescript-path=/tmp/t&width=1280',
    });
    await c.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    const conn = guacd.connections[0]!;
    expect(conn.connectArgs.get('recording-path')).toBe('');
    expect(conn.connectArgs.get('create-recording-path')).toBe('');
    expect(conn.connectArgs.get('recording-exclude-output')).toBe('');
    expect(conn.connectArgs.get('typescript-path')).toBe('');
    expect(conn.handshake.get('size')![0]).toBe('1280');
    const { files } = await h.segments('forced');
    expect(Buffer.concat(files).length).toBe(conn.sentAfterReady().length);
  });

  it('a join token selects the guacd connection id, as guacamole-lite does', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const c = TunnelClient.connect(h.url, h.token({ connection: { type: 'vnc', join: '$4f1c-join', settings: { 'read-only': true } }, session: { id: 'joined' } }));
    await c.closed;
    const conn = guacd.connections[0]!;
    expect(conn.selector).toBe('$4f1c-join');
    expect(conn.connectArgs.get('read-only')).toBe('true');
    expect(conn.connectArgs.get('port')).toBe(''); // join defaults carry no port
    await waitFor(() => h.gateway.sessionCount === 0);
    expect((await h.segments('joined')).files.length).toBeGreaterThan(0);
  });

  it('a token with recording:false is relayed without a recording', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const c = TunnelClient.connect(h.url, h.token({ connection: { type: 'ssh', settings: {} }, session: { id: 'unrec' }, recording: false }));
    await c.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    expect(c.received().length).toBeGreaterThan(guacd.connections[0]!.sentAfterReady().length);
    await expect(h.segments('unrec')).rejects.toThrow(/ENOENT/);
  });

  it('a recording failure mid-session ends it with an error instruction and seals the segment', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'vnc-desktop.gz'), afterReplay: 'hold' });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'failing' } }));
    await waitFor(() => c.syncsSeen > 10);
    const [rec] = [...h.recorder.active];
    rec!.fail(new RecgwError('RECGW_ERR_SEGMENT_WRITE', 'ENOSPC: no space left on device, write', { guacStatus: GuacStatus.SERVER_ERROR }));
    const { code } = await c.closed;
    expect(code).toBe(1000);
    expect(c.errors().map((e) => Number(e.arg(1)))).toEqual([GuacStatus.SERVER_ERROR]);
    expect(c.errors()[0]!.arg(0)).toMatch(/never relayed unrecorded/);
    await guacd.connections[0]!.closed;
    await waitFor(() => h.gateway.sessionCount === 0);
    const { journal, files } = await h.segments('failing');
    expect(journal.segments.every((s) => s.state === 'sealed')).toBe(true);
    expect(files[0]!.length).toBeGreaterThan(0);
    expect(files.at(-1)!.at(-1)).toBe(0x3b);
  });

  it('close() ends running sessions with an error and seals their recordings; later upgrades get 503', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'vnc-desktop.gz'), afterReplay: 'hold' });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'shutdown' } }));
    await waitFor(() => c.syncsSeen > 5);
    await h.gateway.close();
    await c.closed;
    expect(c.errors().map((e) => Number(e.arg(1)))).toEqual([GuacStatus.SERVER_BUSY]);
    expect(h.gateway.sessionCount).toBe(0);
    const { journal } = await h.segments('shutdown');
    expect(journal.segments.every((s) => s.state === 'sealed')).toBe(true);
    await guacd.connections[0]!.closed;
    const late = TunnelClient.connect(h.url, h.token({ connection: VNC }));
    await expect(late.opened).rejects.toThrow(/503/);
    expect(guacd.connections).toHaveLength(1);
  });

  it('malformed client input ends the session with an error; too much early input too', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz'), afterReplay: 'hold', firstSyncDelayMs: 2000 });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'malformed' } }));
    await c.opened;
    c.send('5.mouse,2.10;x');
    await c.closed;
    expect(c.errors().map((e) => Number(e.arg(1)))).toEqual([GuacStatus.CLIENT_BAD_REQUEST]);
    const flood = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'flood' } }));
    await flood.opened;
    const line = encodeInstruction('mouse', 1, 1, 0);
    flood.send(line.repeat(Math.ceil((1100 * 1024) / line.length)));
    await flood.closed;
    expect(flood.errors().map((e) => Number(e.arg(1)))).toEqual([GuacStatus.CLIENT_OVERRUN]);
    await waitFor(() => h.gateway.sessionCount === 0);
    // guacd never got any of it
    for (const conn of guacd.connections) expect(conn.clientInstructions).toHaveLength(0);
  });

  it('a slow browser pauses reading from guacd instead of buffering without bound', async () => {
    const { guacd, h } = await setup({ replay: join(FIXTURES, 'vnc-desktop.gz'), loops: 10, afterReplay: 'hold' });
    const c = TunnelClient.connect(h.url, h.token({ connection: VNC, session: { id: 'slow-browser' }, recording: false }), { answerSync: false });
    await waitFor(() => c.messages.length > 0);
    c.ws.pause();
    await new Promise((r) => setTimeout(r, 1000));
    const conn = guacd.connections[0]!;
    let replayed = false;
    void conn.replayed.then(() => (replayed = true));
    await new Promise((r) => setTimeout(r, 50));
    // ~49 MB could be read in well under a second; with the browser stalled, guacd must be stalled too.
    expect(replayed).toBe(false);
    expect(c.received().length).toBeLessThan(16 * 1024 * 1024);
    c.ws.resume();
    await conn.replayed;
    const idLine = Buffer.from(`0.,${conn.id.length}.${conn.id};`);
    const want = idLine.length + conn.sentBytes;
    await waitFor(() => c.received().length >= want);
    expect(c.received().equals(Buffer.concat([idLine, conn.sentAfterReady()]))).toBe(true);
    expect(c.parseError).toBeUndefined();
  });

  it('never logs the token, passwords or keystrokes; logs the audit fields', async () => {
    const { h } = await setup({ replay: join(FIXTURES, 'ssh-terminal.gz') });
    const token = h.token({ connection: VNC, session: { id: 'logged', username: 'alice', user_id: 'u1' } });
    const c = TunnelClient.connect(h.url, token, { headers: { 'user-agent': 'test-agent', 'x-forwarded-for': '198.51.100.1' } });
    c.send('3.key,5.65307,1.1;');
    await c.closed;
    await refused(h.url, token.slice(0, -8) + 'AAAAAAA=');
    await waitFor(() => h.gateway.sessionCount === 0);
    const text = h.logs.text;
    expect(text).not.toContain('S3cr3t');
    expect(text).not.toContain('pässwörd');
    expect(text).not.toContain(token.slice(10, 40));
    expect(text).not.toContain('65307');
    const granted = auditRecords(h).find((r) => r.access_granted === true)!;
    expect(granted).toMatchObject({ session_id: 'logged', user_name: 'alice', user_id: 'u1', protocol: 'vnc', client_ip: '127.0.0.1', user_agent: 'test-agent', metric_name: 'provision.create' });
    // X-Forwarded-For is not believed from an untrusted peer
    expect(granted.forwarded_for_client_ip).toBeUndefined();
    // one metric_name per event (app and audit lines both feed the counters)
    expect(h.logs.records().filter((r) => r.metric_name === 'provision.create')).toHaveLength(1);
    expect(h.logs.records().filter((r) => r.metric_name === 'provision.destroy' && r.session_id === 'logged')).toHaveLength(1);
    expect(h.logs.records().filter((r) => r.metric_name === 'account.login.failed_invalid_token')).toHaveLength(1);
  });
});
