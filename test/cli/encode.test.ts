import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { runEncodeCommand } from '../../src/cli/encode.js';
import { PACKAGE_ROOT } from '../../src/runtime-paths.js';
import { ensureBuilt, ffprobeClip } from '../encoding/clip-frames.js';

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    }),
    text: () => chunks.join(''),
  };
}

async function run(argv: string[], isTTY = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = capture();
  const err = capture();
  const code = await runEncodeCommand(argv, { stdout: out.stream, stderr: err.stream, isTTY });
  return { code, stdout: out.text(), stderr: err.text() };
}

const ssh = join(PACKAGE_ROOT, 'fixtures', 'recordings', 'ssh-terminal.gz');

beforeAll(() => ensureBuilt());

describe('recgw encode', () => {
  it('encodes a truncated recording up to its last complete instruction, exits 3 and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-cli-'));
    const cut = join(dir, 'cut.guac');
    writeFileSync(cut, gunzipSync(readFileSync(ssh)).subarray(0, 150_000));
    const r = await run([cut, '--framerate', '5', '--width', '512', '--height', '384'], true);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/truncated or damaged/);
    expect(r.stderr).toMatch(/up to the last complete instruction/);
    expect(existsSync(join(dir, 'cut.mp4'))).toBe(true);
    expect(r.stdout).toMatch(/cut\.mp4: [\d.]+ s, \d+ frames at 5 fps, 512×384/);
    const probed = ffprobeClip(join(dir, 'cut.mp4'));
    if (probed) expect(probed.width).toBe(512);
  });

  it('shows a progress bar on a terminal and a summary at the end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-cli-'));
    const r = await run([ssh, '-o', join(dir, 'ssh.mp4'), '--framerate', '5', '--bitrate', '300k', '--width', '512', '--height', '384', '--thumbnail', join(dir, 'ssh.jpg')], true);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\r\x1b\[2K\[[#-]{24}\] +\d+%  [\d.]+ \w+ \/ [\d.]+ KiB  \d+ frames  [\d.]+× real time/);
    expect(r.stdout).toMatch(/ssh\.mp4: 47\.\d s, \d+ frames at 5 fps, 512×384, .*× real time/);
    expect(existsSync(join(dir, 'ssh.jpg'))).toBe(true);
  });

  it('fails clearly on a garbage file and writes no clip', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-cli-'));
    const bad = join(dir, 'bad.guac');
    writeFileSync(bad, '\x89PNG this is an image, not a recording');
    const r = await run([bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.guac: nothing to encode before the error: expected an element length/);
    expect(existsSync(join(dir, 'bad.mp4'))).toBe(false);
    expect(r.stderr).not.toMatch(/\r/);
  });

  it('fails clearly on a missing file and on bad options', async () => {
    const missing = await run(['/nonexistent/rec.guac']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read the recording \/nonexistent\/rec\.guac: no such file/);
    const odd = await run([ssh, '--width', '101', '--height', '100']);
    expect(odd.code).toBe(2);
    expect(odd.stderr).toMatch(/--width must be an even number/);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/usage: recgw encode/);
  });
});
