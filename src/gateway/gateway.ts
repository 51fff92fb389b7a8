import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Config } from '../config/config.js';
import { GuacStatus, RecgwError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { checkDiskFloor } from '../recording/disk-guard.js';
import { clientAddress, trustedProxyMatcher } from './client-address.js';
import type { DiskFloorCheck, SessionRecorder } from './recording-port.js';
import { GatewaySession } from './session.js';

export interface GatewayOptions {
  config: Config;
  recorder: SessionRecorder;
  loggers: { app: Logger; audit: Logger };
  /** Wall-clock epoch ms, for token expiry (tests pin it). */
  now?: () => number;
  /** Free-space check before a recorded session starts; default the recorder's checkDiskFloor. */
  diskFloor?: DiskFloorCheck;
  /** guacd connect / handshake time limits, ms (default 10 s / 15 s). */
  guacdTimeouts?: { connectMs?: number; handshakeMs?: number };
}

/**
 * The WebSocket side of recgw: accepts guacamole-common-js tunnels on an http.Server it is
 * attached to, admits each one (token, recording possible) before guacd is contacted, and
 * relays it through a GatewaySession. Installs no process signal handlers and writes no console
 * output: the caller owns shutdown and logging.
 */
export class Gateway {
  readonly #wss: WebSocketServer;
  readonly #opts: GatewayOptions;
  readonly #sessions = new Set<GatewaySession>();
  readonly #isTrusted: (ip: string) => boolean;
  #closing = false;

  constructor(opts: GatewayOptions) {
    this.#opts = opts;
    this.#isTrusted = trustedProxyMatcher(opts.config.trustedProxies);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // Client instructions are small; clipboard/file blobs come in chunks well under this.
      maxPayload: 16 * 1024 * 1024,
      // guacamole-common-js asks for `guacamole`; a client asking for nothing is still served,
      // as guacamole-lite does.
      handleProtocols: (protocols) => (protocols.has('guacamole') ? 'guacamole' : false),
    });
  }

  /** Sessions admitted or being admitted and not yet ended. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Handles WebSocket upgrades on `server` (every path); plain HTTP stays the server's. */
  attach(server: Server): void {
    server.on('upgrade', this.#onUpgrade);
  }

  #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    if (this.#closing) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, req));
  };

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    const o = this.#opts;
    const session = new GatewaySession(ws, req, clientAddress(req, this.#isTrusted), {
      config: o.config,
      recorder: o.recorder,
      diskFloor: o.diskFloor ?? checkDiskFloor,
      app: o.loggers.app,
      audit: o.loggers.audit,
      now: o.now ?? Date.now,
      guacdTimeouts: { connectMs: o.guacdTimeouts?.connectMs ?? 10_000, handshakeMs: o.guacdTimeouts?.handshakeMs ?? 15_000 },
    });
    this.#sessions.add(session);
    void session.ended.then(() => this.#sessions.delete(session));
    if (this.#closing) {
      void session.end('gateway shutting down', shuttingDown());
      return;
    }
    void session.run();
  }

  /**
   * Stops accepting, ends every session with an `error` instruction and waits until each
   * recording is sealed. The http.Server itself is the caller's to close.
   */
  async close(): Promise<void> {
    this.#closing = true;
    // The upgrade listener stays: late upgrades get a 503 rather than hanging.
    const ended = [...this.#sessions].map((s) => s.end('gateway shutting down', shuttingDown()));
    await Promise.all(ended);
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function shuttingDown(): RecgwError {
  return new RecgwError('RECGW_ERR_SHUTTING_DOWN', 'The gateway is shutting down; reconnect in a moment.', { guacStatus: GuacStatus.SERVER_BUSY });
}
