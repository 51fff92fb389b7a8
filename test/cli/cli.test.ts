import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../../src/cli/main.js';
import { decryptToken } from '../../src/gateway/token.js';
import { devTokenKeyPath } from '../../src/cli/dev-token-key.js';
import { readFileSync } from 'node:fs';

function io(env: NodeJS.ProcessEnv, stdin = ''): CliIo & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdout, stderr, stdin: Readable.from([Buffer.from(stdin)]), isTTY: false, env, out: () => out, err: () => err };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'recgw-cli-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const payload = JSON.stringify({
  connection: { type: 'ssh', settings: { hostname: 'srv', username: 'zoë', password: 'pässword' } },
  session: { id: 'cli-1', username: 'zoë' },
});

describe('recgw token', () => {
  it('prints a token the gateway accepts, non-ASCII payloads included', async () => {
    const key = 'abcdefghijklmnopqrstuvwxyz012345';
    const t = io({}, payload);
    expect(await main(['token', '--key', key], t)).toBe(0);
    const decoded = decryptToken(t.out().trim(), Buffer.from(key));
    expect(decoded.connection.settings.password).toBe('pässword');
    expect(decoded.session.id).toBe('cli-1');
  });

  it('uses the development key the gateway uses when TOKEN_KEY is unset', async () => {
    const spool = join(tmp, 'spool');
    const t = io({ RECORDING_SPOOL_DIR: spool }, payload);
    expect(await main(['token'], t)).toBe(0);
    const key = Buffer.from(readFileSync(devTokenKeyPath(spool), 'utf8').trim());
    expect(decryptToken(t.out().trim(), key).session.username).toBe('zoë');
    expect(t.err()).toContain('development key');
  });

  it('refuses a short key, bad JSON and a payload the gateway would refuse, saying why', async () => {
    const short = io({}, payload);
    expect(await main(['token', '--key', 'short'], short)).toBe(2);
    expect(short.err()).toContain('32 bytes');
    const bad = io({}, '{not json');
    expect(await main(['token', '--key', 'abcdefghijklmnopqrstuvwxyz012345'], bad)).toBe(2);
    expect(bad.err()).toContain('JSON payload');
    const refused = io({}, JSON.stringify({ connection: { type: 'ftp', settings: {} } }));
    expect(await main(['token', '--key', 'abcdefghijklmnopqrstuvwxyz012345'], refused)).toBe(1);
    expect(refused.err()).toContain('would refuse');
  });
});

describe('recgw status', () => {
  it('reads the spool when no gateway answers', async () => {
    const t = io({ RECORDING_SPOOL_DIR: join(tmp, 'empty-spool'), GATEWAY_PORT: '1' });
    expect(await main(['status'], t)).toBe(0);
    expect(t.out()).toContain('recgw backlog (from spool');
    expect(t.out()).toMatch(/sessions\s+0/);
    const j = io({ RECORDING_SPOOL_DIR: join(tmp, 'empty-spool'), GATEWAY_PORT: '1' });
    expect(await main(['status', '--json'], j)).toBe(0);
    expect(JSON.parse(j.out()).sessions).toBe(0);
  });
});

describe('recgw', () => {
  it('explains unknown commands and bad settings', async () => {
    const t = io({});
    expect(await main(['frobnicate'], t)).toBe(2);
    expect(t.err()).toContain('unknown command "frobnicate"');
    const s = io({ RECORDING_RETENTION_PERIOD: 'forever' });
    expect(await main(['status'], s)).toBe(2);
    expect(s.err()).toContain('RECORDING_RETENTION_PERIOD');
  });
});
