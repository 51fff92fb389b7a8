import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { computeBacklog, type Backlog } from '../pipeline/backlog.js';
import { JournalStore } from '../recording/journal.js';
import type { CliIo } from './main.js';

/**
 * `recgw status`: the backlog for a person. Asks the running gateway (GET /api/backlog) and falls
 * back to reading the spool directly, so it also works while the gateway is down.
 */
export async function runStatusCommand(argv: string[], io: CliIo): Promise<number> {
  let json = false;
  try {
    json = Boolean(parseArgs({ args: argv, options: { json: { type: 'boolean' } } }).values.json);
  } catch (err) {
    io.stderr.write(`recgw status: ${errorMessage(err)}\nusage: recgw status [--json]\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    io.stderr.write(`recgw status: ${err instanceof ConfigError ? err.message : errorMessage(err)}\n`);
    return 2;
  }
  let backlog: Backlog | undefined;
  let source: string;
  const host = config.gateway.host === '0.0.0.0' ? '127.0.0.1' : config.gateway.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.gateway.port}/api/backlog`;
  try {
    const secret = config.adminApiKeys.find((k) => k.scopes.includes('SESSIONS_VIEW'))?.secret;
    const res = await fetch(url, { signal: AbortSignal.timeout(2000), headers: secret ? { authorization: `Bearer ${secret}` } : {} });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    backlog = (await res.json()) as Backlog;
    source = `gateway at ${url}`;
  } catch {
    backlog = await computeBacklog(new JournalStore(config.recording.spoolDir), new Date());
    source = `spool ${config.recording.spoolDir} (gateway not answering at ${url})`;
  }
  if (json) {
    io.stdout.write(JSON.stringify(backlog, null, 2) + '\n');
    return 0;
  }
  io.stdout.write(formatBacklog(backlog, source));
  return 0;
}

export function formatBacklog(b: Backlog, source: string): string {
  const lines = [`recgw backlog (from ${source})`, ''];
  lines.push(`  sessions             ${b.sessions} (${b.sessions_waiting} with segments waiting)`);
  const states = Object.entries(b.segments_by_state)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ');
  lines.push(`  segments             ${states || 'none'}`);
  lines.push(`  waiting to encode    ${formatBytes(b.bytes_waiting_encode)}`);
  lines.push(`  waiting to upload    ${formatBytes(b.bytes_waiting_upload)}`);
  lines.push(`  oldest waiting       ${b.oldest_waiting_age_seconds === null ? '-' : formatAge(b.oldest_waiting_age_seconds)}`);
  lines.push(`  failures             ${b.upload_failures} upload, ${b.encode_failures} encode`);
  lines.push(`  next retry           ${b.next_retry_at ?? '-'}`);
  if (b.unreadable_sessions.length > 0) lines.push(`  UNREADABLE journals  ${b.unreadable_sessions.join(', ')}`);
  return lines.join('\n') + '\n';
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
