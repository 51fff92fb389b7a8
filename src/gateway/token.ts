import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { GuacStatus, RecgwError } from '../errors.js';

// Connection tokens in guacamole-lite 1.2.0's format (lib/Crypt.js), so a token made for
// guacamole-lite works here and the other way round: base64( JSON{ iv: base64(16 bytes),
// value: base64(AES-256-CBC(JSON payload)) } ). Unlike guacamole-lite we decode the plaintext as
// UTF-8, not ASCII, so non-ASCII payloads (user names, passwords) survive.

const CIPHER = 'aes-256-cbc';

export const CONNECTION_TYPES = ['rdp', 'vnc', 'ssh', 'telnet', 'kubernetes'] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

/** A connection setting; lists only for the media types (audio, video, image) guacamole-lite accepts as arrays. */
export type SettingValue = string | number | boolean | string[];

const LIST_SETTINGS = new Set(['audio', 'video', 'image']);

export interface TokenSession {
  id: string;
  user_id?: string;
  username?: string;
  image_id?: string;
  image_friendly_name?: string;
}

export interface TokenPayload {
  connection: {
    type: ConnectionType;
    settings: Record<string, SettingValue>;
    /** guacd connection id ($…) to join instead of opening a new connection (guacamole-lite's join). */
    join?: string;
  };
  session: TokenSession;
  /** Whether the session is recorded; absent means true (fail closed). */
  recording: boolean;
  /** Epoch milliseconds after which the token is refused. */
  expires?: number;
}

/** What a caller may put in a token; session id and recording get defaults on decrypt. */
export interface TokenPayloadInput {
  connection: { type: ConnectionType; settings: Record<string, SettingValue>; join?: string };
  session?: Partial<TokenSession>;
  recording?: boolean;
  expires?: number;
}

/** Session ids name a folder in the spool: plain characters only, never '.' or '..'. */
const SESSION_ID = /^[A-Za-z0-9._-]{1,128}$/;

export function isValidSessionId(id: string): boolean {
  return SESSION_ID.test(id) && id !== '.' && id !== '..';
}

export function encryptToken(payload: TokenPayloadInput | Record<string, unknown>, key: Buffer): string {
  checkKey(key);
  const iv = randomBytes(16);
  const cipher = createCipheriv(CIPHER, key, iv);
  const value = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.from(JSON.stringify({ iv: iv.toString('base64'), value: value.toString('base64') }), 'utf8').toString('base64');
}

/**
 * Decrypts and validates a token. Throws only RecgwError: RECGW_ERR_TOKEN_INVALID for anything
 * malformed, tampered or of the wrong shape, RECGW_ERR_TOKEN_EXPIRED past `expires`.
 * Messages never quote the token or its settings.
 */
export function decryptToken(token: string, key: Buffer, now: number = Date.now()): TokenPayload {
  checkKey(key);
  // A token pasted into a query string unencoded has its '+' turned into ' ' by URL decoding.
  const text = token.trim().replace(/ /g, '+');
  if (text === '') throw invalid('no token given (expected ?token=…)');
  if (!/^[A-Za-z0-9+/=_-]+$/.test(text)) throw invalid('token is not base64');

  let envelope: unknown;
  try {
    envelope = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
  } catch {
    throw invalid('token is not a base64 JSON envelope');
  }
  if (!isObject(envelope) || typeof envelope.iv !== 'string' || typeof envelope.value !== 'string') {
    throw invalid('token envelope must hold string fields iv and value');
  }
  const iv = Buffer.from(envelope.iv, 'base64');
  const value = Buffer.from(envelope.value, 'base64');
  if (iv.length !== 16) throw invalid('token iv must be 16 bytes');
  if (value.length === 0 || value.length % 16 !== 0) throw invalid('token ciphertext has a wrong length');

  let plain: string;
  try {
    const decipher = createDecipheriv(CIPHER, key, iv);
    plain = Buffer.concat([decipher.update(value), decipher.final()]).toString('utf8');
  } catch {
    // Bad padding: a different key, or the ciphertext was altered.
    throw invalid('token does not decrypt with TOKEN_KEY (wrong key or tampered)');
  }
  let payload: unknown;
  try {
    payload = JSON.parse(plain);
  } catch {
    throw invalid('token does not decrypt to JSON (wrong key or tampered)');
  }
  const checked = validatePayload(payload);
  if (checked.expires !== undefined && now >= checked.expires) {
    throw new RecgwError('RECGW_ERR_TOKEN_EXPIRED', `token expired at ${new Date(checked.expires).toISOString()}; ask for a new one`, {
      guacStatus: GuacStatus.CLIENT_UNAUTHORIZED,
    });
  }
  return checked;
}

function validatePayload(p: unknown): TokenPayload {
  if (!isObject(p)) throw invalid('token payload must be a JSON object');
  const c = p.connection;
  if (!isObject(c)) throw invalid('token payload needs a connection object');
  const join = c.join;
  if (join !== undefined && (typeof join !== 'string' || join === '')) throw invalid('connection.join must be a non-empty string');
  // Joins name the protocol too: it picks the default settings and is the session's protocol.
  const type = c.type;
  if (typeof type !== 'string' || !(CONNECTION_TYPES as readonly string[]).includes(type)) {
    throw invalid(`connection.type must be one of ${CONNECTION_TYPES.join(', ')}`);
  }
  const settings = c.settings ?? {};
  if (!isObject(settings)) throw invalid('connection.settings must be an object');
  const cleanSettings: Record<string, SettingValue> = {};
  for (const [name, v] of Object.entries(settings)) {
    if (v === null || v === undefined) continue;
    if (Array.isArray(v) && LIST_SETTINGS.has(name) && v.every((x) => typeof x === 'string')) {
      cleanSettings[name] = v as string[];
      continue;
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      // Names are safe to show; values may be secrets.
      throw invalid(`connection.settings.${name} must be a string, number or boolean`);
    }
    cleanSettings[name] = v;
  }

  const s = p.session ?? {};
  if (!isObject(s)) throw invalid('session must be an object');
  const session: TokenSession = { id: '' };
  for (const field of ['user_id', 'username', 'image_id', 'image_friendly_name'] as const) {
    const v = s[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' && typeof v !== 'number') throw invalid(`session.${field} must be a string`);
    session[field] = String(v);
  }
  const id = s.id;
  if (id === undefined || id === null || id === '') {
    session.id = randomUUID();
  } else if (typeof id !== 'string' || !isValidSessionId(id)) {
    throw invalid("session.id must be 1-128 characters of A-Z a-z 0-9 . _ - and not '.' or '..' (it names a spool folder)");
  } else {
    session.id = id;
  }

  const recording = p.recording;
  if (recording !== undefined && typeof recording !== 'boolean') throw invalid('recording must be true or false');
  const expires = p.expires;
  if (expires !== undefined && (typeof expires !== 'number' || !Number.isFinite(expires))) {
    throw invalid('expires must be a number (epoch milliseconds)');
  }

  const payload: TokenPayload = {
    connection: { type: type as ConnectionType, settings: cleanSettings, ...(typeof join === 'string' ? { join } : {}) },
    session,
    recording: recording ?? true,
  };
  if (expires !== undefined) payload.expires = expires;
  return payload;
}

function checkKey(key: Buffer): void {
  if (key.length !== 32) throw new RecgwError('RECGW_ERR_CONFIG', `TOKEN_KEY must be 32 bytes, got ${key.length}`);
}

function invalid(message: string): RecgwError {
  return new RecgwError('RECGW_ERR_TOKEN_INVALID', message, { guacStatus: GuacStatus.CLIENT_UNAUTHORIZED });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
