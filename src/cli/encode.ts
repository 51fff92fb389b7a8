// Placeholder until this command is wired (lead is integrating); replaced before release.

export async function runEncodeCommand(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; isTTY: boolean }): Promise<number> {
  void argv;
  io.stderr.write('recgw encode: not available in this build yet\n');
  return 1;
}
