import type { JournalStore, SegmentState } from '../recording/journal.js';

/** The backlog figures (GET /api/backlog, `recgw status`, Prometheus gauges). */
export interface Backlog {
  /** Every state, zero included, so dashboards see a stable shape. */
  segments_by_state: Record<SegmentState, number>;
  /** Encoded clips (+ thumbnails) not yet stored: encoded, uploading, failed at upload. */
  bytes_waiting_upload: number;
  /** Raw segment bytes not yet encoded: sealed, encoding, failed at encode. */
  bytes_waiting_encode: number;
  /** Age of the oldest segment waiting (sealed, not yet stored or expired), from sealed_at. */
  oldest_waiting_age_seconds: number | null;
  /** Segments currently failed at the upload stage. */
  upload_failures: number;
  /** Segments currently failed at the encode stage. */
  encode_failures: number;
  /** Earliest next_attempt_at of a failed segment (ISO 8601). */
  next_retry_at: string | null;
  /** Sessions in the spool's sessions/ folder (a day after they end, finished ones move to finished/). */
  sessions: number;
  /** Sessions with at least one segment waiting. */
  sessions_waiting: number;
  /** Session folders whose journal cannot be read (named, so an operator can look). */
  unreadable_sessions: string[];
}

const STATES: readonly SegmentState[] = ['recording', 'sealed', 'encoding', 'encoded', 'uploading', 'uploaded', 'failed', 'expired'];

/** Reads every session journal of the spool once and sums up what is waiting. */
export async function computeBacklog(journals: JournalStore, now: Date): Promise<Backlog> {
  const byState = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<SegmentState, number>;
  const out: Backlog = {
    segments_by_state: byState,
    bytes_waiting_upload: 0,
    bytes_waiting_encode: 0,
    oldest_waiting_age_seconds: null,
    upload_failures: 0,
    encode_failures: 0,
    next_retry_at: null,
    sessions: 0,
    sessions_waiting: 0,
    unreadable_sessions: [],
  };
  let oldest = Infinity;
  let nextRetry = Infinity;
  for (const id of await journals.list()) {
    const settled = journals.settledSummary(id);
    if (settled) {
      // Nothing waits in a settled session: its counts are all there is to add.
      out.sessions++;
      for (const [state, n] of Object.entries(settled) as Array<[SegmentState, number]>) byState[state] += n;
      continue;
    }
    let data;
    try {
      data = (await journals.get(id)).data;
    } catch {
      out.unreadable_sessions.push(id);
      continue;
    }
    out.sessions++;
    let waiting = false;
    for (const seg of data.segments) {
      byState[seg.state] = (byState[seg.state] ?? 0) + 1;
      const atUpload = seg.state === 'encoded' || seg.state === 'uploading' || (seg.state === 'failed' && seg.failed_stage === 'upload');
      const atEncode = seg.state === 'sealed' || seg.state === 'encoding' || (seg.state === 'failed' && seg.failed_stage !== 'upload');
      if (atUpload) out.bytes_waiting_upload += seg.clip?.bytes ?? 0;
      if (atEncode) out.bytes_waiting_encode += seg.bytes;
      if (seg.state === 'failed') {
        if (seg.failed_stage === 'upload') out.upload_failures++;
        else out.encode_failures++;
        const t = seg.next_attempt_at ? Date.parse(seg.next_attempt_at) : NaN;
        if (!Number.isNaN(t)) nextRetry = Math.min(nextRetry, t);
      }
      if (atUpload || atEncode) {
        waiting = true;
        const sealed = seg.sealed_at ? Date.parse(seg.sealed_at) : NaN;
        if (!Number.isNaN(sealed)) oldest = Math.min(oldest, sealed);
      }
    }
    if (waiting) out.sessions_waiting++;
  }
  if (Number.isFinite(oldest)) out.oldest_waiting_age_seconds = Math.max(0, Math.round((now.getTime() - oldest) / 1000));
  if (Number.isFinite(nextRetry)) out.next_retry_at = new Date(nextRetry).toISOString();
  return out;
}
