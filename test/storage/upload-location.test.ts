import { describe, expect, test } from 'vitest';
import { isRecgwError } from '../../src/errors.js';
import { journalKey, sanitizeValue, siblingKey, UploadLocation, type KeyContext } from '../../src/storage/upload-location.js';

const ctx: KeyContext = {
  sessionId: '3f2c9a1e-77aa-4b1c-9d2e-0a1b2c3d4e5f',
  userId: 'u-42',
  username: 'alice',
  imageId: 'img-7',
  imageFriendlyName: 'Ubuntu Desktop',
  protocol: 'vnc',
  createdAt: '2026-11-23T10:00:00.000Z',
  segment: 3,
  segmentStartedAt: '2026-11-24T00:00:05.000Z',
  now: new Date('2026-11-25T12:34:56.789Z'),
};

function problem(text: string): string {
  try {
    UploadLocation.parse(text);
  } catch (err) {
    if (isRecgwError(err, 'RECGW_ERR_CONFIG')) return err.message;
    throw err;
  }
  throw new Error(`"${text}" was accepted`);
}

describe('UploadLocation.parse: targets', () => {
  test('s3 on the AWS endpoint', () => {
    const loc = UploadLocation.parse('s3://recs/prefix/{username}/{session_id}.mp4');
    expect(loc.target).toEqual({ kind: 's3', bucket: 'recs', endpoint: undefined });
    expect(loc.describe()).toBe('s3://recs');
    expect(loc.prefix).toBe('prefix/');
  });

  test('s3 with an endpoint: bare host defaults to https, http:// is kept, port kept', () => {
    expect(UploadLocation.parse('s3://recs@minio.local:9000/p/{session_id}.mp4').target).toEqual({
      kind: 's3',
      bucket: 'recs',
      endpoint: 'https://minio.local:9000',
    });
    const loc = UploadLocation.parse('s3://recs@http://10.0.0.5:9000/p/{session_id}.mp4');
    expect(loc.target).toEqual({ kind: 's3', bucket: 'recs', endpoint: 'http://10.0.0.5:9000' });
    expect(loc.describe()).toBe('s3://recs@http://10.0.0.5:9000');
    expect(UploadLocation.parse('s3://recs@https://s3.us-gov-west-1.amazonaws.com/{session_id}').target).toMatchObject({
      endpoint: 'https://s3.us-gov-west-1.amazonaws.com',
    });
  });

  test('file:// absolute and relative: fixed folders are the root, the rest is the key', () => {
    const abs = UploadLocation.parse('file:///srv/recordings/{username}/{session_id}');
    expect(abs.target).toEqual({ kind: 'file', root: '/srv/recordings' });
    expect(abs.clipKey(ctx)).toBe(`alice/${ctx.sessionId}-000003.mp4`);
    const rel = UploadLocation.parse('file://./data/recordings/{username}/{session_id}', '/opt/recgw');
    expect(rel.target).toEqual({ kind: 'file', root: '/opt/recgw/data/recordings' });
    expect(rel.describe()).toBe('file:///opt/recgw/data/recordings');
  });
});

describe('UploadLocation keys', () => {
  test('every variable is filled', () => {
    const loc = UploadLocation.parse(
      's3://bk1@http://h:1/{session_id}/{kasm_id}/{user_id}/{username}/{image_id}/{image_friendly_name}/{protocol}/{segment}/' +
        '{created_timestamp}/{created_date}/{start_timestamp}/{start_date}/{current_epoch}.mp4',
    );
    expect(loc.clipKey(ctx)).toBe(
      [
        ctx.sessionId,
        ctx.sessionId,
        'u-42',
        'alice',
        'img-7',
        'Ubuntu Desktop',
        'vnc',
        '000003',
        String(Date.parse('2026-11-23T10:00:00.000Z')),
        '2026-11-23',
        String(Date.parse('2026-11-24T00:00:05.000Z')),
        '2026-11-24',
        `${ctx.now.getTime()}.mp4`,
      ].join('/'),
    );
  });

  test('segment number goes before the extension when neither {segment} nor {current_epoch} is used', () => {
    expect(UploadLocation.parse('s3://bk1/x/{session_id}.mp4').clipKey(ctx)).toBe(`x/${ctx.sessionId}-000003.mp4`);
    expect(UploadLocation.parse('s3://bk1/x/{session_id}.webm').clipKey(ctx)).toBe(`x/${ctx.sessionId}-000003.webm`);
    // no extension: .mp4 is added
    expect(UploadLocation.parse('s3://bk1/x/{session_id}').clipKey(ctx)).toBe(`x/${ctx.sessionId}-000003.mp4`);
    // {segment} or {current_epoch} present: nothing inserted
    expect(UploadLocation.parse('s3://bk1/{session_id}/{segment}.mp4').clipKey(ctx)).toBe(`${ctx.sessionId}/000003.mp4`);
    expect(UploadLocation.parse('s3://bk1/{current_epoch}.mp4').clipKey(ctx)).toBe(`${ctx.now.getTime()}.mp4`);
    // empty or folder-only template: default layout
    expect(UploadLocation.parse('s3://bk1').clipKey(ctx)).toBe(`alice/${ctx.sessionId}-000003.mp4`);
    expect(UploadLocation.parse('s3://bk1/archive/').clipKey(ctx)).toBe(`archive/alice/${ctx.sessionId}-000003.mp4`);
  });

  test('traversal attempts and empty values stay inside their place and the prefix', () => {
    const loc = UploadLocation.parse('s3://bk1/tenant/{username}/{image_friendly_name}/{session_id}.mp4');
    const hostile: KeyContext = { ...ctx, username: '../../etc', imageFriendlyName: 'a/b', sessionId: '..' };
    const key = loc.clipKey(hostile);
    expect(key.startsWith('tenant/')).toBe(true);
    const parts = key.split('/');
    expect(parts).toHaveLength(4);
    expect(parts.every((p) => p !== '' && p !== '.' && p !== '..')).toBe(true);
    expect(parts[1]).toBe('______etc');
    expect(parts[2]).toBe('a_b');
    expect(key).toBe('tenant/______etc/a_b/__-000003.mp4');
    // empty and missing values get a placeholder, never an empty path part
    expect(loc.clipKey({ ...ctx, username: '', imageFriendlyName: undefined })).toBe(`tenant/unknown/unknown/${ctx.sessionId}-000003.mp4`);
    // control characters, backslashes, dot-only values
    expect(sanitizeValue('x\u0000y\nz\\w')).toBe('x_y_z_w');
    expect(sanitizeValue('.')).toBe('_');
    expect(sanitizeValue('a..b')).toBe('a__b');
    expect(sanitizeValue('x'.repeat(500))).toHaveLength(100);
  });

  test('thumbnail, raw and journal keys sit beside the clip', () => {
    expect(siblingKey('a/b/s-000001.mp4', '.jpg')).toBe('a/b/s-000001.jpg');
    expect(siblingKey('a/b/s-000001.mp4', '.guac.gz')).toBe('a/b/s-000001.guac.gz');
    expect(journalKey('a/b/s-000001.mp4', 'sess')).toBe('a/b/sess.session.json');
    expect(journalKey('s-000001.mp4', 'a/../b')).toBe('a____b.session.json');
  });
});

describe('UploadLocation.parse: errors name the template and the problem', () => {
  test.each([
    ['s3://bk1/{usrname}/{session_id}.mp4', 'unknown variable {usrname}'],
    ['s3://bk1/{username/{session_id}.mp4', 'never closed'],
    ['s3://bk1/username}/{session_id}.mp4', 'closes nothing'],
    ['s3://bk1/{username}.mp4', 'must contain {session_id}'],
    ['s3://B_/x/{session_id}', 'bucket name'],
    ['s3://bk1@/x/{session_id}', 'endpoint'],
    ['s3://bk1/x/../{session_id}', '".."'],
    ['s3://bk1/x//{session_id}', 'empty'],
    ['ftp://host/{session_id}', 'must start with s3:// or file://'],
    ['file://data/{session_id}', 'file:///absolute'],
    ['s3://bk1@http://user:pw@h:9000/{session_id}', 'credentials do not belong'],
  ])('%s', (template, expected) => {
    const msg = problem(template);
    expect(msg).toContain(`RECORDING_UPLOAD_LOCATION "${template}"`);
    expect(msg).toContain(expected);
  });

  test('the message lists the known variables', () => {
    expect(problem('s3://bk1/{nope}/{session_id}')).toContain('{image_friendly_name}');
  });
});
