import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { locateFfmpeg, packagedFfmpegPath } from '../../src/encoding/ffmpeg-binary.js';
import { isRecgwError } from '../../src/errors.js';

describe('locateFfmpeg', () => {
  it('prefers FFMPEG_PATH', async () => {
    const b = await locateFfmpeg({ FFMPEG_PATH: '/usr/bin/ffmpeg', PATH: '' });
    expect(b).toMatchObject({ path: '/usr/bin/ffmpeg', source: 'FFMPEG_PATH' });
    expect(b.version).toMatch(/^5\.1/);
  });

  it('then ffmpeg on PATH', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-path-'));
    symlinkSync('/usr/bin/ffmpeg', join(dir, 'ffmpeg'));
    const b = await locateFfmpeg({ PATH: `/nonexistent:${dir}` });
    expect(b).toMatchObject({ path: join(dir, 'ffmpeg'), source: 'PATH' });
  });

  it('else the static build inside @ffmpeg-installer/ffmpeg (4.1 with libx264)', async () => {
    const b = await locateFfmpeg({ PATH: '/nonexistent' });
    expect(b.source).toBe('@ffmpeg-installer/ffmpeg');
    expect(b.path).toBe(packagedFfmpegPath());
    expect(b.version).toMatch(/static/);
  });

  it('refuses an FFMPEG_PATH that is not an executable, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'recgw-path-'));
    const notExec = join(dir, 'ffmpeg');
    writeFileSync(notExec, 'not a program');
    chmodSync(notExec, 0o644);
    const err = await locateFfmpeg({ FFMPEG_PATH: notExec, PATH: '' }).catch((e: unknown) => e);
    expect(isRecgwError(err, 'RECGW_ERR_FFMPEG')).toBe(true);
    expect((err as Error).message).toContain(`FFMPEG_PATH=${notExec}`);
  });
});
