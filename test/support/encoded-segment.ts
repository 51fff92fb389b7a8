import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JournalStore, segmentBaseName, type SegmentRecord, type SegmentState, type SessionJournal } from '../../src/recording/journal.js';

// Builds spool sessions whose segments are already encoded (or in any later state), as the
// encoder would leave them: NNNNNN.guac, NNNNNN.state.guac, NNNNNN.mp4, NNNNNN.jpg and a journal.
// The clip is random bytes named .mp4: the uploader never looks inside.

export interface MadeSegment {
  number: number;
  clipPath: string;
  clipSha256: string;
  clipBytes: number;
  thumbPath: string;
  rawPath: string;
  statePath: string;
  raw: Buffer;
}

export interface MadeSession {
  journals: JournalStore;
  journal: SessionJournal;
  sessionId: string;
  dir: string;
  segments: MadeSegment[];
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function makeEncodedSession(options: {
  spoolDir: string;
  journals?: JournalStore;
  sessionId?: string;
  username?: string;
  userId?: string;
  clipBytes?: number[];
  state?: SegmentState;
  sealedAt?: Date;
  ended?: boolean;
}): Promise<MadeSession> {
  const journals = options.journals ?? new JournalStore(options.spoolDir);
  const sessionId = options.sessionId ?? `s-${randomBytes(4).toString('hex')}`;
  const sizes = options.clipBytes ?? [64 * 1024];
  const sealed = (options.sealedAt ?? new Date()).toISOString();
  const dir = journals.dirOf(sessionId);
  const segments: MadeSegment[] = [];
  const records: SegmentRecord[] = [];
  const journal = await journals.getOrCreate(sessionId, () => ({
    version: 1,
    session_id: sessionId,
    user_id: options.userId ?? 'u-1',
    username: options.username ?? 'alice',
    protocol: 'vnc',
    created_at: '2026-11-23T10:00:00.000Z',
    started_at: '2026-11-23T10:00:01.000Z',
    ...(options.ended === false ? {} : { ended_at: '2026-11-23T10:05:00.000Z' }),
    connections: [],
    segments: [],
  }));
  for (let i = 0; i < sizes.length; i++) {
    const n = i + 1;
    const base = segmentBaseName(n);
    const clip = randomBytes(sizes[i]!);
    const raw = Buffer.from(`4.size,1.0,4.1024,3.768;4.sync,${5 + n}.1${'0'.repeat(4 + n)};`.repeat(2000));
    const thumb = randomBytes(2048);
    const state = Buffer.from('4.size,1.0,4.1024,3.768;');
    const m: MadeSegment = {
      number: n,
      clipPath: join(dir, `${base}.mp4`),
      clipSha256: sha256(clip),
      clipBytes: clip.length,
      thumbPath: join(dir, `${base}.jpg`),
      rawPath: join(dir, `${base}.guac`),
      statePath: join(dir, `${base}.state.guac`),
      raw,
    };
    await writeFile(m.clipPath, clip);
    await writeFile(m.thumbPath, thumb);
    await writeFile(m.rawPath, raw);
    await writeFile(m.statePath, state);
    segments.push(m);
    records.push({
      number: n,
      file: `${base}.guac`,
      state: options.state ?? 'encoded',
      bytes: raw.length,
      sha256: sha256(raw),
      started_at: `2026-11-23T10:0${n}:00.000Z`,
      sealed_at: sealed,
      state_file: `${base}.state.guac`,
      clip: {
        file: `${base}.mp4`,
        bytes: clip.length,
        sha256: m.clipSha256,
        thumbnail: `${base}.jpg`,
        duration_ms: 60_000,
        frames: 600,
        width: 1024,
        height: 768,
      },
      attempts: 0,
    });
  }
  await journal.update((d) => {
    d.segments.push(...records);
  });
  return { journals, journal, sessionId, dir, segments };
}
