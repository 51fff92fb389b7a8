import type { Loggers } from '../observability/logger.js';
import { errorMessage } from '../errors.js';

/**
 * Keeps a started gateway running until SIGTERM or SIGINT, then shuts it down and resolves to
 * the exit code (0 after a clean shutdown). A second signal during the shutdown exits at once.
 */
export function runUntilSignal(shutdown: (reason: string) => Promise<void>, loggers: Loggers): Promise<number> {
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        loggers.app.warn({ signal }, 'second signal: exiting now');
        loggers.flush();
        process.exit(1);
      }
      signalled = true;
      void shutdown(signal).then(
        () => {
          loggers.flush();
          resolve(0);
          // Sockets of ffmpeg children or keep-alive clients must not hold the process open.
          setTimeout(() => process.exit(0), 200).unref();
        },
        (err: unknown) => {
          loggers.app.error({ error: errorMessage(err) }, 'shutdown failed');
          loggers.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
