import { describe, expect, it } from 'vitest';
import { describeConfig, loadConfig, redactUrlCredentials } from '../../src/config/config.js';
import { parseBitrate, parseBytes, parseDuration } from '../../src/config/parse.js';
import { ConfigError } from '../../src/errors.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv');
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({}, '/srv');
    expect(c.gateway).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(c.guacd).toEqual({ host: '127.0.0.1', port: 4822 });
    expect(c.recording.spoolDir).toBe('/srv/data/spool');
    expect(c.recording.uploadLocation).toBe('file://./data/recordings/{username}/{session_id}');
    expect(c.recording.segmentBytes).toBe(157_286_400);
    expect(c.recording.minFreeBytes).toBe(524_288_000);
    expect(c.recording.bitrate).toBe(1_000_000);
    expect(c.recording.framerate).toBe(10);
    expect(c.recording.retentionMs).toBe(7 * 86_400_000);
    expect(c.recording.queueLength).toBeGreaterThanOrEqual(1);
    expect(c.recording.includeAudio).toBe(false);
    expect(c.recording.dropPageCache).toBe(true);
    expect(c.recording.directWrites).toBe(true);
    expect(c.s3).toEqual({ region: 'us-east-1', forcePathStyle: false });
    expect(c.tokenKey).toBeUndefined();
  });

  it('reads every kind of value', () => {
    const c = loadConfig(
      {
        GATEWAY_PORT: '9000',
        TOKEN_KEY: 'MySuperSecretKeyForParamsToken12',
        RECORDING_BITRATE: '2M',
        RECORDING_SEGMENT_BYTES: '1MiB',
        RECORDING_RETENTION_PERIOD: '30m',
        RECORDING_WIDTH: '1280',
        RECORDING_HEIGHT: '720',
        RECORDING_INCLUDE_KEYS: 'true',
        RECORDING_DIRECT_WRITES: 'false',
        ADMIN_API_KEYS: 'ops:s3cret:SESSIONS_VIEW+SESSION_RECORDINGS_VIEW',
        TRUSTED_PROXIES: '10.0.0.1, 10.0.0.2',
      },
      '/srv',
    );
    expect(c.gateway.port).toBe(9000);
    expect(c.tokenKey?.length).toBe(32);
    expect(c.recording.bitrate).toBe(2_000_000);
    expect(c.recording.segmentBytes).toBe(1_048_576);
    expect(c.recording.retentionMs).toBe(1_800_000);
    expect(c.recording.width).toBe(1280);
    expect(c.recording.includeKeys).toBe(true);
    expect(c.recording.directWrites).toBe(false);
    expect(c.adminApiKeys).toEqual([{ name: 'ops', secret: 's3cret', scopes: ['SESSIONS_VIEW', 'SESSION_RECORDINGS_VIEW'] }]);
    expect(c.trustedProxies).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('reports every problem at once, naming the variable and what is allowed', () => {
    const problems = problemsOf({
      GATEWAY_PORT: '70000',
      RECORDING_FRAMERATE: 'fast',
      RECORDING_RETENTION_PERIOD: '7 days',
      RECORDING_WIDTH: '1279',
      TOKEN_KEY: 'short',
      RECORDING_QUEUE_LENGHT: '2',
    });
    expect(problems.some((p) => p.startsWith('GATEWAY_PORT') && p.includes('0 to 65535'))).toBe(true);
    expect(problems.some((p) => p.startsWith('RECORDING_FRAMERATE') && p.includes('whole number'))).toBe(true);
    expect(problems.some((p) => p.startsWith('RECORDING_RETENTION_PERIOD') && p.includes('30m, 24h or 7d'))).toBe(true);
    expect(problems.some((p) => p.startsWith('RECORDING_WIDTH') && p.includes('even'))).toBe(true);
    expect(problems.some((p) => p.startsWith('TOKEN_KEY') && p.includes('32 bytes'))).toBe(true);
    expect(problems.some((p) => p.startsWith('RECORDING_QUEUE_LENGHT is not a recgw setting'))).toBe(true);
  });

  it('requires a token key in production', () => {
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([expect.stringContaining('TOKEN_KEY is required')]);
  });

  it('requires width and height together, and storage key and secret together', () => {
    const problems = problemsOf({ RECORDING_WIDTH: '1280', RECORDING_OBJECT_STORAGE_KEY: 'AKIA' });
    expect(problems).toHaveLength(2);
  });

  it('rejects admin keys with unknown scopes', () => {
    expect(problemsOf({ ADMIN_API_KEYS: 'ops:x:ROOT' })[0]).toContain('unknown scope "ROOT"');
  });
});

describe('describeConfig', () => {
  it('never shows secrets', () => {
    const shown = describeConfig({
      TOKEN_KEY: 'MySuperSecretKeyForParamsToken12',
      RECORDING_OBJECT_STORAGE_SECRET: 'hunter2',
      ADMIN_API_KEYS: 'ops:pw:SESSIONS_VIEW',
      RECORDING_UPLOAD_LOCATION: 's3://bucket@https://user:pass@host/x',
      GATEWAY_PORT: '8080',
    });
    const text = JSON.stringify(shown);
    expect(text).not.toContain('MySuperSecret');
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain(':pw:');
    expect(text).not.toContain('pass@');
    expect(shown.GATEWAY_PORT).toBe('8080');
  });

  it('keeps a bucket@endpoint location readable', () => {
    expect(redactUrlCredentials('s3://bucket@minio:9000/p')).toBe('s3://bucket@minio:9000/p');
  });
});

describe('value parsers', () => {
  it.each([
    ['30m', 1_800_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['2s', 2000],
  ])('duration %s', (t, ms) => expect(parseDuration(t)).toBe(ms));
  it('sizes and bitrates', () => {
    expect(parseBytes('150MiB')).toBe(157_286_400);
    expect(parseBytes('500M')).toBe(524_288_000);
    expect(parseBitrate('1000k')).toBe(1_000_000);
    expect(() => parseBitrate('1')).toThrow(/between 10k and 200M/);
    expect(() => parseDuration('0s')).toThrow(/longer than zero/);
  });
});
