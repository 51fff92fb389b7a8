import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SegmentRecord, SessionJournalData } from '../recording/journal.js';

// Which local files belong to a segment, and when a segment's .state.guac may go. The state
// file of segment N is the starting picture for encoding segment N+1, so it stays until N+1 is
// encoded (or expired), or the session has ended and every segment is stored or expired.

/** The segment's files in the session folder that exist on disk, with their sizes. */
export async function existingFiles(dir: string, names: Array<string | undefined>): Promise<Array<{ file: string; bytes: number }>> {
  const out: Array<{ file: string; bytes: number }> = [];
  for (const name of new Set(names.filter((n): n is string => Boolean(n)))) {
    try {
      const st = await stat(join(dir, name));
      if (st.isFile()) out.push({ file: name, bytes: st.size });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return out;
}

/** Clip, thumbnail and raw segment: what an upload stores and then deletes. */
export function mediaFiles(seg: SegmentRecord): string[] {
  return [seg.clip?.file, seg.clip?.thumbnail, seg.file].filter((n): n is string => Boolean(n));
}

function isPastEncoding(seg: SegmentRecord): boolean {
  return (
    seg.state === 'encoded' ||
    seg.state === 'uploading' ||
    seg.state === 'uploaded' ||
    seg.state === 'expired' ||
    (seg.state === 'failed' && seg.failed_stage === 'upload')
  );
}

/** State files no longer needed by any future encode. */
export function releasableStateFiles(data: SessionJournalData): string[] {
  const sessionDone = Boolean(data.ended_at) && data.segments.every((s) => s.state === 'uploaded' || s.state === 'expired');
  const out: string[] = [];
  for (const seg of data.segments) {
    if (!seg.state_file) continue;
    const next = data.segments.find((s) => s.number === seg.number + 1);
    if (sessionDone || (next && isPastEncoding(next))) out.push(seg.state_file);
  }
  return out;
}

/** Deletes files (missing ones are fine); returns what was actually removed. */
export async function removeFiles(dir: string, names: string[]): Promise<Array<{ file: string; bytes: number }>> {
  const present = await existingFiles(dir, names);
  for (const f of present) await rm(join(dir, f.file), { force: true });
  return present;
}
