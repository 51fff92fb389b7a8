import { createTestLoggers, type Logger } from '../../src/observability/logger.js';

export interface LogLine {
  level: string;
  msg: string;
  metric_name?: string;
  [field: string]: unknown;
}

/** A real pino logger whose JSON lines are kept in memory for assertions. */
export function captureLogs(): { logger: Logger; lines: LogLine[]; withMetric(name: string): LogLine[] } {
  const lines: LogLine[] = [];
  const dest = {
    write(chunk: string): void {
      for (const text of chunk.split('\n')) if (text.trim()) lines.push(JSON.parse(text) as LogLine);
    },
  };
  const { app } = createTestLoggers(dest, 'debug');
  return { logger: app, lines, withMetric: (name) => lines.filter((l) => l.metric_name === name) };
}
