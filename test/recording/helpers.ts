import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { DestinationStream } from 'pino';
import { createTestLoggers } from '../../src/observability/logger.js';
import type { SegmentRef } from '../../src/pipeline/contracts.js';
import { JournalStore } from '../../src/recording/journal.js';
import { Recorder, type RecorderOptions, type SessionStartInfo } from '../../src/recording/recorder.js';

export const FIXTURES = ['vnc-desktop', 'ssh-terminal', 'rdp-desktop'] as const;

const fixtureCache = new Map<string, Buffer>();
export function fixture(name: string): Buffer {
  let b = fixtureCache.get(name);
  if (!b) {
    b = gunzipSync(readFileSync(new URL(`../../fixtures/recordings/${name}.gz`, import.meta.url)));
    fixtureCache.set(name, b);
  }
  return b;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A temp spool removed after the test file. */
export function tempSpool(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'recgw-rec-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

export interface TestRecorder {
  recorder: Recorder;
  journals: JournalStore;
  sealed: SegmentRef[];
  logs: LogLine[];
  /** The log lines as written, to check what JSON.parse would hide (duplicate keys). */
  rawLogs: string[];
  spool: string;
}

export function makeRecorder(spool: string, opts: Partial<RecorderOptions> = {}): TestRecorder {
  const logs: LogLine[] = [];
  const rawLogs: string[] = [];
  const dest: DestinationStream = {
    write: (s: string) => {
      rawLogs.push(s);
      logs.push(JSON.parse(s) as LogLine);
    },
  };
  const { app } = createTestLoggers(dest);
  const journals = opts.journals ?? new JournalStore(spool);
  const sealed: SegmentRef[] = [];
  const recorder = new Recorder({
    spoolDir: spool,
    segmentBytes: 1024 * 1024,
    includeKeys: false,
    includeClipboard: false,
    includeAudio: false,
    journals,
    logger: app,
    onSealed: (ref) => sealed.push(ref),
    ...opts,
  });
  return { recorder, journals, sealed, logs, rawLogs, spool };
}

export function startInfo(sessionId: string, extra: Partial<SessionStartInfo> = {}): SessionStartInfo {
  return {
    sessionId,
    protocol: 'vnc',
    userId: 'u-1',
    username: 'alice',
    imageId: 'img-1',
    imageFriendlyName: 'Desktop',
    clientIp: '203.0.113.7',
    forwardedForClientIp: '198.51.100.2',
    userAgent: 'vitest',
    ...extra,
  };
}
