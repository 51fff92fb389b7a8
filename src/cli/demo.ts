// Placeholder until this command is wired (lead is integrating); replaced before release.
import type { CliIo } from './main.js';
export async function runDemoCommand(argv: string[], io: CliIo): Promise<number> {
  void argv;
  io.stderr.write('recgw demo: not available in this build yet\n');
  return 1;
}
