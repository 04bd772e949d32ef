/**
 * Whether a string is an IP address, as node:net's `isIP` says, without its regular expressions where the
 * string cannot match them: a text without a colon is no IPv6 address and one with characters other than
 * digits and dots no IPv4 address. node:net tries IPv4's expression, then IPv6's, and V8 compiles each on
 * its first use: the IPv6 one took 9.5 ms at a sidecar's start when an upstream was named by a host name
 * (`tls://dns.example:853`), the IPv4 one 0.3 ms (test/bench/README.md, "Start: what the first answer
 * waits for").
 */
import { isIPv4, isIPv6 } from 'node:net';

/** 4 or 6 when `s` is an IPv4 or IPv6 address (an IPv6 zone index allowed, as node:net allows it), else 0. */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (s.includes(':')) return isIPv6(s) ? 6 : 0;
  return /^[0-9.]+$/.test(s) && isIPv4(s) ? 4 : 0;
}
