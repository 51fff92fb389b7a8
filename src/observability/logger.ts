import { hostname } from 'node:os';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogTarget } from '../config/config.js';

export type { Logger } from 'pino';

export type LogType = 'application' | 'audit' | 'web';

/** Field names that must never reach a log line, wherever they sit in an object. */
const REDACT_PATHS = [
  'token',
  'password',
  'secret',
  'settings.password',
  'settings.passphrase',
  'settings["private-key"]',
  'connection.settings.password',
  'connection.settings.passphrase',
  'connection.settings["private-key"]',
  'req.query.token',
  'headers.authorization',
  'headers.cookie',
  '*.token',
  '*.password',
  '*.secret',
];

export interface Loggers {
  app: Logger;
  audit: Logger;
  web: Logger;
  /** Flushes both destinations (call before exit). */
  flush(): void;
}

function destination(target: LogTarget): DestinationStream {
  if (target.file === 'stdout') return pino.destination({ dest: 1, sync: false });
  mkdirSync(dirname(target.file), { recursive: true });
  if (target.rotateDaily) {
    // pino-roll runs in pino's worker-thread transport, so rotation never blocks the relay.
    return pino.transport({
      target: 'pino-roll',
      options: {
        file: target.file,
        frequency: 'daily',
        mkdir: true,
        ...(target.rotateMax ? { limit: { count: target.rotateMax } } : {}),
      },
    }) as DestinationStream;
  }
  return pino.destination({ dest: target.file, sync: false, mkdir: true });
}

/** Called with the metric_name of every log line that carries one (feeds Prometheus counters). */
export type MetricListener = (metricName: string) => void;

function makeLogger(target: LogTarget, logType: LogType, dest: DestinationStream, onMetric?: MetricListener): Logger {
  return pino(
    {
      ...(onMetric
        ? {
            hooks: {
              logMethod(args, method) {
                const first: unknown = args[0];
                if (first && typeof first === 'object' && 'metric_name' in first) {
                  const name = (first as { metric_name: unknown }).metric_name;
                  if (typeof name === 'string') onMetric(name);
                }
                method.apply(this, args);
              },
            },
          }
        : {}),
      level: target.level,
      base: { hostname: hostname(), pid: process.pid, log_type: logType },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    dest,
  );
}

export function createLoggers(appTarget: LogTarget, auditTarget: LogTarget, onMetric?: MetricListener): Loggers {
  const appDest = destination(appTarget);
  const sameDest = auditTarget.file === appTarget.file && auditTarget.rotateDaily === appTarget.rotateDaily;
  const auditDest = sameDest ? appDest : destination(auditTarget);
  const app = makeLogger(appTarget, 'application', appDest, onMetric);
  const audit = makeLogger(auditTarget, 'audit', auditDest, onMetric);
  const web = makeLogger(appTarget, 'web', appDest, onMetric);
  return {
    app,
    audit,
    web,
    flush() {
      app.flush();
      if (!sameDest) audit.flush();
    },
  };
}

/** Loggers writing to a stream (tests) or nowhere. */
export function createTestLoggers(dest?: DestinationStream, level: LogTarget['level'] = 'debug'): Loggers {
  const d = dest ?? pino.destination({ dest: '/dev/null', sync: true });
  const t: LogTarget = { level, file: 'stdout', rotateDaily: false, rotateMax: undefined };
  const app = makeLogger(t, 'application', d);
  return {
    app,
    audit: makeLogger(t, 'audit', d),
    web: makeLogger(t, 'web', d),
    flush() {},
  };
}

/** Every metric_name the logs carry; see DESIGN.md "Logs, metrics, audit". */
export const MetricName = {
  provisionCreate: 'provision.create',
  provisionDestroy: 'provision.destroy',
  provisionRefused: 'provision.refused',
  segmentSealed: 'recording.segment.sealed',
  encodeComplete: 'recording.encode.complete',
  encodeFailed: 'recording.encode.failed',
  uploadComplete: 'recording.upload.complete',
  uploadFailed: 'recording.upload.failed',
  retentionExpired: 'recording.retention.expired',
  scalingStatus: 'scaling.status.resources',
  loginFailedInvalidToken: 'account.login.failed_invalid_token',
} as const;
