// Parsers for environment values. Each returns the value or throws a plain Error whose message
// says what is allowed; loadConfig collects them all so the operator sees every problem at once.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "30m", "24h", "7d", "2s", "500ms" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/i.exec(text);
  if (!m) throw new Error(`must be a duration such as 30m, 24h or 7d (units ms, s, m, h, d, w), got "${text}"`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!;
  if (!(ms > 0)) throw new Error(`must be longer than zero, got "${text}"`);
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** "157286400", "150MiB", "500M" → bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`must be a byte count such as 157286400 or 150MiB, got "${text}"`);
  return Math.round(Number(m[1]) * unit);
}

export function parseIntIn(text: string, min: number, max: number): number {
  if (!/^\s*-?\d+\s*$/.test(text)) throw new Error(`must be a whole number from ${min} to ${max}, got "${text}"`);
  const n = Number(text);
  if (n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}, got ${n}`);
  return n;
}

export function parseBool(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new Error(`must be true or false, got "${text}"`);
}

/** "1000k", "2M", "800000" → bits per second (ffmpeg's -b:v notation). */
export function parseBitrate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) throw new Error(`must be a bitrate such as 1000k or 2M, got "${text}"`);
  const mult = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1000 : 1_000_000;
  const bps = Math.round(Number(m[1]) * mult);
  if (bps < 10_000 || bps > 200_000_000) throw new Error(`must be between 10k and 200M, got "${text}"`);
  return bps;
}

export function parsePort(text: string): number {
  return parseIntIn(text, 1, 65535);
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function parseLogLevel(text: string): LogLevel {
  const t = text.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(t)) return t as LogLevel;
  throw new Error(`must be one of ${LOG_LEVELS.join(', ')}, got "${text}"`);
}
