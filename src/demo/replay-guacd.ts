import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { GuacamoleParser, encodeInstruction, parseAll, type Instruction } from '../protocol/index.js';

// A guacd stand-in: guacd 1.5.5's real handshake, then a replay of a guacd recording with its
// own sync timing (scaled), in TCP chunks of a chosen size. It keeps what every client sent so
// tests can assert on it, and every connection it got so admission tests can assert it got none.
// It lives in src/ because `recgw demo` serves sessions from it (test/support/fake-guacd.ts
// re-exports it for the tests and benchmarks).

/** guacd 1.5.5's argument names (a faithful prefix of each protocol's list, recording ones included). */
export const GUACD_ARGS: Record<string, readonly string[]> = {
  vnc: [
    'hostname', 'port', 'read-only', 'encodings', 'username', 'password', 'swap-red-blue', 'color-depth', 'cursor',
    'autoretry', 'clipboard-encoding', 'dest-host', 'dest-port', 'enable-audio', 'audio-servername', 'reverse-connect',
    'listen-timeout', 'enable-sftp', 'sftp-hostname', 'sftp-host-key', 'sftp-port', 'sftp-username', 'sftp-password',
    'sftp-private-key', 'sftp-passphrase', 'sftp-directory', 'sftp-root-directory', 'sftp-server-alive-interval',
    'sftp-disable-download', 'sftp-disable-upload', 'recording-path', 'recording-name', 'recording-exclude-output',
    'recording-exclude-mouse', 'recording-include-keys', 'create-recording-path', 'disable-copy', 'disable-paste',
    'wol-send-packet', 'wol-mac-addr', 'wol-broadcast-addr', 'wol-udp-port', 'wol-wait-time', 'force-lossless',
  ],
  ssh: [
    'hostname', 'host-key', 'port', 'username', 'password', 'font-name', 'font-size', 'enable-sftp',
    'sftp-root-directory', 'sftp-disable-download', 'sftp-disable-upload', 'private-key', 'passphrase', 'color-scheme',
    'command', 'typescript-path', 'typescript-name', 'create-typescript-path', 'recording-path', 'recording-name',
    'recording-exclude-output', 'recording-exclude-mouse', 'recording-include-keys', 'create-recording-path',
    'read-only', 'server-alive-interval', 'backspace', 'terminal-type', 'scrollback', 'locale', 'timezone',
    'disable-copy', 'disable-paste', 'wol-send-packet', 'wol-mac-addr', 'wol-broadcast-addr', 'wol-udp-port', 'wol-wait-time',
  ],
  rdp: [
    'hostname', 'port', 'timeout', 'domain', 'username', 'password', 'width', 'height', 'dpi', 'initial-program',
    'color-depth', 'disable-audio', 'enable-printing', 'printer-name', 'enable-drive', 'drive-name', 'drive-path',
    'create-drive-path', 'disable-download', 'disable-upload', 'console', 'console-audio', 'server-layout', 'security',
    'ignore-cert', 'disable-auth', 'remote-app', 'remote-app-dir', 'remote-app-args', 'static-channels', 'client-name',
    'enable-wallpaper', 'enable-theming', 'enable-font-smoothing', 'enable-full-window-drag', 'enable-desktop-composition',
    'enable-menu-animations', 'disable-bitmap-caching', 'disable-offscreen-caching', 'disable-glyph-caching',
    'preconnection-id', 'preconnection-blob', 'timezone', 'enable-sftp', 'sftp-hostname', 'sftp-host-key', 'sftp-port',
    'sftp-username', 'sftp-password', 'sftp-private-key', 'sftp-passphrase', 'sftp-directory', 'sftp-root-directory',
    'sftp-server-alive-interval', 'sftp-disable-download', 'sftp-disable-upload', 'recording-path', 'recording-name',
    'recording-exclude-output', 'recording-exclude-mouse', 'recording-exclude-touch', 'recording-include-keys',
    'create-recording-path', 'resize-method', 'enable-audio-input', 'enable-touch', 'read-only', 'gateway-hostname',
    'gateway-port', 'gateway-domain', 'gateway-username', 'gateway-password', 'load-balance-info', 'disable-copy',
    'disable-paste', 'wol-send-packet', 'wol-mac-addr', 'wol-broadcast-addr', 'wol-udp-port', 'wol-wait-time',
    'force-lossless', 'normalize-clipboard',
  ],
  telnet: ['hostname', 'port', 'username', 'username-regex', 'password', 'password-regex', 'font-name', 'font-size', 'color-scheme', 'typescript-path', 'typescript-name', 'create-typescript-path', 'recording-path', 'recording-name', 'create-recording-path', 'read-only', 'backspace', 'terminal-type', 'scrollback'],
  kubernetes: ['hostname', 'port', 'namespace', 'pod', 'container', 'exec-command', 'use-ssl', 'client-cert', 'client-key', 'ca-cert', 'ignore-cert', 'font-name', 'font-size', 'color-scheme', 'typescript-path', 'typescript-name', 'create-typescript-path', 'recording-path', 'recording-name', 'create-recording-path', 'read-only', 'backspace', 'scrollback'],
};

export interface FakeGuacdOptions {
  /** What to replay after `ready`: a fixture path (gzip or plain) or protocol bytes. Default: nothing. */
  replay?: string | Buffer;
  /** Playback speed against the recording's sync clock; Infinity = as fast as the socket takes it. */
  speed?: number;
  /** Bytes per TCP write (may split instructions and multi-byte characters anywhere). Default 64 KiB. */
  chunkSize?: number;
  /** Pause between writes so the gateway sees each write as its own TCP chunk. Default 0. */
  chunkDelayMs?: number;
  /** Add an audio and/or clipboard stream (opening instruction, blob, end) right after the first sync. */
  inject?: { audio?: boolean; clipboard?: boolean };
  /** Send `ready` in the same TCP write as the first replayed bytes (default true: it happens with guacd). */
  readyWithFirstChunk?: boolean;
  /** After the replay: 'close' the connection (default) or 'hold' it open until the client leaves. */
  afterReplay?: 'close' | 'hold';
  /** Like guacd 1.5.5 VNC: drop the connection when a client mouse event arrives before the first sync. */
  crashOnEarlyMouse?: boolean;
  /** Keep a copy of everything sent after `ready` (default true; benchmarks turn it off). */
  keepSent?: boolean;
  /** Keep what clients send after `connect` in clientInstructions (default true; the demo, which runs for hours, turns it off). */
  keepReceived?: boolean;
  /** Wait this long (everything before it already written) before sending the first sync. */
  firstSyncDelayMs?: number;
  /**
   * Replay this many times back to back in one connection (benchmarks; Infinity for the demo).
   * Default 1. Timed replays shift each later loop's sync timestamps so guacd's clock keeps
   * moving forward across loops, as it does live (recordings with a clock going back are refused
   * by guacenc).
   */
  loops?: number;
  /**
   * Timed replays: note when each `sync` goes out and, when the client acknowledges it (a
   * `sync` with the same timestamp, as guacamole-common-js sends once it has drawn the frame),
   * keep the round trip in `syncRoundTrips`: guacd's own measure of how far behind the client is.
   */
  timeSyncs?: boolean;
}

/** Stream indexes of injected streams: far above anything the fixtures use. */
export const INJECTED_AUDIO_STREAM = '900';
export const INJECTED_CLIPBOARD_STREAM = '901';

export interface ClientInstructionRecord {
  opcode: string;
  args: string[];
  raw: Buffer;
  /** How many `sync` instructions the stand-in had sent when this arrived. */
  syncsSentBefore: number;
}

export class FakeGuacdConnection {
  readonly id = `$${randomUUID()}`;
  selector: string | undefined;
  /** Handshake instructions from the client, by opcode (size, audio, video, image, timezone, connect). */
  readonly handshake = new Map<string, string[]>();
  /** `connect` values by argument name. */
  readonly connectArgs = new Map<string, string>();
  /** What the client sent after `connect`, in order. */
  readonly clientInstructions: ClientInstructionRecord[] = [];
  /** Bytes sent after `ready` (when keepSent). */
  readonly sentChunks: Buffer[] = [];
  sentBytes = 0;
  syncsSent = 0;
  /** With timeSyncs: ms from a sync's write to the client's acknowledgement, in arrival order. */
  readonly syncRoundTrips: number[] = [];
  /** With timeSyncs: when each sync not yet acknowledged was written, by timestamp. */
  readonly syncSentAt = new Map<number, number>();
  crashed = false;
  /** Resolves when the connection is closed, from either side. */
  readonly closed: Promise<void>;
  /** Resolves when the whole replay has been written. */
  readonly replayed: Promise<void>;
  #resolveReplayed!: () => void;

  constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.replayed = new Promise((resolve) => (this.#resolveReplayed = resolve));
  }

  /** Everything sent after `ready`, as one buffer. */
  sentAfterReady(): Buffer {
    return Buffer.concat(this.sentChunks);
  }

  get ready(): boolean {
    return this.handshake.has('connect');
  }

  markReplayed(): void {
    this.#resolveReplayed();
  }
}

export class FakeGuacd {
  readonly connections: FakeGuacdConnection[] = [];
  readonly #server: Server;
  readonly #opts: FakeGuacdOptions;
  #replayBytes: Buffer | undefined;
  #syncCount: number | undefined;
  #port = 0;

  private constructor(server: Server, opts: FakeGuacdOptions) {
    this.#server = server;
    this.#opts = opts;
  }

  static async start(opts: FakeGuacdOptions = {}): Promise<FakeGuacd> {
    const server = createServer();
    const fake = new FakeGuacd(server, opts);
    fake.#replayBytes = opts.replay === undefined ? Buffer.alloc(0) : await loadReplay(opts.replay);
    server.on('connection', (socket) => fake.#onConnection(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.#port = (server.address() as AddressInfo).port;
    return fake;
  }

  get host(): string {
    return '127.0.0.1';
  }

  get port(): number {
    return this.#port;
  }

  /** The bytes one replay sends after `ready` (before injection), for tests to compare with. */
  get replayBytes(): Buffer {
    return this.#replayBytes ?? Buffer.alloc(0);
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(socket: Socket): void {
    socket.setNoDelay(true);
    const conn = new FakeGuacdConnection(socket);
    this.connections.push(conn);
    socket.on('error', () => socket.destroy());
    const parser = new GuacamoleParser((ins) => this.#onClientInstruction(conn, ins));
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch {
        socket.destroy(); // guacd drops a client that sends garbage
      }
    });
  }

  #onClientInstruction(conn: FakeGuacdConnection, ins: Instruction): void {
    if (conn.selector === undefined) {
      if (ins.opcode !== 'select') {
        conn.socket.destroy();
        return;
      }
      conn.selector = ins.arg(0);
      const protocol = conn.selector.startsWith('$') ? 'vnc' : conn.selector;
      const names = GUACD_ARGS[protocol];
      if (!names) {
        conn.socket.end(encodeInstruction('error', 'Protocol not supported', 0x0100));
        return;
      }
      conn.socket.write(encodeInstruction('args', 'VERSION_1_5_0', ...names));
      return;
    }
    if (!conn.ready) {
      conn.handshake.set(ins.opcode, ins.args());
      if (ins.opcode === 'connect') {
        const protocol = conn.selector.startsWith('$') ? 'vnc' : conn.selector;
        const names = ['VERSION', ...(GUACD_ARGS[protocol] ?? [])];
        ins.args().forEach((v, i) => conn.connectArgs.set(names[i] ?? `#${i}`, v));
        void this.#replay(conn);
      }
      return;
    }
    if (this.#opts.timeSyncs && ins.opcode === 'sync') {
      const sentAt = conn.syncSentAt.get(ins.intArg(0));
      if (sentAt !== undefined) {
        conn.syncRoundTrips.push(performance.now() - sentAt);
        conn.syncSentAt.delete(ins.intArg(0));
      }
    }
    if (this.#opts.keepReceived !== false) conn.clientInstructions.push({ opcode: ins.opcode, args: ins.args(), raw: Buffer.from(ins.raw), syncsSentBefore: conn.syncsSent });
    if (this.#opts.crashOnEarlyMouse && ins.opcode === 'mouse' && conn.syncsSent === 0) {
      conn.crashed = true;
      conn.socket.destroy();
    }
  }

  async #replay(conn: FakeGuacdConnection): Promise<void> {
    const o = this.#opts;
    const speed = o.speed ?? Number.POSITIVE_INFINITY;
    const chunkSize = o.chunkSize ?? 64 * 1024;
    const keep = o.keepSent ?? true;
    const socket = conn.socket;
    const ready = Buffer.from(encodeInstruction('ready', conn.id));
    let pending: Buffer[] = o.readyWithFirstChunk === false ? [] : [ready];
    let pendingBytes = pending.length ? ready.length : 0;
    let readySent = pending.length === 0;
    if (readySent) socket.write(ready);

    const write = async (data: Buffer): Promise<void> => {
      if (socket.destroyed) return;
      if (!socket.write(data)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
      if (o.chunkDelayMs) await sleep(o.chunkDelayMs);
    };
    /** Timestamps of the syncs in `pending` (timeSyncs): they go out with the next flush. */
    let pendingSyncs: number[] = [];
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      if (pendingSyncs.length > 0) {
        const at = performance.now();
        for (const ts of pendingSyncs) if (!conn.syncSentAt.has(ts)) conn.syncSentAt.set(ts, at);
        pendingSyncs = [];
      }
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      for (let off = 0; off < all.length; off += chunkSize) {
        await write(all.subarray(off, Math.min(all.length, off + chunkSize)));
        if (socket.destroyed) return;
      }
    };
    const send = async (data: Buffer): Promise<void> => {
      if (keep) conn.sentChunks.push(data);
      conn.sentBytes += data.length;
      pending.push(data);
      pendingBytes += data.length;
      if (pendingBytes >= chunkSize * 4) await flush();
    };

    if (!Number.isFinite(speed) && !o.inject && !o.firstSyncDelayMs && !o.chunkDelayMs) {
      // Fast path (benchmarks): the replay's bytes as they are, chunk after chunk.
      const bytes = this.replayBytes;
      const syncs = (this.#syncCount ??= parseAll(bytes).filter((i) => i.opcode === 'sync').length);
      for (let loop = 0; loop < (o.loops ?? 1) && !socket.destroyed; loop++) {
        if (keep) conn.sentChunks.push(bytes);
        conn.sentBytes += bytes.length;
        conn.syncsSent += syncs;
        pending.push(bytes);
        pendingBytes += bytes.length;
        await flush();
      }
      conn.markReplayed();
      if ((o.afterReplay ?? 'close') === 'close') socket.end();
      return;
    }
    const instructions = parseAll(this.replayBytes);
    const syncTimes = instructions.filter((i) => i.opcode === 'sync').map((i) => i.intArg(0));
    // Each later loop starts one second after the previous loop's last sync.
    const loopShift = syncTimes.length ? syncTimes[syncTimes.length - 1]! - syncTimes[0]! + 1000 : 0;
    let lastSync: number | undefined;
    let injected = false;
    for (let loop = 0; loop < (o.loops ?? 1) && !socket.destroyed; loop++) {
      for (const ins of instructions) {
        if (socket.destroyed) break;
        const isSync = ins.opcode === 'sync';
        if (isSync && conn.syncsSent === 0 && o.firstSyncDelayMs) {
          await flush();
          await sleep(o.firstSyncDelayMs);
        }
        if (isSync) conn.syncsSent++;
        const shifted = isSync && loop > 0 ? shiftSync(ins, loop * loopShift) : undefined;
        const ts = isSync ? ins.intArg(0) + (loop > 0 ? loop * loopShift : 0) : 0;
        if (isSync && o.timeSyncs) pendingSyncs.push(ts);
        await send(shifted ?? ins.raw);
        if (!isSync) continue;
        if (!injected && o.inject) {
          injected = true;
          for (const part of injectedStreams(o.inject)) await send(part);
        }
        if (Number.isFinite(speed) && lastSync !== undefined && ts > lastSync) {
          await flush();
          await sleep((ts - lastSync) / speed);
        }
        lastSync = ts;
      }
    }
    await flush();
    void readySent;
    conn.markReplayed();
    if ((o.afterReplay ?? 'close') === 'close') socket.end();
  }
}

/** The extra streams inject adds, each instruction as its own buffer. */
export function injectedStreams(inject: { audio?: boolean; clipboard?: boolean }): Buffer[] {
  const out: string[] = [];
  if (inject.audio) {
    out.push(
      encodeInstruction('audio', INJECTED_AUDIO_STREAM, 'audio/L16;rate=44100,channels=2'),
      encodeInstruction('blob', INJECTED_AUDIO_STREAM, Buffer.alloc(64, 7).toString('base64')),
      encodeInstruction('end', INJECTED_AUDIO_STREAM),
    );
  }
  if (inject.clipboard) {
    out.push(
      encodeInstruction('clipboard', INJECTED_CLIPBOARD_STREAM, 'text/plain'),
      encodeInstruction('blob', INJECTED_CLIPBOARD_STREAM, Buffer.from('secret clipboard text').toString('base64')),
      encodeInstruction('end', INJECTED_CLIPBOARD_STREAM),
    );
  }
  return out.map((s) => Buffer.from(s, 'utf8'));
}

/**
 * A guacd recording as guacd would send it live: the recording-only lines (the client's mouse
 * moves `mouse,x,y,mask,ts` and keys `key,keysym,pressed,ts`, which guacd writes into its own
 * recording but never sends) are left out; everything else is kept byte for byte.
 */
export async function loadReplay(source: string | Buffer): Promise<Buffer> {
  let bytes = typeof source === 'string' ? await readFile(source) : source;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const kept = parseAll(bytes).filter((ins) => !isRecordingOnly(ins));
  return Buffer.concat(kept.map((i) => i.raw));
}

export function isRecordingOnly(ins: Instruction): boolean {
  return (ins.opcode === 'mouse' && ins.argCount >= 4) || (ins.opcode === 'key' && ins.argCount >= 3);
}

/** A `sync` with its timestamp moved on by `byMs` (other arguments, e.g. frame counts, kept). */
function shiftSync(ins: Instruction, byMs: number): Buffer {
  const args = ins.args();
  args[0] = String(ins.intArg(0) + byMs);
  return Buffer.from(encodeInstruction('sync', ...args), 'utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
