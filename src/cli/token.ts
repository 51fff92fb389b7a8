import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { decryptToken, encryptToken } from '../gateway/token.js';
import { devTokenKeyPath, loadOrCreateDevTokenKey } from './dev-token-key.js';
import type { CliIo } from './main.js';
import { readAllText } from './read-stream.js';

const USAGE = `usage: recgw token [--key KEY] < payload.json

Prints a guacamole-lite-compatible connection token for the JSON payload on stdin:
  { "connection": { "type": "rdp|vnc|ssh", "settings": { "hostname": "...", ... } },
    "session": { "id": "...", "username": "..." }, "recording": true, "expires": <epoch ms> }
The key is --key, else TOKEN_KEY, else the development key the gateway made beside its spool.
`;

export async function runTokenCommand(argv: string[], io: CliIo): Promise<number> {
  let values: { key?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { key: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    io.stderr.write(`recgw token: ${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  let key: Buffer;
  if (values.key !== undefined) {
    key = Buffer.from(values.key, 'utf8');
  } else {
    try {
      const config = loadConfig(io.env);
      key = config.tokenKey ?? loadOrCreateDevTokenKey(config.recording.spoolDir).key;
      if (!config.tokenKey) io.stderr.write(`recgw token: TOKEN_KEY unset; using the development key ${devTokenKeyPath(config.recording.spoolDir)}\n`);
    } catch (err) {
      io.stderr.write(`recgw token: ${err instanceof ConfigError ? err.message : errorMessage(err)}\n`);
      return 2;
    }
  }
  if (key.length !== 32) {
    io.stderr.write(`recgw token: the key must be exactly 32 bytes (AES-256), got ${key.length}\n`);
    return 2;
  }
  let payload: unknown;
  try {
    payload = JSON.parse(await readAllText(io.stdin));
  } catch (err) {
    io.stderr.write(`recgw token: stdin must hold the JSON payload: ${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
  const token = encryptToken(payload as Record<string, unknown>, key);
  try {
    // The gateway's own check, so a payload it would refuse is refused here, with its reason.
    decryptToken(token, key, Date.now());
  } catch (err) {
    io.stderr.write(`recgw token: the gateway would refuse this payload: ${errorMessage(err)}\n`);
    return 1;
  }
  io.stdout.write(`${token}\n`);
  return 0;
}
