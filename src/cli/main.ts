import type { Writable } from 'node:stream';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
}

const USAGE = `usage: recgw <command> [options]

commands:
  serve                      run the gateway (settings from the environment; see README)
  encode <file> [-o out.mp4] [--state prev.state.guac]
                             render a recording (.guac or .guac.gz, ours or guacd's) to MP4
  status [--json]            the upload/encode backlog of the spool (asks a running gateway,
                             else reads the spool)
  token [--key KEY] < payload.json
                             print a connection token for a JSON payload
  recover                    seal segments left open by a crash (serve does this at start-up)
  demo                       run the gateway with a built-in guacd stand-in replaying a
                             recording, and print a URL to watch it in a browser
`;

/** Runs one CLI command; resolves to the process exit code. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).runServeCommand(rest, io);
    case 'encode':
      return (await import('./encode.js')).runEncodeCommand(rest, {
        stdout: io.stdout,
        stderr: io.stderr,
        isTTY: io.isTTY,
      });
    case 'status':
      return (await import('./status.js')).runStatusCommand(rest, io);
    case 'token':
      return (await import('./token.js')).runTokenCommand(rest, io);
    case 'recover':
      return (await import('./recover.js')).runRecoverCommand(rest, io);
    case 'demo':
      return (await import('./demo.js')).runDemoCommand(rest, io);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      (command === undefined ? io.stderr : io.stdout).write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      io.stderr.write(`recgw: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

function defaultIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
  };
}
