import { isAbsolute, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { loadConfig, type Config } from '../config/config.js';
import { ConfigError, errorMessage, isRecgwError } from '../errors.js';
import { CONNECTION_TYPES, type ConnectionType } from '../gateway/token.js';
import { createLoggers } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { DEMO_RECORDINGS, demoRecordingPath, startDemo, type RunningDemo } from '../demo/demo.js';
import { FakeGuacd } from '../demo/replay-guacd.js';
import type { CliIo } from './main.js';
import { runUntilSignal } from './run-until-signal.js';

const USAGE = `usage: recgw demo [--protocol vnc|ssh|rdp] [--recording FILE] [--speed N]

Runs the gateway (settings from the environment, as for serve) in front of a built-in guacd
stand-in that replays a real guacd recording in a loop with its original timing, serves a page
at /demo and prints its address (with a connection token). Every page load is a new recorded
session in the spool.

  --protocol P      which shipped recording to replay (default vnc): ${Object.keys(DEMO_RECORDINGS).join(', ')}
  --recording FILE  replay this guacd recording (.guac or gzip) instead; --protocol names its type
  --speed N         playback speed against the recording's clock (default 1)
`;

interface DemoArgs {
  protocol: ConnectionType;
  recording: string;
  speed: number;
}

function parseArgs(argv: string[], cwd: string): DemoArgs | string {
  let protocol: string = 'vnc';
  let recording: string | undefined;
  let speed = 1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = argv[i + 1];
    if (arg === '--protocol' || arg === '--recording' || arg === '--speed') {
      if (value === undefined) return `${arg} needs a value`;
      i++;
      if (arg === '--protocol') protocol = value;
      else if (arg === '--recording') recording = isAbsolute(value) ? value : resolve(cwd, value);
      else {
        speed = Number(value);
        if (!Number.isFinite(speed) || speed <= 0) return `--speed must be a positive number, got "${value}"`;
      }
    } else {
      return `unknown argument "${arg}"`;
    }
  }
  if (!(CONNECTION_TYPES as readonly string[]).includes(protocol)) return `--protocol must be one of ${CONNECTION_TYPES.join(', ')}, got "${protocol}"`;
  if (recording === undefined) {
    if (!(protocol in DEMO_RECORDINGS)) return `no shipped recording for ${protocol}: give one with --recording`;
    recording = demoRecordingPath(protocol as keyof typeof DEMO_RECORDINGS);
  }
  if (!existsSync(recording)) return `recording not found: ${recording}`;
  return { protocol: protocol as ConnectionType, recording, speed };
}

export async function runDemoCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    io.stdout.write(USAGE);
    return 0;
  }
  const args = parseArgs(argv, process.cwd());
  if (typeof args === 'string') {
    io.stderr.write(`recgw demo: ${args}\n\n${USAGE}`);
    return 2;
  }

  // The stand-in first: the gateway's configuration points at its port.
  const guacd = await FakeGuacd.start({
    replay: args.recording,
    speed: args.speed,
    loops: Number.POSITIVE_INFINITY,
    afterReplay: 'hold',
    keepSent: false,
    keepReceived: false,
    // Like guacd 1.5.5's VNC; the gateway holds input until the first sync, so it never happens.
    crashOnEarlyMouse: args.protocol === 'vnc',
  });
  let config: Config;
  try {
    config = loadConfig({ ...io.env, GUACD_HOST: guacd.host, GUACD_PORT: String(guacd.port) });
  } catch (err) {
    await guacd.close();
    if (err instanceof ConfigError) {
      io.stderr.write(`recgw: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const metrics = new GatewayMetrics();
  const loggers = createLoggers(config.log, config.auditLog, (name) => metrics.countEvent(name));

  let demo: RunningDemo;
  try {
    demo = await startDemo({ config, loggers, metrics, env: io.env, guacd, protocol: args.protocol });
  } catch (err) {
    await guacd.close();
    loggers.app.fatal({ err_code: isRecgwError(err) ? err.code : undefined, error: errorMessage(err) }, 'recgw demo could not start');
    loggers.flush();
    io.stderr.write(`recgw: could not start: ${errorMessage(err)}\n`);
    return 1;
  }
  loggers.app.info({ protocol: args.protocol, speed: args.speed, guacd: `${guacd.host}:${guacd.port}` }, 'demo: guacd stand-in replaying a recording in a loop');
  // The URL carries a token: it goes to the person at the terminal, never to a log line.
  io.stdout.write(`recgw demo: open ${demo.url}\n`);

  return runUntilSignal((reason) => demo.shutdown(reason), loggers);
}
