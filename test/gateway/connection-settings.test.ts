import { describe, expect, it } from 'vitest';
import { resolveConnection, settingText } from '../../src/gateway/connection-settings.js';
import { handshakeReply } from '../../src/gateway/guacd-client.js';
import type { TokenPayload } from '../../src/gateway/token.js';

const token = (settings: TokenPayload['connection']['settings'], extra: Partial<TokenPayload['connection']> = {}): TokenPayload => ({
  connection: { type: 'vnc', settings, ...extra },
  session: { id: 's' },
  recording: true,
});

describe('connection settings merge', () => {
  it('applies defaults, then token settings, then the allowed query parameters', () => {
    const c = resolveConnection(token({ hostname: 'h', width: 1280 }), new URLSearchParams('width=1920&height=1080&dpi=120&audio=audio/L8&timezone=Europe/Berlin'));
    expect(c.selector).toBe('vnc');
    expect(c.settings.port).toBe(5900);
    expect(c.settings.hostname).toBe('h');
    expect([c.width, c.height, c.dpi]).toEqual([1920, 1080, 120]);
    expect(c.audio).toEqual(['audio/L8']);
    expect(c.image).toEqual(['image/png', 'image/jpeg', 'image/webp']);
    expect(c.timezone).toBe('Europe/Berlin');
  });

  it('never lets query parameters touch recording, guacd recording or typescript settings, or connection targets', () => {
    const q = new URLSearchParams(
      'recording=false&recording-path=/tmp/x&recording-exclude-output=true&create-recording-path=true&typescript-path=/tmp/t&hostname=evil&password=x&GUAC_AUDIO=x',
    );
    const c = resolveConnection(token({ hostname: 'h', 'recording-path': '/srv/rec' }), q);
    expect(c.settings['recording-path']).toBe('/srv/rec');
    expect(c.settings['recording-exclude-output']).toBeUndefined();
    expect(c.settings['create-recording-path']).toBeUndefined();
    expect(c.settings['typescript-path']).toBeUndefined();
    expect(c.settings.hostname).toBe('h');
    expect(c.settings.password).toBeUndefined();
    expect(c.settings.recording).toBeUndefined();
  });

  it('refuses non-numeric sizes with a clear error', () => {
    expect(() => resolveConnection(token({}), new URLSearchParams('width=abc'))).toThrow(/width/);
  });

  it('joins select the connection id and use join defaults (no port)', () => {
    const c = resolveConnection(token({}, { join: '$abc' }), new URLSearchParams());
    expect(c.selector).toBe('$abc');
    expect(c.join).toBe(true);
    expect(c.settings.port).toBeUndefined();
  });

  it('answers args in their order, with version, media and timezone', () => {
    const c = resolveConnection(token({ hostname: 'h', password: 'p', 'read-only': true, timezone: 'UTC' }), new URLSearchParams());
    const { text, version } = handshakeReply(c, ['VERSION_1_5_0', 'hostname', 'port', 'read-only', 'password', 'unknown']);
    expect(version).toBe('VERSION_1_5_0');
    expect(text).toBe(
      '4.size,4.1024,3.768,2.96;5.audio,9.audio/L16;5.video;5.image,9.image/png,10.image/jpeg,10.image/webp;8.timezone,3.UTC;' +
        '7.connect,13.VERSION_1_5_0,1.h,4.5900,4.true,1.p,0.;',
    );
    expect(handshakeReply(c, ['VERSION_9_9_9']).version).toBe('VERSION_1_5_0');
    expect(handshakeReply(c, ['hostname']).text).not.toContain('timezone'); // protocol 1.0.0 has none
    expect(settingText(['a', 'b'])).toBe('a,b');
  });
});
