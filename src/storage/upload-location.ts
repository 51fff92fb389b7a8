import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { segmentBaseName } from '../recording/journal.js';

// RECORDING_UPLOAD_LOCATION: where clips go and what their keys look like.
//
//   s3://bucket/prefix/{username}/{session_id}.mp4          AWS S3, default endpoint
//   s3://bucket@minio.local:9000/prefix/{session_id}.mp4    S3-compatible endpoint over https
//   s3://bucket@http://minio:9000/prefix/{session_id}.mp4   ... over plain http (on-premises)
//   file:///srv/recordings/{username}/{session_id}          local or mounted directory
//   file://./data/recordings/{username}/{session_id}        ... relative to the working directory
//
// Key rules (decided here, documented in the report/README):
// - The template must name {session_id} (or {kasm_id}) or {current_epoch}, so two sessions can
//   never write the same key.
// - A template that is empty or ends in "/" gets the default layout {username}/{session_id}.
// - A last path part without an extension gets ".mp4".
// - Without {segment} or {current_epoch}, "-{segment}" goes before the extension:
//   {username}/{session_id}.mp4 → alice/3f2c…-000001.mp4. Segments are six digits, so keys sort.
// - Thumbnail, raw segment and journal go beside the clip: <clip key without extension>.jpg,
//   <clip key without extension>.guac.gz, and <clip's folder>/<session_id>.session.json.
// - For file:// the leading folders without variables are the store's root; the rest is the key.
//
// Values: *_timestamp and current_epoch are Unix epoch milliseconds, *_date is YYYY-MM-DD (UTC).
// created_* come from the session's creation, start_* from the segment's start.

export const TEMPLATE_VARIABLES = [
  'session_id',
  'kasm_id',
  'user_id',
  'username',
  'image_id',
  'image_friendly_name',
  'protocol',
  'segment',
  'created_timestamp',
  'created_date',
  'start_timestamp',
  'start_date',
  'current_epoch',
] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

const DEFAULT_LAYOUT = '{username}/{session_id}';
const DEFAULT_EXTENSION = '.mp4';
/** Longest value kept from one variable; S3 keys are limited to 1024 bytes, file names to 255. */
const MAX_VALUE_CHARS = 100;
const EMPTY_VALUE = 'unknown';

/** What a key is made from: the session's journal fields, the segment and the clock. */
export interface KeyContext {
  sessionId: string;
  userId?: string | undefined;
  username?: string | undefined;
  imageId?: string | undefined;
  imageFriendlyName?: string | undefined;
  protocol?: string | undefined;
  /** Session creation time (ISO 8601). */
  createdAt: string;
  segment: number;
  /** The segment's start time (ISO 8601). */
  segmentStartedAt: string;
  /** When the key is computed; stored in the journal, so a retry reuses the same key. */
  now: Date;
}

export type UploadTarget =
  | { kind: 's3'; bucket: string; /** undefined = AWS default */ endpoint: string | undefined }
  | { kind: 'file'; /** absolute folder */ root: string };

type Part = { literal: string } | { variable: TemplateVariable };

/** A parsed, validated RECORDING_UPLOAD_LOCATION. */
export class UploadLocation {
  readonly target: UploadTarget;
  /** The location as the operator wrote it. */
  readonly template: string;
  /** The key template after the defaults above were applied. */
  readonly keyTemplate: string;
  readonly #parts: Part[];

  private constructor(target: UploadTarget, template: string, keyTemplate: string, parts: Part[]) {
    this.target = target;
    this.template = template;
    this.keyTemplate = keyTemplate;
    this.#parts = parts;
  }

  /** Parses and validates the location; throws ConfigError showing the template and the problem. */
  static parse(text: string, cwd: string = process.cwd()): UploadLocation {
    const fail = (problem: string): never => {
      throw new ConfigError([`RECORDING_UPLOAD_LOCATION "${text}": ${problem}`]);
    };
    const trimmed = text.trim();
    let target: UploadTarget;
    let keyTemplate: string;
    if (trimmed.startsWith('s3://')) {
      const rest = trimmed.slice('s3://'.length);
      const m = /^([^/@]*)(?:@((?:https?:\/\/)?[^/]*))?(?:\/(.*))?$/.exec(rest);
      if (!m) return fail('expected s3://bucket/prefix/... or s3://bucket@endpoint/prefix/...');
      const bucket = m[1]!;
      if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) {
        fail(`bucket name "${bucket}" is not valid (3-63 characters: lowercase letters, digits, ".", "-", "_")`);
      }
      let endpoint: string | undefined;
      if (m[2] !== undefined) {
        const raw = m[2];
        if (raw === '' || raw === 'http://' || raw === 'https://') fail('the endpoint after "@" is empty');
        endpoint = /^https?:\/\//.test(raw) ? raw : `https://${raw}`;
        try {
          const u = new URL(endpoint);
          if (u.username || u.password) fail('credentials do not belong in the location; use RECORDING_OBJECT_STORAGE_KEY/_SECRET');
          if (!u.hostname) fail(`endpoint "${raw}" has no host name`);
          endpoint = `${u.protocol}//${u.host}`;
        } catch (err) {
          if (err instanceof ConfigError) throw err;
          fail(`endpoint "${raw}" is not a host[:port] or http(s)://host[:port]`);
        }
      }
      target = { kind: 's3', bucket, endpoint };
      keyTemplate = m[3] ?? '';
    } else if (trimmed.startsWith('file://')) {
      const path = trimmed.slice('file://'.length);
      if (!(path.startsWith('/') || path.startsWith('./') || path.startsWith('../'))) {
        fail('expected file:///absolute/folder/... or file://./relative/folder/...');
      }
      const parts = path.split('/');
      const firstVar = parts.findIndex((p) => p.includes('{') || p.includes('}'));
      // The folders before the first variable are fixed: they are the store's root. A template
      // without variables keeps its last part as the file name.
      const split = firstVar === -1 ? Math.max(parts.length - 1, 1) : firstVar;
      const rootText = parts.slice(0, split).join('/') || '/';
      const root = isAbsolute(rootText) ? resolve(rootText) : resolve(cwd, rootText);
      target = { kind: 'file', root };
      keyTemplate = parts.slice(split).join('/');
    } else {
      return fail('must start with s3:// or file://');
    }

    if (keyTemplate === '' || keyTemplate.endsWith('/')) keyTemplate += DEFAULT_LAYOUT;
    const parts = parseTemplate(keyTemplate, fail);
    const names = new Set(parts.flatMap((p) => ('variable' in p ? [p.variable] : [])));
    if (!names.has('session_id') && !names.has('kasm_id') && !names.has('current_epoch')) {
      fail('the key must contain {session_id} (or {kasm_id}) or {current_epoch}, or different sessions would overwrite each other');
    }
    for (const seg of keyTemplate.split('/')) {
      if (seg === '' || seg === '.' || seg === '..') fail(`the key path has an empty, "." or ".." part ("${keyTemplate}")`);
    }

    // Extension and segment number; both rewrite the last literal part of the template.
    let finalParts = parts;
    const lastSlash = keyTemplate.lastIndexOf('/');
    const fileName = keyTemplate.slice(lastSlash + 1);
    const extMatch = /(\.[A-Za-z0-9]{1,8})$/.exec(fileName);
    const ext = extMatch && !fileName.endsWith('}') ? extMatch[1]! : '';
    let base = ext ? keyTemplate.slice(0, -ext.length) : keyTemplate;
    const finalExt = ext || DEFAULT_EXTENSION;
    if (!names.has('segment') && !names.has('current_epoch')) base += '-{segment}';
    const finalTemplate = base + finalExt;
    finalParts = parseTemplate(finalTemplate, fail);
    return new UploadLocation(target, text, finalTemplate, finalParts);
  }

  /** The place, for journals and logs: s3://bucket, s3://bucket@http://host:port or file:///dir. */
  describe(): string {
    const t = this.target;
    if (t.kind === 'file') return `file://${t.root}`;
    return t.endpoint ? `s3://${t.bucket}@${t.endpoint}` : `s3://${t.bucket}`;
  }

  /** The fixed start of every key (before the first variable); nothing is written outside it. */
  get prefix(): string {
    const first = this.#parts[0];
    return first && 'literal' in first ? first.literal : '';
  }

  /** The clip's key for one segment; every variable value is sanitised so it stays in its place. */
  clipKey(ctx: KeyContext): string {
    const values = templateValues(ctx);
    return this.#parts.map((p) => ('literal' in p ? p.literal : values[p.variable])).join('');
  }
}

/** <clip key without extension><suffix>, e.g. thumbnails (.jpg) and raw segments (.guac.gz). */
export function siblingKey(clipKey: string, suffix: string): string {
  const slash = clipKey.lastIndexOf('/');
  const dot = clipKey.lastIndexOf('.');
  return (dot > slash ? clipKey.slice(0, dot) : clipKey) + suffix;
}

/** Where a session's journal goes: beside its clips, named after the session. */
export function journalKey(clipKey: string, sessionId: string): string {
  const slash = clipKey.lastIndexOf('/');
  return `${slash >= 0 ? clipKey.slice(0, slash + 1) : ''}${sanitizeValue(sessionId)}.session.json`;
}

/**
 * Makes one value safe to sit between two slashes of a key: "/" and "\" become "_", control
 * characters become "_", runs of dots become underscores when they could mean "." or ".."
 * (a value made only of dots, or any ".." run), empty becomes "unknown", and it is cut to 100
 * characters. So `../../etc` → `______etc`, `a/b` → `a_b`, "" → `unknown`.
 */
export function sanitizeValue(value: string | undefined): string {
  let v = (value ?? '').replace(/[\\/\u0000-\u001f\u007f-\u009f]/g, '_');
  v = v.replace(/\.{2,}/g, (m) => '_'.repeat(m.length));
  if (/^\.+$/.test(v)) v = v.replace(/\./g, '_');
  v = v.trim();
  if (v === '') return EMPTY_VALUE;
  return Array.from(v).slice(0, MAX_VALUE_CHARS).join('');
}

function templateValues(ctx: KeyContext): Record<TemplateVariable, string> {
  const created = new Date(ctx.createdAt);
  const started = new Date(ctx.segmentStartedAt);
  const ms = (d: Date) => (Number.isNaN(d.getTime()) ? EMPTY_VALUE : String(d.getTime()));
  const day = (d: Date) => (Number.isNaN(d.getTime()) ? EMPTY_VALUE : d.toISOString().slice(0, 10));
  const s = sanitizeValue;
  return {
    session_id: s(ctx.sessionId),
    kasm_id: s(ctx.sessionId),
    user_id: s(ctx.userId),
    username: s(ctx.username),
    image_id: s(ctx.imageId),
    image_friendly_name: s(ctx.imageFriendlyName),
    protocol: s(ctx.protocol),
    segment: segmentBaseName(ctx.segment),
    created_timestamp: ms(created),
    created_date: day(created),
    start_timestamp: ms(started),
    start_date: day(started),
    current_epoch: String(ctx.now.getTime()),
  };
}

function parseTemplate(template: string, fail: (problem: string) => never): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (c === '}') fail(`"}" at position ${i + 1} closes nothing`);
    if (c !== '{') {
      if (/[\u0000-\u001f\u007f]/.test(c)) fail(`control character at position ${i + 1}`);
      literal += c;
      i++;
      continue;
    }
    const close = template.indexOf('}', i);
    if (close === -1) fail(`"{" at position ${i + 1} is never closed`);
    const name = template.slice(i + 1, close);
    if (name.includes('{')) fail(`"{" at position ${i + 1} is never closed`);
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(name)) {
      fail(`unknown variable {${name}} (known: ${TEMPLATE_VARIABLES.map((v) => `{${v}}`).join(', ')})`);
    }
    if (literal) parts.push({ literal });
    literal = '';
    parts.push({ variable: name as TemplateVariable });
    i = close + 1;
  }
  if (literal) parts.push({ literal });
  return parts;
}
