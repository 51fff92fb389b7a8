import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, trustedProxyMatcher } from '../../src/gateway/client-address.js';

const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff ? { 'x-forwarded-for': xff } : {} }) as unknown as IncomingMessage;

describe('client address', () => {
  it('ignores X-Forwarded-For from untrusted peers', () => {
    expect(clientAddress(req('203.0.113.9', '1.2.3.4'), trustedProxyMatcher(['10.0.0.1']))).toEqual({ clientIp: '203.0.113.9', forwardedForClientIp: undefined });
  });
  it('believes trusted proxies, reading from the right and skipping trusted hops', () => {
    const trusted = trustedProxyMatcher(['10.0.0.0/8', '::1']);
    expect(clientAddress(req('::ffff:10.0.0.1', '6.6.6.6, 198.51.100.7, 10.1.1.1'), trusted)).toEqual({ clientIp: '10.0.0.1', forwardedForClientIp: '198.51.100.7' });
    expect(clientAddress(req('::1', 'junk, 198.51.100.8'), trusted).forwardedForClientIp).toBe('198.51.100.8');
  });
});
