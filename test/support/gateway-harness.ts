import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { loadConfig, type Config } from '../../src/config/config.js';
import { Gateway, type GatewayOptions } from '../../src/gateway/gateway.js';
import { encryptToken, type TokenPayloadInput } from '../../src/gateway/token.js';
import { createTestLoggers } from '../../src/observability/logger.js';
import type { SegmentRef } from '../../src/pipeline/contracts.js';
import { parseAll, type Instruction } from '../../src/protocol/index.js';
import { setArenaPoisoning } from '../../src/protocol/read-arenas.js';
import { JournalStore, sessionDir } from '../../src/recording/journal.js';
import { Recorder, recorderSettings } from '../../src/recording/recorder.js';
import type { FakeGuacd } from './fake-guacd.js';

// Bytes of guacd's reads used after their arena was handed back would read as '!' and fail the
// byte-for-byte checks of every test that relays through the harness.
setArenaPoisoning(true);

export const TEST_TOKEN_KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8');

/** Captures every log line (app, audit) as text, to grep for secrets and find fields. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  #partial = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const text = this.#partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.#partial = parts.pop() ?? '';
    this.lines.push(...parts.filter(Boolean));
    cb();
  }
  get text(): string {
    return this.lines.join('\n') + this.#partial;
  }
  records(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface HarnessOptions {
  env?: Record<string, string>;
  gateway?: Partial<GatewayOptions>;
  spoolDir?: string;
}

/** A Gateway on a real http.Server on 127.0.0.1:0, a real Recorder on a temp spool, pointed at a stand-in guacd. */
export class GatewayHarness {
  private constructor(
    /** Segments the recorder reported sealed, in order. */
    readonly sealed: SegmentRef[],
    readonly server: Server,
    readonly gateway: Gateway,
    readonly recorder: Recorder,
    readonly config: Config,
    readonly logs: LogCapture,
    readonly tmp: string,
  ) {}

  static async start(guacd: FakeGuacd | { host: string; port: number }, opts: HarnessOptions = {}): Promise<GatewayHarness> {
    const tmp = await mkdtemp(join(tmpdir(), 'recgw-gw-'));
    const spool = opts.spoolDir ?? join(tmp, 'spool');
    const config = loadConfig({
      TOKEN_KEY: TEST_TOKEN_KEY.toString('utf8'),
      RECORDING_SPOOL_DIR: spool,
      GUACD_HOST: guacd.host,
      GUACD_PORT: String(guacd.port),
      RECORDING_MIN_FREE_BYTES: '1',
      ...opts.env,
    });
    const logs = new LogCapture();
    const loggers = createTestLoggers(logs, 'debug');
    const sealed: SegmentRef[] = [];
    const recorder = new Recorder({
      ...recorderSettings(config.recording),
      journals: new JournalStore(config.recording.spoolDir),
      logger: loggers.app,
      onSealed: (ref) => sealed.push(ref),
    });
    const gateway = new Gateway({ config, recorder, loggers, ...opts.gateway });
    const server = createServer((_req, res) => res.writeHead(404).end());
    gateway.attach(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new GatewayHarness(sealed, server, gateway, recorder, config, logs, tmp);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  token(payload: TokenPayloadInput): string {
    return encryptToken(payload, TEST_TOKEN_KEY);
  }

  /** The session's segments concatenated in order, with their journal records. */
  async segments(sessionId: string): Promise<{ files: Buffer[]; journal: { segments: Array<{ number: number; file: string; state: string; bytes: number }> } }> {
    const dir = sessionDir(this.config.recording.spoolDir, sessionId);
    const journal = JSON.parse(await readFile(join(dir, 'session.json'), 'utf8')) as {
      segments: Array<{ number: number; file: string; state: string; bytes: number }>;
    };
    const files: Buffer[] = [];
    for (const s of [...journal.segments].sort((a, b) => a.number - b.number)) files.push(await readFile(join(dir, s.file)));
    return { files, journal };
  }

  async stop(): Promise<void> {
    await this.gateway.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.tmp, { recursive: true, force: true });
  }
}

export interface ReceivedMessage {
  data: Buffer;
  isBinary: boolean;
}

/**
 * A WebSocket client behaving like guacamole-common-js's tunnel: subprotocol `guacamole`,
 * `?token=…`, answers every `sync` with a `sync` (as Guacamole.Client does).
 */
export class TunnelClient {
  readonly messages: ReceivedMessage[] = [];
  readonly instructions: Instruction[] = [];
  /** Set if a message was not whole instructions. */
  parseError: Error | undefined;
  readonly closed: Promise<{ code: number }>;
  readonly opened: Promise<void>;
  syncsSeen = 0;
  #onSync: ((ts: string, n: number) => void) | undefined;

  constructor(readonly ws: WebSocket, opts: { answerSync?: boolean } = {}) {
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve({ code })));
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.messages.push({ data, isBinary });
      let list: Instruction[];
      try {
        list = parseAll(data);
      } catch (err) {
        this.parseError ??= err as Error;
        return;
      }
      for (const ins of list) {
        this.instructions.push(ins);
        if (ins.opcode === 'sync') {
          this.syncsSeen++;
          if (opts.answerSync !== false && ws.readyState === WebSocket.OPEN) ws.send(`4.sync,${ins.arg(0).length}.${ins.arg(0)};`);
          this.#onSync?.(ins.arg(0), this.syncsSeen);
        }
      }
    });
  }

  static connect(url: string, token: string | undefined, opts: { answerSync?: boolean; query?: string; headers?: Record<string, string> } = {}): TunnelClient {
    const q = [token === undefined ? '' : `token=${encodeURIComponent(token)}`, opts.query ?? ''].filter(Boolean).join('&');
    const ws = new WebSocket(`${url}${q ? `?${q}` : ''}`, 'guacamole', { headers: opts.headers });
    return new TunnelClient(ws, opts);
  }

  /** Called on each sync the client receives (after answering it). */
  onSync(listener: (ts: string, n: number) => void): void {
    this.#onSync = listener;
  }

  send(text: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  /** All received bytes in order. */
  received(): Buffer {
    return Buffer.concat(this.messages.map((m) => m.data));
  }

  errors(): Instruction[] {
    return this.instructions.filter((i) => i.opcode === 'error');
  }
}
