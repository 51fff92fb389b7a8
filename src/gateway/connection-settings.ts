import { GuacStatus, RecgwError } from '../errors.js';
import type { SettingValue, TokenPayload } from './token.js';

// guacamole-lite 1.2.0's settings merge (ClientConnection.mergeConnectionOptions): defaults for
// the connection type (or 'join'), then the token's encrypted settings, then the few settings a
// client may choose in the clear through query parameters. The query can only shape the display
// and media, never anything about recording.

const BASE_DEFAULTS: Record<string, SettingValue> = {
  width: 1024,
  height: 768,
  dpi: 96,
  audio: ['audio/L16'],
  image: ['image/png', 'image/jpeg', 'image/webp'],
};

const PORT_DEFAULTS: Record<string, number> = { rdp: 3389, vnc: 5900, ssh: 22, telnet: 23, kubernetes: 8080 };

/** Settings a client may pass unencrypted (guacamole-lite's allowedUnencryptedConnectionSettings). */
export const ALLOWED_QUERY_SETTINGS: readonly string[] = ['width', 'height', 'dpi', 'audio', 'video', 'image', 'timezone'];

const MEDIA_SETTINGS = new Set(['audio', 'video', 'image']);
const NUMERIC_SETTINGS = new Set(['width', 'height', 'dpi']);

/** Never taken from a query string, whatever the allow-list says: they switch recording or guacd's own recorder. */
export function isRecordingControl(name: string): boolean {
  const n = name.toLowerCase();
  return n === 'recording' || n.startsWith('recording-') || n === 'create-recording-path' || n.startsWith('typescript-');
}

export interface ResolvedConnection {
  /** What `select` names: the protocol, or the guacd connection id to join. */
  selector: string;
  protocol: string;
  join: boolean;
  /** Merged settings by guacd argument name; values go into `connect` in `args` order. */
  settings: Record<string, SettingValue>;
  width: number;
  height: number;
  dpi: number;
  audio: string[];
  video: string[];
  image: string[];
  timezone: string | undefined;
}

/**
 * Merges defaults, token settings and the allowed query parameters. Throws RECGW_ERR_INPUT for
 * a query value that makes no sense (a width that is not a number), naming the parameter.
 */
export function resolveConnection(payload: TokenPayload, query: URLSearchParams): ResolvedConnection {
  const join = payload.connection.join;
  const settings: Record<string, SettingValue> = { ...BASE_DEFAULTS };
  if (join === undefined) settings.port = PORT_DEFAULTS[payload.connection.type] ?? '';
  Object.assign(settings, payload.connection.settings);

  for (const name of ALLOWED_QUERY_SETTINGS) {
    if (isRecordingControl(name)) continue; // belt and braces: the allow-list must never grow into these
    const values = query.getAll(name);
    if (values.length === 0) continue;
    if (MEDIA_SETTINGS.has(name)) {
      settings[name] = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    } else if (NUMERIC_SETTINGS.has(name)) {
      const v = values[values.length - 1]!;
      if (!/^\d{1,5}$/.test(v) || Number(v) === 0) {
        throw new RecgwError('RECGW_ERR_INPUT', `query parameter ${name} must be a positive whole number`, {
          guacStatus: GuacStatus.CLIENT_BAD_REQUEST,
        });
      }
      settings[name] = Number(v);
    } else {
      settings[name] = values[values.length - 1]!;
    }
  }

  return {
    selector: join ?? payload.connection.type,
    protocol: payload.connection.type,
    join: join !== undefined,
    settings,
    width: toInt(settings.width, 1024),
    height: toInt(settings.height, 768),
    dpi: toInt(settings.dpi, 96),
    audio: toList(settings.audio),
    video: toList(settings.video),
    image: toList(settings.image),
    timezone: typeof settings.timezone === 'string' && settings.timezone !== '' ? settings.timezone : undefined,
  };
}

/** A setting as guacd wants it in `connect`: text, '' when unset. */
export function settingText(value: SettingValue | undefined): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function toInt(v: SettingValue | undefined, fallback: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function toList(v: SettingValue | undefined): string[] {
  if (v === undefined || v === false || v === '') return [];
  if (Array.isArray(v)) return v;
  return String(v).split(',').map((s) => s.trim()).filter(Boolean);
}
