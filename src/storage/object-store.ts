import type { Readable } from 'node:stream';

// What the uploader needs from a place that keeps objects: S3 (s3-store.ts) or a folder
// (local-store.ts). Both write the same keys, so switching RECORDING_UPLOAD_LOCATION between
// them changes where files land, not how they are named.

export interface PutOptions {
  contentType: string;
  /** Small ASCII name → value pairs (S3 user metadata: x-amz-meta-*). */
  metadata?: Record<string, string>;
}

/** A body: a local file (its size is known) or a stream of unknown length (raw gzip). */
export type PutBody = { path: string } | { stream: Readable };

export interface PutResult {
  key: string;
  /** Bytes stored, read back from the store after the write. */
  bytes: number;
}

export interface StoredObject {
  bytes: number;
  contentType: string | undefined;
  metadata: Record<string, string>;
}

export interface ObjectStore {
  /** Where objects go, without credentials: s3://bucket@endpoint or file:///dir. */
  readonly location: string;
  /** Stores `body` under `key`; resolves only once the whole object is stored under that key. */
  put(key: string, body: PutBody, options: PutOptions): Promise<PutResult>;
  /** The object's size and metadata, or undefined if there is none. */
  head(key: string): Promise<StoredObject | undefined>;
  /** The object's bytes. */
  get(key: string): Promise<Readable>;
  /** Keys under a prefix (tests and tools). */
  list(prefix: string): Promise<string[]>;
  /**
   * Checks the place can be written (S3: HeadBucket; folder: create it and test write access).
   * Throws the store's own error (classify it with classifyFailure). For a start-up log line or
   * a readiness detail; uploads never depend on it.
   */
  probe(): Promise<void>;
  /** Releases sockets. */
  close(): void;
}

export const ContentTypes = {
  clip: 'video/mp4',
  thumbnail: 'image/jpeg',
  journal: 'application/json',
  raw: 'application/gzip',
} as const;
