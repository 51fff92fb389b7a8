import { errorMessage } from '../errors.js';

// The one retry policy of recgw (uploads use it; guacd dialing may too). Modelled on undici's
// RetryHandler: exponential backoff from a base with a factor, capped, with jitter so a fleet
// of gateways that lost the same bucket does not retry in lock-step.

export interface RetryPolicyOptions {
  /** Delay before the first retry. Default 30 s: the first retry comes within a minute. */
  baseMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Cap on any delay. Default 1 h. */
  maxMs?: number;
  /** ± fraction of random spread. Default 0.2. */
  jitter?: number;
  /**
   * Least delay after an error retrying cannot fix by itself (access denied, no such bucket).
   * Such errors are still retried, slowly, in case an admin fixes the bucket. Default 15 min.
   */
  permanentMinMs?: number;
  /** Random source in [0, 1) (tests pin it). */
  random?: () => number;
}

export type FailureKind = 'transient' | 'permanent';

export interface FailureClass {
  kind: FailureKind;
  /** A short name of the error (S3 error code, errno code or error name). */
  code: string;
  /** What the operator should know or do, for the log line. */
  reason: string;
}

/** Error codes that mean "the request itself will never work until someone changes something". */
const PERMANENT: Record<string, string> = {
  AccessDenied: 'access denied: the credentials may not write to this bucket/prefix (check the bucket policy and IAM permissions)',
  AllAccessDisabled: 'all access to the bucket is disabled',
  AccountProblem: 'the storage account has a problem (see the provider console)',
  InvalidAccessKeyId: 'the access key is not known to the storage service (check RECORDING_OBJECT_STORAGE_KEY)',
  SignatureDoesNotMatch: 'the secret does not match the access key (check RECORDING_OBJECT_STORAGE_SECRET) or the clock is wrong',
  NoSuchBucket: 'the bucket does not exist (create it or fix RECORDING_UPLOAD_LOCATION)',
  InvalidBucketName: 'the bucket name is not valid for this service',
  PermanentRedirect: 'the bucket is in another region or needs another endpoint (check S3_REGION / the endpoint in RECORDING_UPLOAD_LOCATION)',
  AuthorizationHeaderMalformed: 'the request was signed for the wrong region (check S3_REGION)',
  SpoolFilesMissing: 'the segment\'s local files were removed outside recgw; nothing is left to store (retention will mark it expired)',
  EACCES: 'permission denied writing the upload folder',
  EPERM: 'operation not permitted on the upload folder',
  EROFS: 'the upload folder is on a read-only file system',
};

export class RetryPolicy {
  readonly baseMs: number;
  readonly factor: number;
  readonly maxMs: number;
  readonly jitter: number;
  readonly permanentMinMs: number;
  readonly #random: () => number;

  constructor(options: RetryPolicyOptions = {}) {
    this.baseMs = options.baseMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.maxMs = options.maxMs ?? 3_600_000;
    this.jitter = options.jitter ?? 0.2;
    this.permanentMinMs = Math.min(options.permanentMinMs ?? 900_000, this.maxMs);
    this.#random = options.random ?? Math.random;
  }

  /** Delay before retry number `attempt` (1 = first retry), jittered, never above maxMs. */
  delayMs(attempt: number, kind: FailureKind = 'transient'): number {
    const n = Math.max(1, Math.floor(attempt));
    const raw = Math.min(this.baseMs * this.factor ** (n - 1), this.maxMs);
    const floor = kind === 'permanent' ? Math.max(raw, this.permanentMinMs) : raw;
    const spread = 1 + this.jitter * (2 * this.#random() - 1);
    return Math.max(0, Math.min(Math.round(floor * spread), this.maxMs));
  }

  /** When to try again after `attempts` failed attempts. */
  nextAttemptAt(attempts: number, kind: FailureKind, now: Date): Date {
    return new Date(now.getTime() + this.delayMs(attempts, kind));
  }
}

/** Sorts an error into "retry normally" and "an admin must fix something (retry slowly)". */
export function classifyFailure(err: unknown): FailureClass {
  const e = err as { name?: unknown; code?: unknown; Code?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  const candidates = [e?.Code, e?.code, e?.name].filter((x): x is string => typeof x === 'string');
  for (const c of candidates) {
    const reason = PERMANENT[c];
    if (reason) return { kind: 'permanent', code: c, reason };
  }
  const status = e?.$metadata?.httpStatusCode;
  if (status === 403) return { kind: 'permanent', code: candidates[0] ?? 'HTTP403', reason: 'the storage service refused the request (HTTP 403)' };
  const code = candidates.find((c) => c !== 'Error') ?? candidates[0] ?? 'Error';
  return { kind: 'transient', code, reason: errorMessage(err) || code };
}

/**
 * Runs `fn` until it succeeds or `maxAttempts` attempts failed, waiting policy.delayMs between
 * attempts. For short in-process retries (dialing); segment uploads instead persist
 * next_attempt_at in the journal and let the sweep retry, so a restart loses no schedule.
 */
export async function retryAsync<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: { maxAttempts: number; signal?: AbortSignal; onRetry?: (err: unknown, attempt: number, delayMs: number) => void },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= options.maxAttempts || options.signal?.aborted) throw err;
      const delay = policy.delayMs(attempt, classifyFailure(err).kind);
      options.onRetry?.(err, attempt, delay);
      await new Promise<void>((resolveWait, rejectWait) => {
        const timer = setTimeout(resolveWait, delay);
        options.signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            rejectWait(err);
          },
          { once: true },
        );
      });
    }
  }
}
