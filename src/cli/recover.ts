import { loadConfig } from '../config/config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createLoggers } from '../observability/logger.js';
import { JournalStore } from '../recording/journal.js';
import { Recorder, recorderSettings } from '../recording/recorder.js';
import { SpoolLock } from '../recording/spool-lock.js';
import type { CliIo } from './main.js';

/**
 * `recgw recover`: the start-up spool scan on its own, for an operator who wants to see what a
 * crash left before starting the gateway. It refuses to run while a gateway holds the spool.
 */
export async function runRecoverCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv.length > 0) {
    io.stderr.write('usage: recgw recover   (uses RECORDING_SPOOL_DIR; refused while a gateway runs on it)\n');
    return 2;
  }
  let config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    io.stderr.write(`recgw recover: ${err instanceof ConfigError ? err.message : errorMessage(err)}\n`);
    return 2;
  }
  let lock: SpoolLock;
  try {
    lock = await SpoolLock.acquire(config.recording.spoolDir, 'recover');
  } catch (err) {
    io.stderr.write(`recgw recover: ${errorMessage(err)}\n`);
    return 1;
  }
  const loggers = createLoggers(config.log, config.auditLog);
  const journals = new JournalStore(config.recording.spoolDir);
  const recorder = new Recorder({
    ...recorderSettings(config.recording),
    journals,
    logger: loggers.app,
    onSealed: () => undefined,
  });
  try {
    const report = await recorder.recover();
    loggers.flush();
    io.stdout.write(`spool ${config.recording.spoolDir}: sealed ${report.sealed.length} segment(s) left open by a crash\n`);
    for (const ref of report.sealed) io.stdout.write(`  sealed  ${ref.sessionId} segment ${ref.segment}\n`);
    io.stdout.write(`${report.pending.length} segment(s) wait for encoding or upload; the gateway resumes them when it starts\n`);
    return 0;
  } catch (err) {
    io.stderr.write(`recgw recover: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    await lock.release();
  }
}
