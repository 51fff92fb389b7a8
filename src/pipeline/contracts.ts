// The small typed interfaces between stages (recording → encoding → storage → pipeline), so each
// folder can be built and tested alone. Data flows one way: a stage only calls the next one.

/** Names one segment of one session in the spool. */
export interface SegmentRef {
  sessionId: string;
  segment: number;
}

/** Told by the recorder each time a segment is sealed (size limit, disconnect, shutdown, recovery). */
export type SegmentSealedListener = (ref: SegmentRef) => void;

/**
 * Renders a sealed segment to NNNNNN.mp4 (+ .jpg thumbnail, + NNNNNN.state.guac) and moves it
 * `sealed → encoding → encoded` in the journal, or to `failed` (failed_stage 'encode') with the
 * error, attempts and next_attempt_at. Resolves once the journal says encoded or failed; rejects
 * only when the journal itself cannot be written.
 */
export interface SegmentEncoder {
  encode(ref: SegmentRef): Promise<void>;
  /** Waits for running encodes to finish (shutdown). */
  drain(): Promise<void>;
}

/**
 * Stores an encoded segment's clip (and thumbnail, journal, optional raw segment) and moves it
 * `encoded → uploading → uploaded`, or to `failed` (failed_stage 'upload'). Same promise rules
 * as SegmentEncoder.
 */
export interface SegmentUploader {
  upload(ref: SegmentRef): Promise<void>;
  drain(): Promise<void>;
}
