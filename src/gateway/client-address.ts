import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** Who is connecting: the socket's peer, and the X-Forwarded-For client when the peer is a trusted proxy. */
export interface ClientAddress {
  clientIp: string;
  forwardedForClientIp: string | undefined;
}

/**
 * Builds a matcher for TRUSTED_PROXIES entries: plain addresses or CIDR ranges (v4 or v6).
 * Entries that are neither are ignored (config validation is the place to reject them).
 */
export function trustedProxyMatcher(entries: readonly string[]): (ip: string) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/');
    const family = isIP(addr ?? '');
    if (family === 0) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr!, type);
    else list.addSubnet(addr!, Number(bits), type);
  }
  return (ip) => {
    const plain = unmapped(ip);
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * X-Forwarded-For is believed only from a trusted proxy, and then read from the right: the
 * first address that is not itself a trusted proxy is the client (anything further left could
 * have been written by the client).
 */
export function clientAddress(req: IncomingMessage, isTrusted: (ip: string) => boolean): ClientAddress {
  const peer = unmapped(req.socket.remoteAddress ?? '');
  if (!isTrusted(peer)) return { clientIp: peer, forwardedForClientIp: undefined };
  const header = req.headers['x-forwarded-for'];
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const hops = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => isIP(unmapped(s)) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = unmapped(hops[i]!);
    if (!isTrusted(hop)) return { clientIp: peer, forwardedForClientIp: hop };
  }
  return { clientIp: peer, forwardedForClientIp: hops.length > 0 ? unmapped(hops[0]!) : undefined };
}

function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}
