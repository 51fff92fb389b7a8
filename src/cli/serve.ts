import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { describeConfig, loadConfig, type Config } from '../config/config.js';
import { locateFfmpeg } from '../encoding/ffmpeg-binary.js';
import { ConfigError, errorMessage, isRecgwError } from '../errors.js';
import { Gateway } from '../gateway/gateway.js';
import { createLoggers, type Loggers } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { StatusReporter } from '../observability/status-report.js';
import { createStatusRoutes, type ReadinessCheck } from '../observability/status-routes.js';
import { computeBacklog } from '../pipeline/backlog.js';
import { EncodeQueue } from '../pipeline/encode-queue.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { Uploader } from '../pipeline/upload-queue.js';
import { checkDiskFloor, DiskWatchdog, freeBytes } from '../recording/disk-guard.js';
import { JournalStore } from '../recording/journal.js';
import { directWrites, pageCache, pageCacheStatus } from '../recording/page-cache.js';
import { Recorder, recorderSettings } from '../recording/recorder.js';
import { SpoolLock } from '../recording/spool-lock.js';
import { openObjectStore } from '../storage/open-store.js';
import { classifyFailure } from '../storage/retry-policy.js';
import { UploadLocation } from '../storage/upload-location.js';
import { loadOrCreateDevTokenKey } from './dev-token-key.js';
import type { CliIo } from './main.js';
import { runUntilSignal } from './run-until-signal.js';

/** How often failed segments and retention are looked at, and free disk is measured. */
const SWEEP_INTERVAL_MS = 30_000;
const DISK_CHECK_INTERVAL_MS = 5_000;
/** The scaling.status.resources log line: once at start, then every minute. */
const STATUS_INTERVAL_MS = 60_000;

export interface RunningGateway {
  server: Server;
  gateway: Gateway;
  config: Config;
  /** The port actually listened on (GATEWAY_PORT=0 picks one). */
  port: number;
  /** Stops accepting, ends sessions with an error instruction, seals every open segment. */
  shutdown(reason: string): Promise<void>;
}

/**
 * Builds every stage from the configuration and starts listening. Data flows one way:
 * gateway → recorder → pipeline (encode queue → uploader); observability is handed in.
 */
export async function startGateway(config: Config, loggers: Loggers, metrics: GatewayMetrics, env: NodeJS.ProcessEnv, command = 'serve'): Promise<RunningGateway> {
  // Before anything reads or repairs the spool: one gateway per spool.
  const lock = await SpoolLock.acquire(config.recording.spoolDir, command);
  try {
    return await startOnLockedSpool(config, loggers, metrics, env, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startOnLockedSpool(config: Config, loggers: Loggers, metrics: GatewayMetrics, env: NodeJS.ProcessEnv, lock: SpoolLock): Promise<RunningGateway> {
  const log = loggers.app;
  const location = UploadLocation.parse(config.recording.uploadLocation);
  const ffmpeg = await locateFfmpeg(env);
  log.info({ ffmpeg_path: ffmpeg.path, ffmpeg_source: ffmpeg.source, ffmpeg_version: ffmpeg.version }, 'ffmpeg located');

  let tokenKey = config.tokenKey;
  if (!tokenKey) {
    const dev = loadOrCreateDevTokenKey(config.recording.spoolDir);
    tokenKey = dev.key;
    log.warn(
      { token_key_file: dev.path, created: dev.created },
      'TOKEN_KEY is not set: using a development key kept in token_key_file (recgw token uses it too); set TOKEN_KEY in production',
    );
  }
  const effective: Config = { ...config, tokenKey };

  const journals = new JournalStore(config.recording.spoolDir);
  const encoder = new EncodeQueue({
    concurrency: config.recording.queueLength,
    journals,
    ffmpeg,
    logger: log.child({ component: 'encoder' }),
    settings: {
      bitrate: config.recording.bitrate,
      framerate: config.recording.framerate,
      width: config.recording.width,
      height: config.recording.height,
      // Encodes share the cores; ffmpeg's own threads are bounded so the relay keeps one.
      threads: Math.max(1, Math.floor(availableParallelism() / config.recording.queueLength)),
    },
  });
  const store = openObjectStore(location, config);
  // Not a reason to refuse to start (sessions are still recorded and clips wait in the spool),
  // but an operator should learn of a wrong bucket or key now, not at the first upload.
  void store.probe().then(
    () => log.info({ location: location.describe() }, 'upload location reachable'),
    (err: unknown) => {
      const f = classifyFailure(err);
      log.error(
        { location: location.describe(), err_code: f.code, reason: f.reason, kind: f.kind },
        'upload location not reachable now: clips stay in the spool and uploads are retried',
      );
    },
  );
  const uploader = new Uploader({
    journals,
    store,
    location,
    logger: log.child({ component: 'uploader' }),
    keepLocal: config.recording.keepLocal,
    uploadRaw: config.recording.uploadRaw,
  });
  const pipeline = new Pipeline({
    journals,
    encoder,
    uploader,
    retentionMs: config.recording.retentionMs,
    logger: log.child({ component: 'pipeline' }),
  });
  const recorder = new Recorder({
    ...recorderSettings(config.recording),
    journals,
    logger: log.child({ component: 'recorder' }),
    onSealed: (ref) => pipeline.onSealed(ref),
  });

  await recorder.checkWritable();
  if (!config.recording.dropPageCache) {
    log.info({ page_cache: 'kept (RECORDING_DROP_PAGE_CACHE=false)' }, 'segments are written as plain buffered files');
  } else if (pageCache === undefined) {
    // Not an error: recording is as safe without it; the page cache and, on some VMs, the relay pay.
    log.warn({ page_cache: pageCacheStatus }, 'segments cannot be written behind: they stay in the page cache until the kernel evicts them');
  } else {
    log.info({ page_cache: 'dropped behind writes' }, 'segments are written behind');
  }
  if (!config.recording.directWrites) {
    log.info({ direct_writes: 'off (RECORDING_DIRECT_WRITES=false)' }, 'fast sessions are written through the page cache');
  } else if (directWrites === undefined) {
    log.warn({ direct_writes: pageCache === undefined ? pageCacheStatus : 'addon built before direct writes (npm run build:native)' }, 'fast sessions cannot be written directly: every byte is copied into the page cache');
  } else {
    log.info({ direct_writes: 'on' }, 'fast sessions are written to the disk directly from the read arenas');
  }
  const recovery = await recorder.recover();
  log.info(
    { sealed_by_recovery: recovery.sealed.length, pending_segments: recovery.pending.length },
    'spool scanned; resuming unfinished segments',
  );
  pipeline.resume(recovery.pending);
  pipeline.startSweep(SWEEP_INTERVAL_MS);

  const watchdog = new DiskWatchdog({
    spoolDir: config.recording.spoolDir,
    minFreeBytes: config.recording.minFreeBytes,
    intervalMs: DISK_CHECK_INTERVAL_MS,
    recorder,
    logger: log.child({ component: 'disk' }),
  });
  watchdog.start();

  const gateway = new Gateway({ config: effective, recorder, loggers });
  const backlog = () => computeBacklog(journals, new Date());
  const sources = {
    activeSessions: () => gateway.sessionCount,
    activeRecordings: () => recorder.active.size,
    backlog,
    spoolFreeBytes: () => freeBytes(config.recording.spoolDir),
  };
  metrics.setSources(sources);
  const status = new StatusReporter(sources, log.child({ component: 'status' }), STATUS_INTERVAL_MS);
  const readiness = async (): Promise<ReadinessCheck[]> => [
    await check('guacd', () => probeTcp(config.guacd.host, config.guacd.port, 1000)),
    await check('spool_writable', () => recorder.checkWritable()),
    await check('disk_above_floor', () => checkDiskFloor(config.recording.spoolDir, config.recording.minFreeBytes)),
  ];
  const server = createServer(
    createStatusRoutes({ metrics, backlog, readiness, adminApiKeys: config.adminApiKeys, logger: loggers.web }),
  );
  gateway.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.gateway.port, config.gateway.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.gateway.port;
  log.info({ host: config.gateway.host, port, guacd: `${config.guacd.host}:${config.guacd.port}`, spool: config.recording.spoolDir }, 'recgw listening');
  status.start();

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'shutting down: no new connections; sealing open segments');
      watchdog.stop();
      status.stop();
      server.close();
      await gateway.close();
      await recorder.closeAll(reason);
      // Running encodes and uploads are not waited for: their journal states make the next start
      // redo them (encoding → sealed, uploading → encoded), so a stop is never held up by ffmpeg.
      await pipeline.stop();
      server.closeAllConnections();
      await lock.release();
      log.info('shutdown complete');
    })();
    return stopping;
  };

  return { server, gateway, config: effective, port, shutdown };
}

async function check(name: string, run: () => Promise<unknown>): Promise<ReadinessCheck> {
  try {
    await run();
    return { name, ok: true };
  } catch (err) {
    return { name, ok: false, detail: errorMessage(err) };
  }
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function runServeCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv.length > 0) {
    io.stderr.write(`recgw serve takes no arguments (settings come from the environment; see README): ${argv.join(' ')}\n`);
    return 2;
  }
  let config: Config;
  try {
    config = loadConfig(io.env);
    UploadLocation.parse(config.recording.uploadLocation);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`recgw: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const metrics = new GatewayMetrics();
  const loggers = createLoggers(config.log, config.auditLog, (name) => metrics.countEvent(name));
  loggers.audit.info({ action: 'settings', element: 'gateway', settings: describeConfig(io.env) }, 'settings in force at start-up');

  let running: RunningGateway;
  try {
    running = await startGateway(config, loggers, metrics, io.env);
  } catch (err) {
    loggers.app.fatal({ err_code: isRecgwError(err) ? err.code : undefined, error: errorMessage(err) }, 'recgw could not start');
    loggers.flush();
    io.stderr.write(`recgw: could not start: ${errorMessage(err)}\n`);
    return 1;
  }

  return runUntilSignal((reason) => running.shutdown(reason), loggers);
}
