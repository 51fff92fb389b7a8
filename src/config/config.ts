import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import {
  type LogLevel,
  parseBitrate,
  parseBool,
  parseBytes,
  parseDuration,
  parseIntIn,
  parseLogLevel,
  parsePort,
} from './parse.js';

export type AdminScope = 'SESSIONS_VIEW' | 'SESSION_RECORDINGS_VIEW';
const ADMIN_SCOPES: readonly AdminScope[] = ['SESSIONS_VIEW', 'SESSION_RECORDINGS_VIEW'];

export interface AdminApiKey {
  name: string;
  secret: string;
  scopes: AdminScope[];
}

export interface LogTarget {
  level: LogLevel;
  /** 'stdout' or a file path. */
  file: string;
  rotateDaily: boolean;
  /** Rotated files kept; undefined keeps all. */
  rotateMax: number | undefined;
}

export interface Config {
  gateway: { host: string; port: number };
  guacd: { host: string; port: number };
  /** AES-256-CBC key for connection tokens, 32 bytes; undefined when TOKEN_KEY is unset. */
  tokenKey: Buffer | undefined;
  recording: {
    spoolDir: string;
    uploadLocation: string;
    objectStorageKey: string | undefined;
    objectStorageSecret: string | undefined;
    bitrate: number; // bits per second
    framerate: number;
    width: number; // 0 = source size
    height: number;
    queueLength: number;
    retentionMs: number;
    segmentBytes: number;
    minFreeBytes: number;
    includeKeys: boolean;
    includeClipboard: boolean;
    includeAudio: boolean;
    dropPageCache: boolean;
    directWrites: boolean;
    uploadRaw: boolean;
    keepLocal: boolean;
  };
  s3: { region: string; forcePathStyle: boolean };
  adminApiKeys: AdminApiKey[];
  trustedProxies: string[];
  log: LogTarget;
  auditLog: LogTarget;
  production: boolean;
}

/** Every variable recgw reads; anything else starting with these prefixes is a likely typo. */
export const KNOWN_VARIABLES = [
  'GATEWAY_HOST',
  'GATEWAY_PORT',
  'GUACD_HOST',
  'GUACD_PORT',
  'TOKEN_KEY',
  'RECORDING_SPOOL_DIR',
  'RECORDING_UPLOAD_LOCATION',
  'RECORDING_OBJECT_STORAGE_KEY',
  'RECORDING_OBJECT_STORAGE_SECRET',
  'RECORDING_BITRATE',
  'RECORDING_FRAMERATE',
  'RECORDING_WIDTH',
  'RECORDING_HEIGHT',
  'RECORDING_QUEUE_LENGTH',
  'RECORDING_RETENTION_PERIOD',
  'RECORDING_SEGMENT_BYTES',
  'RECORDING_MIN_FREE_BYTES',
  'RECORDING_INCLUDE_KEYS',
  'RECORDING_INCLUDE_CLIPBOARD',
  'RECORDING_INCLUDE_AUDIO',
  'RECORDING_DROP_PAGE_CACHE',
  'RECORDING_DIRECT_WRITES',
  'RECORDING_UPLOAD_RAW',
  'RECORDING_KEEP_LOCAL',
  'S3_REGION',
  'S3_FORCE_PATH_STYLE',
  'ADMIN_API_KEYS',
  'TRUSTED_PROXIES',
  'LOG_LEVEL',
  'LOG_FILE',
  'LOG_ROTATE_DAILY',
  'LOG_ROTATE_MAX',
  'LOG_LEVEL_AUDIT',
  'LOG_FILE_AUDIT',
  'LOG_ROTATE_DAILY_AUDIT',
  'LOG_ROTATE_MAX_AUDIT',
] as const;

const CHECKED_PREFIXES = ['RECORDING_', 'GATEWAY_', 'GUACD_', 'LOG_', 'S3_'];

/** Variables whose values are secrets: shown as "(set)" wherever settings are logged. */
export const SECRET_VARIABLES = new Set(['TOKEN_KEY', 'RECORDING_OBJECT_STORAGE_SECRET', 'ADMIN_API_KEYS']);

export function defaultQueueLength(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Reads and validates every setting. Collects all problems and throws one ConfigError naming
 * each variable with what is allowed, so a bad deployment is fixed in one round.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];

  function read<T>(name: string, fallback: T, parse: (text: string) => T): T {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    try {
      return parse(raw);
    } catch (err) {
      problems.push(`${name} ${(err as Error).message}`);
      return fallback;
    }
  }
  const str = (name: string, fallback: string) => read(name, fallback, (t) => t.trim());
  const optStr = (name: string) => read<string | undefined>(name, undefined, (t) => t);

  for (const name of Object.keys(env)) {
    if (CHECKED_PREFIXES.some((p) => name.startsWith(p)) && !(KNOWN_VARIABLES as readonly string[]).includes(name)) {
      // S3_* and LOG_* variables of other tools (AWS SDK reads AWS_*) are not ours; only warn-worthy
      // prefixes that recgw owns are checked.
      problems.push(`${name} is not a recgw setting (known: ${KNOWN_VARIABLES.filter((k) => k.startsWith(name.split('_')[0]!)).join(', ')})`);
    }
  }

  const production = env.NODE_ENV === 'production';
  const tokenKey = read<Buffer | undefined>('TOKEN_KEY', undefined, (t) => {
    const key = Buffer.from(t, 'utf8');
    if (key.length !== 32) throw new Error(`must be exactly 32 bytes (AES-256 key, as guacamole-lite expects), got ${key.length}`);
    return key;
  });
  if (production && !tokenKey) problems.push('TOKEN_KEY is required when NODE_ENV=production (32 bytes)');

  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));

  const logTarget = (suffix: string): LogTarget => ({
    level: read(`LOG_LEVEL${suffix}`, 'info' as LogLevel, parseLogLevel),
    file: str(`LOG_FILE${suffix}`, 'stdout'),
    rotateDaily: read(`LOG_ROTATE_DAILY${suffix}`, false, parseBool),
    rotateMax: read<number | undefined>(`LOG_ROTATE_MAX${suffix}`, undefined, (t) => parseIntIn(t, 1, 10_000)),
  });

  const config: Config = {
    // Port 0 lets the system pick a free port (logged at start-up); tests and side-by-side runs use it.
    gateway: { host: str('GATEWAY_HOST', '127.0.0.1'), port: read('GATEWAY_PORT', 8080, (t) => parseIntIn(t, 0, 65535)) },
    guacd: { host: str('GUACD_HOST', '127.0.0.1'), port: read('GUACD_PORT', 4822, parsePort) },
    tokenKey,
    recording: {
      spoolDir: abs(str('RECORDING_SPOOL_DIR', './data/spool')),
      uploadLocation: str('RECORDING_UPLOAD_LOCATION', 'file://./data/recordings/{username}/{session_id}'),
      objectStorageKey: optStr('RECORDING_OBJECT_STORAGE_KEY'),
      objectStorageSecret: optStr('RECORDING_OBJECT_STORAGE_SECRET'),
      bitrate: read('RECORDING_BITRATE', 1_000_000, parseBitrate),
      framerate: read('RECORDING_FRAMERATE', 10, (t) => parseIntIn(t, 1, 60)),
      width: read('RECORDING_WIDTH', 0, (t) => evenOrZero(parseIntIn(t, 0, 7680))),
      height: read('RECORDING_HEIGHT', 0, (t) => evenOrZero(parseIntIn(t, 0, 4320))),
      queueLength: read('RECORDING_QUEUE_LENGTH', defaultQueueLength(), (t) => parseIntIn(t, 1, 256)),
      retentionMs: read('RECORDING_RETENTION_PERIOD', 7 * 86_400_000, parseDuration),
      segmentBytes: read('RECORDING_SEGMENT_BYTES', 157_286_400, (t) => atLeast(parseBytes(t), 64 * 1024, 'RECORDING_SEGMENT_BYTES')),
      minFreeBytes: read('RECORDING_MIN_FREE_BYTES', 524_288_000, parseBytes),
      includeKeys: read('RECORDING_INCLUDE_KEYS', false, parseBool),
      includeClipboard: read('RECORDING_INCLUDE_CLIPBOARD', false, parseBool),
      includeAudio: read('RECORDING_INCLUDE_AUDIO', false, parseBool),
      dropPageCache: read('RECORDING_DROP_PAGE_CACHE', true, parseBool),
      directWrites: read('RECORDING_DIRECT_WRITES', true, parseBool),
      uploadRaw: read('RECORDING_UPLOAD_RAW', false, parseBool),
      keepLocal: read('RECORDING_KEEP_LOCAL', false, parseBool),
    },
    s3: { region: str('S3_REGION', 'us-east-1'), forcePathStyle: read('S3_FORCE_PATH_STYLE', false, parseBool) },
    adminApiKeys: read('ADMIN_API_KEYS', [] as AdminApiKey[], parseAdminKeys),
    trustedProxies: read('TRUSTED_PROXIES', [] as string[], (t) => t.split(',').map((s) => s.trim()).filter(Boolean)),
    log: logTarget(''),
    auditLog: logTarget('_AUDIT'),
    production,
  };

  if ((config.recording.width === 0) !== (config.recording.height === 0)) {
    problems.push('RECORDING_WIDTH and RECORDING_HEIGHT must both be set, or both be 0 (the session\'s own size)');
  }
  if (Boolean(config.recording.objectStorageKey) !== Boolean(config.recording.objectStorageSecret)) {
    problems.push('RECORDING_OBJECT_STORAGE_KEY and RECORDING_OBJECT_STORAGE_SECRET must be set together');
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

function evenOrZero(n: number): number {
  // H.264 in yuv420p needs even dimensions.
  if (n % 2 !== 0) throw new Error(`must be an even number (H.264 yuv420p), got ${n}`);
  return n;
}

function atLeast(n: number, min: number, name: string): number {
  if (n < min) throw new Error(`must be at least ${min} bytes, got ${n}`);
  void name;
  return n;
}

function parseAdminKeys(text: string): AdminApiKey[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, secret, scopeText, ...rest] = entry.split(':');
      if (!name || !secret || !scopeText || rest.length > 0) {
        throw new Error(`entries must look like name:secret:SCOPE+SCOPE, got an entry for "${name ?? ''}" that does not`);
      }
      const scopes = scopeText.split('+').map((s) => s.trim());
      for (const s of scopes) {
        if (!(ADMIN_SCOPES as readonly string[]).includes(s)) {
          throw new Error(`entry "${name}" has unknown scope "${s}" (allowed: ${ADMIN_SCOPES.join(', ')})`);
        }
      }
      return { name, secret, scopes: scopes as AdminScope[] };
    });
}

/** The settings in force, for the start-up audit line: secrets replaced by "(set)". */
export function describeConfig(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KNOWN_VARIABLES) {
    const v = env[name];
    if (v === undefined) continue;
    out[name] = SECRET_VARIABLES.has(name) ? '(set)' : redactUrlCredentials(v);
  }
  return out;
}

/** Hides user:password@ inside URLs (an upload location may carry them). */
export function redactUrlCredentials(text: string): string {
  return text.replace(/(\w+:\/\/)([^/@\s]+)@/g, (_m, scheme: string, cred: string) => (cred.includes(':') ? `${scheme}***@` : `${scheme}${cred}@`));
}
