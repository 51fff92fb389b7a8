import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import type { Config } from '../config/config.js';
import { GuacStatus, RecgwError, errorMessage, isRecgwError } from '../errors.js';
import { MetricName } from '../observability/logger.js';
import { GuacamoleParser, encodeInstruction, hasOpcode, type Instruction } from '../protocol/index.js';
import { byteRuns, joinViews } from '../protocol/byte-runs.js';
import { holdBytes, releaseBytes } from '../protocol/read-arenas.js';
import type { ClientAddress } from './client-address.js';
import { resolveConnection, type ResolvedConnection } from './connection-settings.js';
import { GuacdConnection } from './guacd-client.js';
import type { DiskFloorCheck, RecordingTap, SessionRecorder } from './recording-port.js';
import { decryptToken, type TokenPayload } from './token.js';

/** Pause reading guacd once the browser's socket holds this much unsent data... */
const CLIENT_BUFFER_HIGH = 4 * 1024 * 1024;
/** Client input held before guacd's first sync; a client sending more is misbehaving. */
const MAX_HELD_INPUT_BYTES = 1024 * 1024;
/** Largest client instruction: clipboard and file uploads arrive as base64 blobs. */
const CLIENT_PARSER_LIMITS = { maxInstructionBytes: 8 * 1024 * 1024, maxElementLength: 8 * 1024 * 1024 };

export interface SessionDeps {
  config: Config;
  recorder: SessionRecorder;
  diskFloor: DiskFloorCheck;
  app: Logger;
  audit: Logger;
  now: () => number;
  guacdTimeouts: { connectMs: number; handshakeMs: number };
}

type Phase = 'admitting' | 'connecting' | 'relaying' | 'ended';

/**
 * One browser connection: admission, the guacd connection, and the relay between them with the
 * recording tap. Every message to the browser is one text frame of whole instructions.
 */
export class GatewaySession {
  /** Resolves once both sockets are closed and the recording is sealed. */
  readonly ended: Promise<void>;
  readonly #ws: WebSocket;
  readonly #req: IncomingMessage;
  readonly #deps: SessionDeps;
  readonly #address: ClientAddress;
  readonly #clientParser: GuacamoleParser;
  #phase: Phase = 'admitting';
  #resolveEnded!: () => void;
  #clientBatch: Instruction[] = [];
  #held: Instruction[] = [];
  #heldBytes = 0;
  #guacdSynced = false;
  #guacdPaused = false;
  #guacd: GuacdConnection | undefined;
  #recording: RecordingTap | undefined;
  #payload: TokenPayload | undefined;
  #protocol: string | undefined;
  #granted = false;
  #startedAt = 0;
  #bytesToClient = 0;

  constructor(ws: WebSocket, req: IncomingMessage, address: ClientAddress, deps: SessionDeps) {
    this.#ws = ws;
    this.#req = req;
    this.#address = address;
    this.#deps = deps;
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    this.#clientParser = new GuacamoleParser((ins) => this.#clientBatch.push(ins), CLIENT_PARSER_LIMITS);
    // Listen from the first moment: the browser pings while admission and the handshake run.
    ws.on('message', (data: RawData) => this.#onClientMessage(toBuffer(data)));
    ws.on('close', () => void this.end('client closed the connection'));
    ws.on('error', (err) => void this.end(`client socket error: ${err.message}`));
  }

  // A method, so TypeScript does not narrow #phase across awaits (end() may run meanwhile).
  #isEnded(): boolean {
    return this.#phase === 'ended';
  }

  get sessionId(): string | undefined {
    return this.#payload?.session.id;
  }

  /** Admission, recording start, guacd handshake, then relaying. Never throws. */
  async run(): Promise<void> {
    let stage = 'token';
    try {
      const payload = this.#admitToken();
      this.#payload = payload;
      this.#protocol = payload.connection.type;
      stage = 'settings';
      const url = new URL(this.#req.url ?? '/', 'http://recgw.invalid');
      const connection = resolveConnection(payload, url.searchParams);
      if (payload.recording) {
        stage = 'recording';
        await this.#deps.recorder.checkWritable();
        await this.#deps.diskFloor(this.#deps.config.recording.spoolDir, this.#deps.config.recording.minFreeBytes);
        if (this.#isEnded()) return;
        this.#recording = await this.#deps.recorder.start({
          sessionId: payload.session.id,
          protocol: payload.connection.type,
          userId: payload.session.user_id,
          username: payload.session.username,
          imageId: payload.session.image_id,
          imageFriendlyName: payload.session.image_friendly_name,
          clientIp: this.#address.clientIp,
          forwardedForClientIp: this.#address.forwardedForClientIp,
          userAgent: this.#userAgent(),
        });
        this.#recording.onFailure((err) => void this.end('recording failed', err));
        if (this.#isEnded()) {
          await this.#recording.close('client left before guacd was contacted');
          return;
        }
      }
      stage = 'guacd';
      this.#phase = 'connecting';
      await this.#connect(connection);
    } catch (err) {
      const e = isRecgwError(err)
        ? err
        : new RecgwError('RECGW_ERR_INTERNAL', `unexpected failure during ${stage}: ${errorMessage(err)}`, { cause: err });
      this.#refuse(e, stage);
    }
  }

  #admitToken(): TokenPayload {
    const key = this.#deps.config.tokenKey;
    if (!key) {
      throw new RecgwError('RECGW_ERR_TOKEN_INVALID', 'the gateway has no TOKEN_KEY configured, so no token can be checked', {
        guacStatus: GuacStatus.CLIENT_UNAUTHORIZED,
      });
    }
    const url = new URL(this.#req.url ?? '/', 'http://recgw.invalid');
    return decryptToken(url.searchParams.get('token') ?? '', key, this.#deps.now());
  }

  async #connect(connection: ResolvedConnection): Promise<void> {
    const { host, port } = this.#deps.config.guacd;
    const guacd = await GuacdConnection.dial({
      host,
      port,
      connection,
      connectTimeoutMs: this.#deps.guacdTimeouts.connectMs,
      handshakeTimeoutMs: this.#deps.guacdTimeouts.handshakeMs,
    });
    if (this.#isEnded()) {
      guacd.close();
      return;
    }
    this.#guacd = guacd;
    this.#phase = 'relaying';
    this.#granted = true;
    this.#startedAt = Date.now();
    this.#auditAttempt(true, undefined);
    this.#deps.app.info(
      // metric_name sits on the audit line only: both loggers feed the Prometheus counters.
      { ...this.#fields(), connection_id: guacd.connectionId, recorded: this.#recording !== undefined },
      'session started',
    );
    // The browser's tunnel takes its id from this internal instruction (guacamole-lite sends it too).
    this.#sendToClient(Buffer.from(encodeInstruction('', guacd.connectionId), 'utf8'));
    guacd.onDrain(() => this.#ws.resume());
    guacd.alignReads(this.#recording?.readAlignment);
    guacd.start(
      (batch) => this.#onGuacdBatch(batch),
      (err) => void this.end(err ? `guacd connection failed: ${err.message}` : 'guacd closed the connection', err),
    );
  }

  #onGuacdBatch(batch: Instruction[]): void {
    if (this.#phase !== 'relaying') return;
    // The batch's bytes as back-to-back views: sent as they are, and queued so by the tap.
    const runs = adjacentRuns(batch);
    try {
      this.#recording?.serverBatch(batch, runs);
    } catch (err) {
      void this.end('recording failed', asRecgwError(err, 'RECGW_ERR_SEGMENT_WRITE'));
      return;
    }
    this.#sendRuns(runs);
    if (!this.#guacdSynced && batch.some((ins) => hasOpcode(ins.raw, 'sync'))) {
      this.#guacdSynced = true;
      this.#flushHeld();
    }
  }

  #onClientMessage(data: Buffer): void {
    if (this.#phase === 'ended') return;
    try {
      this.#clientParser.push(data);
    } catch (err) {
      this.#clientBatch = [];
      void this.end('client sent malformed instructions', asRecgwError(err, 'RECGW_ERR_PROTOCOL'));
      return;
    }
    const batch = this.#clientBatch;
    if (batch.length === 0) return;
    this.#clientBatch = [];
    const forward: Instruction[] = [];
    for (const ins of batch) {
      if (ins.raw[0] === 0x30 /* '0.' */ && ins.opcode === '') {
        // Tunnel-internal: Guacamole's own tunnel echoes `ping` back and drops the rest; none of
        // it is for guacd or the recording.
        if (ins.arg(0) === 'ping') this.#sendToClient(ins.raw);
        continue;
      }
      forward.push(ins);
    }
    if (forward.length === 0) return;
    if (this.#phase === 'relaying' && this.#guacdSynced) {
      this.#forward(forward);
      return;
    }
    // guacd 1.5.5's VNC support crashes on a mouse event before its first sync: hold input.
    for (const ins of forward) {
      this.#held.push(ins);
      this.#heldBytes += ins.raw.length;
    }
    if (this.#heldBytes > MAX_HELD_INPUT_BYTES) {
      void this.end(
        'client sent too much input before the session started',
        new RecgwError('RECGW_ERR_INPUT', 'too much input before the remote display was ready', { guacStatus: GuacStatus.CLIENT_OVERRUN }),
      );
    }
  }

  #flushHeld(): void {
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    if (held.length > 0) this.#forward(held);
  }

  #forward(list: Instruction[]): void {
    const guacd = this.#guacd;
    if (!guacd) return;
    const rec = this.#recording;
    if (rec) {
      try {
        for (const ins of list) rec.clientInstruction(ins);
      } catch (err) {
        void this.end('recording failed', asRecgwError(err, 'RECGW_ERR_SEGMENT_WRITE'));
        return;
      }
    }
    if (!guacd.write(joinRaw(list))) this.#ws.pause();
  }

  #sendToClient(data: Buffer): void {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    this.#bytesToClient += data.length;
    // ws keeps `data` until the socket has taken it: hold it if it is a read arena's.
    holdBytes(data);
    ws.send(data, { binary: false }, (err) => {
      releaseBytes(data);
      this.#afterSend(err);
    });
    this.#checkClientBuffer();
  }

  /**
   * guacd's instructions (a batch's adjacentRuns()) as one message. A batch is one socket read,
   * usually one slice of a read arena: an instruction cut by an arena's end is moved into the
   * next one (read-arenas.ts). One longer than that move allows is joined into a buffer of its
   * own, and the batch is then several slices. Joining those would copy the whole batch;
   * instead the message goes out as fragments (RFC 6455 continuation frames: the browser
   * reassembles them, so guacamole-common-js still sees one message of whole instructions),
   * corked so they leave in one system call.
   */
  #sendRuns(runs: readonly Buffer[]): void {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (runs.length === 1) {
      this.#sendToClient(runs[0]!);
      return;
    }
    const socket = this.#req.socket;
    socket.cork();
    const last = runs.length - 1;
    for (let i = 0; i <= last; i++) {
      this.#bytesToClient += runs[i]!.length;
      holdBytes(runs[i]!);
    }
    for (let i = 0; i < last; i++) ws.send(runs[i]!, { binary: false, fin: false });
    // Frames go out in order, so when the last one is taken all are.
    ws.send(runs[last]!, { binary: false, fin: true }, (err) => {
      for (const run of runs) releaseBytes(run);
      this.#afterSend(err);
    });
    socket.uncork();
    this.#checkClientBuffer();
  }

  readonly #afterSend = (err?: Error): void => {
    if (err) {
      void this.end(`sending to the client failed: ${err.message}`);
      return;
    }
    if (this.#guacdPaused && this.#ws.bufferedAmount < CLIENT_BUFFER_HIGH / 4) {
      this.#guacdPaused = false;
      this.#guacd?.resume();
    }
  };

  #checkClientBuffer(): void {
    if (!this.#guacdPaused && this.#ws.bufferedAmount > CLIENT_BUFFER_HIGH && this.#guacd) {
      // A slow browser: stop reading guacd rather than buffer without bound (guacd then slows
      // down on its own, as it would with a slow direct client).
      this.#guacdPaused = true;
      this.#guacd.pause();
    }
  }

  /**
   * Ends the session: an `error` instruction first when there is an error, then both sockets
   * close and the recording is sealed. Idempotent.
   */
  async end(reason: string, error?: RecgwError): Promise<void> {
    if (this.#phase === 'ended') return this.ended;
    const wasRelaying = this.#phase === 'relaying';
    this.#phase = 'ended';
    if (error) this.#sendError(error);
    this.#closeClient();
    this.#guacd?.close();
    if (this.#recording) {
      try {
        await this.#recording.close(reason);
      } catch (err) {
        this.#deps.app.error({ ...this.#fields(), reason: errorMessage(err) }, 'sealing the recording failed');
      }
    }
    if (wasRelaying || this.#granted) {
      this.#deps.app.info(
        {
          ...this.#fields(),
          metric_name: MetricName.provisionDestroy,
          reason,
          ...(error ? { err_code: error.code } : {}),
          duration_ms: Date.now() - this.#startedAt,
          bytes_to_client: this.#bytesToClient,
        },
        'session ended',
      );
    }
    this.#resolveEnded();
  }

  #refuse(err: RecgwError, stage: string): void {
    if (this.#phase === 'ended') {
      this.#resolveEnded();
      return;
    }
    this.#auditAttempt(false, err);
    this.#deps.app.warn(
      {
        ...this.#fields(),
        err_code: err.code,
        stage,
        reason: err.message,
      },
      'connection refused',
    );
    void this.end(`refused: ${err.code}`, err);
  }

  #auditAttempt(granted: boolean, err: RecgwError | undefined): void {
    this.#deps.audit.info(
      {
        ...this.#fields(),
        action: 'session.connect',
        element: 'session',
        element_id: this.#payload?.session.id,
        access_granted: granted,
        ...(err ? { access_denied_reason: err.code, reason: err.message } : {}),
        metric_name: granted ? MetricName.provisionCreate : refusalMetric(err),
      },
      granted ? 'connection granted' : 'connection refused',
    );
  }

  #sendError(err: RecgwError): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(encodeInstruction('error', clientMessage(err), err.guacStatus), { binary: false });
  }

  #closeClient(): void {
    const ws = this.#ws;
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      // Paused for guacd backpressure, the socket would never read the client's close reply.
      if (ws.isPaused) ws.resume();
      ws.close(1000);
      // A peer that never answers the close handshake is cut off.
      setTimeout(() => ws.terminate(), 5000).unref();
    }
  }

  #userAgent(): string | undefined {
    const ua = this.#req.headers['user-agent'];
    return ua ? ua.slice(0, 512) : undefined;
  }

  /** Fields every log line of this session carries (never the token or connection settings). */
  #fields(): Record<string, unknown> {
    const s = this.#payload?.session;
    return {
      session_id: s?.id,
      user_id: s?.user_id,
      user_name: s?.username,
      protocol: this.#protocol,
      client_ip: this.#address.clientIp,
      request_ip: this.#address.clientIp,
      forwarded_for_client_ip: this.#address.forwardedForClientIp,
      user_agent: this.#userAgent(),
    };
  }
}

/** One counter per refusal: a bad token counts as a failed login, anything else as a refused provision. */
function refusalMetric(err: RecgwError | undefined): string {
  return err?.code === 'RECGW_ERR_TOKEN_INVALID' || err?.code === 'RECGW_ERR_TOKEN_EXPIRED'
    ? MetricName.loginFailedInvalidToken
    : MetricName.provisionRefused;
}

/**
 * What the browser is told. Token and input messages are ours and safe to show; for the rest
 * a fixed text, so paths and internal details stay in the logs.
 */
function clientMessage(err: RecgwError): string {
  switch (err.code) {
    case 'RECGW_ERR_TOKEN_INVALID':
    case 'RECGW_ERR_TOKEN_EXPIRED':
    case 'RECGW_ERR_INPUT':
    case 'RECGW_ERR_PROTOCOL':
    case 'RECGW_ERR_SHUTTING_DOWN':
      return err.message;
    case 'RECGW_ERR_DISK_FLOOR':
      return 'Not enough free space to record this session; it cannot start (or continue) unrecorded. Try again later.';
    case 'RECGW_ERR_SPOOL_UNWRITABLE':
      return 'Recording storage is not writable, so the session cannot be recorded and is refused.';
    case 'RECGW_ERR_SEGMENT_WRITE':
    case 'RECGW_ERR_JOURNAL':
      return 'Recording failed; the session was ended so it is never relayed unrecorded.';
    case 'RECGW_ERR_GUACD_UNREACHABLE':
      return 'The remote desktop service (guacd) is unavailable.';
    case 'RECGW_ERR_GUACD_HANDSHAKE':
      return err.message.startsWith('guacd refused') ? err.message : 'The remote desktop service (guacd) did not complete the connection.';
    default:
      return 'The gateway ended the session.';
  }
}

function asRecgwError(err: unknown, code: RecgwError['code']): RecgwError {
  return isRecgwError(err) ? err : new RecgwError(code, errorMessage(err), { cause: err });
}

/** The bytes of consecutive instructions, as one buffer (a view when they lie back to back). */
export function joinRaw(list: readonly Instruction[]): Buffer {
  return joinViews(list.map((i) => i.raw));
}

/** The bytes of consecutive instructions (at least one), one view per back-to-back run. */
export function adjacentRuns(list: readonly Instruction[]): Buffer[] {
  return byteRuns(list.map((i) => i.raw));
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
