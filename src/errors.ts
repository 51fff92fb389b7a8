// The catalogue of every error recgw raises on purpose. Callers and tests match on `code`,
// never on message text; messages say what the operator should do about it.

export type ErrorCode =
  | 'RECGW_ERR_CONFIG'
  | 'RECGW_ERR_PROTOCOL'
  | 'RECGW_ERR_TOKEN_INVALID'
  | 'RECGW_ERR_TOKEN_EXPIRED'
  | 'RECGW_ERR_DISK_FLOOR'
  | 'RECGW_ERR_SPOOL_UNWRITABLE'
  | 'RECGW_ERR_SPOOL_IN_USE'
  | 'RECGW_ERR_SEGMENT_WRITE'
  | 'RECGW_ERR_GUACD_UNREACHABLE'
  | 'RECGW_ERR_GUACD_HANDSHAKE'
  | 'RECGW_ERR_SHUTTING_DOWN'
  | 'RECGW_ERR_INTERNAL'
  | 'RECGW_ERR_JOURNAL'
  | 'RECGW_ERR_ENCODE'
  | 'RECGW_ERR_FFMPEG'
  | 'RECGW_ERR_UPLOAD'
  | 'RECGW_ERR_UPLOAD_LOCATION'
  | 'RECGW_ERR_INPUT';

/**
 * Guacamole protocol status codes (guacamole/protocol-status.h), sent in `error` instructions so
 * the browser's client shows the right message.
 */
export const GuacStatus = {
  SUCCESS: 0x0000,
  UNSUPPORTED: 0x0100,
  SERVER_ERROR: 0x0200,
  SERVER_BUSY: 0x0201,
  UPSTREAM_TIMEOUT: 0x0202,
  UPSTREAM_ERROR: 0x0203,
  RESOURCE_NOT_FOUND: 0x0204,
  RESOURCE_CONFLICT: 0x0205,
  RESOURCE_CLOSED: 0x0206,
  UPSTREAM_NOT_FOUND: 0x0207,
  UPSTREAM_UNAVAILABLE: 0x0208,
  SESSION_CONFLICT: 0x0209,
  SESSION_TIMEOUT: 0x020a,
  SESSION_CLOSED: 0x020b,
  CLIENT_BAD_REQUEST: 0x0300,
  CLIENT_UNAUTHORIZED: 0x0301,
  CLIENT_FORBIDDEN: 0x0303,
  CLIENT_TIMEOUT: 0x0308,
  CLIENT_OVERRUN: 0x030d,
  CLIENT_BAD_TYPE: 0x030f,
  CLIENT_TOO_MANY: 0x031d,
} as const;

export class RecgwError extends Error {
  readonly code: ErrorCode;
  /** Guacamole status code to report to a client when this error ends a connection. */
  readonly guacStatus: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; guacStatus?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RecgwError';
    this.code = code;
    this.guacStatus = options?.guacStatus ?? GuacStatus.SERVER_ERROR;
  }
}

export class ConfigError extends RecgwError {
  /** One line per problem, each naming the variable and what is allowed. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('RECGW_ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export class ProtocolError extends RecgwError {
  /** Byte offset in the stream where the problem was seen. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super('RECGW_ERR_PROTOCOL', `${message} (at byte ${offset})`, { guacStatus: GuacStatus.CLIENT_BAD_REQUEST });
    this.name = 'ProtocolError';
    this.offset = offset;
  }
}

export function isRecgwError(err: unknown, code?: ErrorCode): err is RecgwError {
  return err instanceof RecgwError && (code === undefined || err.code === code);
}

/** The error's message for logs, without a stack; safe for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
