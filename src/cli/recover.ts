// Placeholder until this command is wired (lead is integrating); replaced before release.
import type { CliIo } from './main.js';
export async function runRecoverCommand(argv: string[], io: CliIo): Promise<number> {
  void argv;
  io.stderr.write('recgw recover: not available in this build yet\n');
  return 1;
}
