import { connect, type Socket } from 'node:net';
import { GuacStatus, RecgwError, errorMessage } from '../errors.js';
import { GuacamoleParser, encodeInstruction, type Instruction } from '../protocol/index.js';
import { ArenaReader, holdBytes, releaseBytes, type ReadAlignment } from '../protocol/read-arenas.js';
import { settingText, type ResolvedConnection } from './connection-settings.js';

export interface GuacdDialOptions {
  host: string;
  port: number;
  connection: ResolvedConnection;
  /** TCP connect, ms. */
  connectTimeoutMs?: number;
  /** From TCP connect to guacd's `ready`, ms. */
  handshakeTimeoutMs?: number;
}

/** guacd protocol versions this relay speaks; the newest is offered when guacd is newer still. */
const KNOWN_VERSIONS = ['VERSION_1_0_0', 'VERSION_1_1_0', 'VERSION_1_3_0', 'VERSION_1_5_0'];
const OUR_VERSION = 'VERSION_1_5_0';

/**
 * Receives each batch during one read callback: instructions' bytes are valid only until it
 * returns, unless held (read-arenas.ts).
 */
export type GuacdBatchListener = (batch: Instruction[]) => void;

interface ChunkRoute {
  onChunk: (chunk: Buffer) => void;
}
export type GuacdCloseListener = (error: RecgwError | undefined) => void;

/**
 * One TCP connection to guacd, from `select` to `ready` and then the instruction stream.
 * guacd's bytes go through the project's streaming parser, so an instruction or a multi-byte
 * character split across TCP chunks is simply completed by the next chunk (guacamole-lite
 * decoded each chunk as a string on its own, which corrupts split characters and crashes).
 *
 * After `ready` the complete instructions of each TCP chunk are handed over together as one
 * batch, which the relay sends as one WebSocket text frame.
 */
export class GuacdConnection {
  readonly connectionId: string;
  readonly protocolVersion: string;
  readonly #socket: Socket;
  readonly #parser: GuacamoleParser;
  readonly #reader: ArenaReader;
  #batch: Instruction[];
  #backlog: Instruction[][] = [];
  #onBatch: GuacdBatchListener | undefined;
  #onClose: GuacdCloseListener | undefined;
  #closed = false;
  #closeError: RecgwError | undefined;

  private constructor(socket: Socket, reader: ArenaReader, parser: GuacamoleParser, batch: Instruction[], connectionId: string, version: string) {
    this.#socket = socket;
    this.#reader = reader;
    this.#parser = parser;
    this.#batch = batch;
    this.connectionId = connectionId;
    this.protocolVersion = version;
  }

  /**
   * Connects and performs guacd's handshake; resolves once guacd says `ready`. Rejects with
   * RECGW_ERR_GUACD_UNREACHABLE (cannot connect) or RECGW_ERR_GUACD_HANDSHAKE (timeout, guacd's
   * own `error`, connection closed, malformed reply).
   */
  static dial(opts: GuacdDialOptions): Promise<GuacdConnection> {
    const connectTimeout = opts.connectTimeoutMs ?? 10_000;
    const handshakeTimeout = opts.handshakeTimeoutMs ?? 15_000;
    const where = `${opts.host}:${opts.port}`;
    return new Promise<GuacdConnection>((resolve, reject) => {
      // guacd's bytes are read into reused arenas (read-arenas.ts says why); `route` sends each
      // read to the handshake first, then to the relay.
      // The parser is made below; the reader asks it only once reads begin.
      const reader = new ArenaReader({
        get pendingBytes() {
          return parser.pendingBytes;
        },
        movePending: (target) => parser.movePending(target),
      });
      const route: ChunkRoute = { onChunk: () => undefined };
      const socket = connect({
        host: opts.host,
        port: opts.port,
        onread: {
          buffer: reader.nextSlot,
          callback: (n: number) => {
            route.onChunk(reader.took(n));
            return true;
          },
        },
      });
      socket.once('close', () => reader.close());
      socket.setNoDelay(true);
      let settled = false;
      let connected = false;
      let version = 'VERSION_1_0_0';
      // Instructions completed in the same chunk as `ready` (or later, before start()) are kept
      // here in order: a tap attached after `ready` must not miss them (a guacamole-lite defect).
      const afterReady: Instruction[] = [];
      let ready: GuacdConnection | undefined;

      const fail = (err: RecgwError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      // One clock at a time: first for the TCP connect, then for the handshake proper.
      let timer = setTimeout(() => {
        fail(
          new RecgwError('RECGW_ERR_GUACD_UNREACHABLE', `guacd at ${where} did not accept a connection within ${connectTimeout} ms`, {
            guacStatus: GuacStatus.UPSTREAM_TIMEOUT,
          }),
        );
      }, connectTimeout);

      const parser = new GuacamoleParser((ins) => {
        if (ready) {
          afterReady.push(ins);
          return;
        }
        switch (ins.opcode) {
          case 'args': {
            const names = ins.args();
            const reply = handshakeReply(opts.connection, names);
            version = reply.version;
            socket.write(reply.text);
            break;
          }
          case 'ready': {
            ready = new GuacdConnection(socket, reader, parser, afterReady, ins.arg(0), version);
            break;
          }
          case 'error': {
            // guacd's own refusal (unknown protocol, join of a missing connection): pass its
            // message and status on; they hold no secrets.
            const status = Number(ins.arg(1));
            fail(
              new RecgwError('RECGW_ERR_GUACD_HANDSHAKE', `guacd refused the connection: ${ins.arg(0)}`, {
                guacStatus: Number.isInteger(status) && status > 0 ? status : GuacStatus.UPSTREAM_ERROR,
              }),
            );
            break;
          }
          default:
            break; // nothing else is expected before `ready`; guacd ignores nothing we need
        }
      });

      const onData = (chunk: Buffer): void => {
        try {
          parser.push(chunk);
        } catch (err) {
          fail(new RecgwError('RECGW_ERR_GUACD_HANDSHAKE', `guacd at ${where} sent malformed data: ${errorMessage(err)}`, { cause: err, guacStatus: GuacStatus.UPSTREAM_ERROR }));
          return;
        }
        if (ready && !settled) {
          settled = true;
          // These wait in the backlog until start(), beyond this read: keep their bytes.
          for (const ins of afterReady) holdBytes(ins.raw);
          clearTimeout(timer);
          // Hold guacd's stream until the relay is wired (start()); the backlog stays small.
          socket.pause();
          socket.off('error', onError);
          socket.off('close', onClose);
          ready.#adoptSocket(route);
          resolve(ready);
        }
      };
      const onError = (err: NodeJS.ErrnoException): void => {
        fail(
          connected
            ? new RecgwError('RECGW_ERR_GUACD_HANDSHAKE', `connection to guacd at ${where} failed during the handshake (${err.code ?? err.message})`, {
                cause: err,
                guacStatus: GuacStatus.UPSTREAM_ERROR,
              })
            : new RecgwError('RECGW_ERR_GUACD_UNREACHABLE', `cannot connect to guacd at ${where} (${err.code ?? err.message}); is guacd running? check GUACD_HOST/GUACD_PORT`, {
                cause: err,
                guacStatus: GuacStatus.UPSTREAM_UNAVAILABLE,
              }),
        );
      };
      const onClose = (): void => {
        fail(new RecgwError('RECGW_ERR_GUACD_HANDSHAKE', `guacd at ${where} closed the connection during the handshake`, { guacStatus: GuacStatus.UPSTREAM_ERROR }));
      };

      route.onChunk = onData;
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.once('connect', () => {
        connected = true;
        clearTimeout(timer);
        timer = setTimeout(() => {
          fail(
            new RecgwError('RECGW_ERR_GUACD_HANDSHAKE', `guacd at ${where} did not finish the handshake within ${handshakeTimeout} ms`, {
              guacStatus: GuacStatus.UPSTREAM_TIMEOUT,
            }),
          );
        }, handshakeTimeout);
        socket.write(encodeInstruction('select', opts.connection.selector));
      });
    });
  }

  /** Switches the socket from handshake to relay listeners. */
  #adoptSocket(route: ChunkRoute): void {
    // The parser's callback still fills #batch (the array passed in at construction).
    route.onChunk = (chunk: Buffer) => {
      try {
        this.#parser.push(chunk);
      } catch (err) {
        this.#finish(new RecgwError('RECGW_ERR_PROTOCOL', `guacd sent malformed data: ${errorMessage(err)}`, { cause: err, guacStatus: GuacStatus.UPSTREAM_ERROR }));
        return;
      }
      this.#flush();
    };
    let peerEnded = false;
    this.#socket.on('error', (err: NodeJS.ErrnoException) => {
      // After guacd's FIN, a reset (our late writes meeting its closed socket) is just the close.
      if (peerEnded) {
        this.#finish(undefined);
        return;
      }
      this.#finish(new RecgwError('RECGW_ERR_GUACD_UNREACHABLE', `connection to guacd lost (${err.code ?? err.message})`, { cause: err, guacStatus: GuacStatus.UPSTREAM_ERROR }));
    });
    this.#socket.on('close', () => this.#finish(undefined));
    this.#socket.on('end', () => {
      peerEnded = true;
      if (this.#parser.pendingBytes > 0) {
        this.#finish(new RecgwError('RECGW_ERR_PROTOCOL', 'guacd closed the connection inside an instruction', { guacStatus: GuacStatus.UPSTREAM_ERROR }));
      }
    });
    if (this.#batch.length > 0) {
      this.#backlog.push(this.#batch.splice(0));
    }
  }

  #flush(): void {
    if (this.#batch.length === 0) return;
    const batch = this.#batch.splice(0);
    if (this.#onBatch) {
      this.#onBatch(batch);
      return;
    }
    for (const ins of batch) holdBytes(ins.raw);
    this.#backlog.push(batch);
  }

  /** Places guacd's bytes in memory where a recording can write them directly (ArenaReader.alignTo). */
  alignReads(align: ReadAlignment | undefined): void {
    this.#reader.alignTo(align);
  }

  /**
   * Starts delivering guacd's instructions: first whatever arrived with or after `ready`, then
   * one batch per TCP chunk. `onClose` is called once, with an error unless guacd closed cleanly.
   */
  start(onBatch: GuacdBatchListener, onClose: GuacdCloseListener): void {
    this.#onBatch = onBatch;
    this.#onClose = onClose;
    for (const batch of this.#backlog.splice(0)) {
      if (!this.#closed) onBatch(batch);
      for (const ins of batch) releaseBytes(ins.raw);
    }
    if (this.#closed) {
      onClose(this.#closeError);
      return;
    }
    this.#socket.resume();
  }

  /** Writes client bytes to guacd; false when guacd's socket buffers (wait for onDrain). */
  write(data: Buffer): boolean {
    // Once guacd has gone, input is dropped; reporting backpressure here would stall the client side.
    if (this.#closed || this.#socket.writableEnded || this.#socket.destroyed) return true;
    return this.#socket.write(data);
  }

  onDrain(listener: () => void): void {
    this.#socket.on('drain', listener);
  }

  /** Backpressure from the browser side: stop / restart reading from guacd. */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    if (!this.#closed) this.#socket.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#socket.end();
    // Let pending writes go, but never keep a half-closed socket around.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
    this.#finish(undefined);
  }

  #finish(error: RecgwError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    if (error) this.#socket.destroy();
    const listener = this.#onClose;
    this.#onClose = undefined;
    listener?.(error);
  }
}

/** The client's side of guacd's handshake, answering `args` (see GUACAMOLE_FACTS.md). */
export function handshakeReply(conn: ResolvedConnection, argNames: readonly string[]): { text: string; version: string } {
  let version = 'VERSION_1_0_0';
  const values: string[] = [];
  for (const name of argNames) {
    if (name.startsWith('VERSION_')) {
      version = KNOWN_VERSIONS.includes(name) ? name : OUR_VERSION;
      values.push(version);
    } else {
      values.push(settingText(conn.settings[name]));
    }
  }
  let text = encodeInstruction('size', conn.width, conn.height, conn.dpi);
  text += encodeInstruction('audio', ...conn.audio);
  text += encodeInstruction('video', ...conn.video);
  text += encodeInstruction('image', ...conn.image);
  // `timezone` exists from protocol 1.1.0 on; an empty one is left out.
  if (version !== 'VERSION_1_0_0' && conn.timezone !== undefined) text += encodeInstruction('timezone', conn.timezone);
  text += encodeInstruction('connect', ...values);
  return { text, version };
}
