import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { RecgwError } from '../../src/errors.js';
import { decryptToken, encryptToken, isValidSessionId } from '../../src/gateway/token.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8');
const OTHER = Buffer.from('fedcba9876543210fedcba9876543210', 'utf8');
const require = createRequire(import.meta.url);
// guacamole-lite is CommonJS without types; only its Crypt class is used here.
const Crypt = require('guacamole-lite/lib/Crypt.js') as new (cypher: string, key: Buffer) => {
  encrypt(data: unknown): string;
  decrypt(token: string): unknown;
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RecgwError);
    return (err as RecgwError).code;
  }
  return 'no error';
}

describe('connection tokens', () => {
  const payload = { connection: { type: 'vnc' as const, settings: { hostname: 'h', port: 5900, password: 'pw' } }, session: { id: 's-1', username: 'alice' } };

  it('round-trips, defaulting recording to true', () => {
    const p = decryptToken(encryptToken(payload, KEY), KEY);
    expect(p.connection).toEqual({ type: 'vnc', settings: { hostname: 'h', port: 5900, password: 'pw' } });
    expect(p.session).toEqual({ id: 's-1', username: 'alice' });
    expect(p.recording).toBe(true);
  });

  it('keeps recording:false only when the token says so', () => {
    expect(decryptToken(encryptToken({ ...payload, recording: false }, KEY), KEY).recording).toBe(false);
  });

  it('gives a missing session id a UUID', () => {
    const p = decryptToken(encryptToken({ connection: payload.connection }, KEY), KEY);
    expect(p.session.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('carries non-ASCII payloads intact', () => {
    const t = encryptToken({ ...payload, session: { id: 'x', username: 'Jürgen 日本 🎉' }, connection: { type: 'ssh', settings: { password: 'pässwörd€' } } }, KEY);
    const p = decryptToken(t, KEY);
    expect(p.session.username).toBe('Jürgen 日本 🎉');
    expect(p.connection.settings.password).toBe('pässwörd€');
  });

  it('reads tokens made by guacamole-lite 1.2.0 Crypt, and guacamole-lite reads ours', () => {
    const theirs = new Crypt('AES-256-CBC', KEY).encrypt(payload);
    expect(decryptToken(theirs, KEY).connection.settings.hostname).toBe('h');
    expect(new Crypt('AES-256-CBC', KEY).decrypt(encryptToken(payload, KEY))).toMatchObject(payload);
  });

  it('accepts a token whose + became a space in an unencoded query string', () => {
    let t = encryptToken(payload, KEY);
    for (let i = 0; i < 50 && !t.includes('+'); i++) t = encryptToken(payload, KEY);
    expect(decryptToken(t.replace(/\+/g, ' '), KEY).session.id).toBe('s-1');
  });

  it('refuses expired tokens with RECGW_ERR_TOKEN_EXPIRED', () => {
    const t = encryptToken({ ...payload, expires: 1_000 }, KEY);
    expect(codeOf(() => decryptToken(t, KEY, 2_000))).toBe('RECGW_ERR_TOKEN_EXPIRED');
    expect(decryptToken(t, KEY, 999).expires).toBe(1_000);
  });

  it('refuses a wrong key, tampering and garbage with RECGW_ERR_TOKEN_INVALID, never anything else', () => {
    const t = encryptToken(payload, KEY);
    expect(codeOf(() => decryptToken(t, OTHER))).toBe('RECGW_ERR_TOKEN_INVALID');
    const env = JSON.parse(Buffer.from(t, 'base64').toString()) as { iv: string; value: string };
    const v = Buffer.from(env.value, 'base64');
    v[v.length - 20]! ^= 0xff;
    const tampered = Buffer.from(JSON.stringify({ iv: env.iv, value: v.toString('base64') })).toString('base64');
    expect(codeOf(() => decryptToken(tampered, KEY))).toBe('RECGW_ERR_TOKEN_INVALID');
    const garbage = ['', 'x', '%%%', 'bnVsbA==', Buffer.from('{"iv":1}').toString('base64'), Buffer.from('[]').toString('base64'), t.slice(0, 40), t + 'AAAA'];
    for (let i = 0; i < 300; i++) garbage.push(Buffer.from(Array.from({ length: i }, () => Math.floor(Math.random() * 256))).toString('base64'));
    for (const g of garbage) expect(codeOf(() => decryptToken(g, KEY))).toBe('RECGW_ERR_TOKEN_INVALID');
  });

  it('refuses payloads of the wrong shape', () => {
    const bad: unknown[] = [
      {},
      { connection: { type: 'ftp', settings: {} } },
      { connection: { type: 'vnc', settings: { x: { nested: 1 } } } },
      { connection: { type: 'vnc', settings: {} }, recording: 'no' },
      { connection: { type: 'vnc', settings: {} }, expires: 'soon' },
      { connection: { type: 'vnc', settings: {} }, session: { id: '../etc' } },
      { connection: { type: 'vnc', settings: {} }, session: { id: '..' } },
      { connection: { type: 'vnc', settings: {} }, session: { id: 'a/b' } },
      { connection: { type: 'vnc', settings: {} }, session: { id: 'x'.repeat(129) } },
    ];
    for (const b of bad) expect(codeOf(() => decryptToken(encryptToken(b as Record<string, unknown>, KEY), KEY))).toBe('RECGW_ERR_TOKEN_INVALID');
  });

  it('never puts setting values in its messages', () => {
    const t = encryptToken({ connection: { type: 'vnc', settings: { password: { secret: 'hunter2' } } } }, KEY);
    try {
      decryptToken(t, KEY);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
      expect((err as Error).message).toContain('password');
    }
  });

  it('validates session ids as folder names', () => {
    expect(isValidSessionId('abc-DEF_1.2')).toBe(true);
    for (const id of ['', '.', '..', 'a/b', 'a\\b', 'é', 'x'.repeat(129)]) expect(isValidSessionId(id)).toBe(false);
  });
});
