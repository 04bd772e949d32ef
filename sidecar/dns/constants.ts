/**
 * DNS numbers the sidecar uses by name (RFC 1035, RFC 6891, RFC 8914).
 */

/** Response codes (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS). */
export const RCode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended RCODE 16: the client's EDNS version is not supported. */
  BADVERS: 16,
} as const;

/** Resource record types the sidecar reads or writes. */
export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  DNAME: 39,
  OPT: 41,
  DS: 43,
  RRSIG: 46,
  DNSKEY: 48,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

/** The IN class. */
export const CLASS_IN = 1;

/** Opcode QUERY, the only one the sidecar serves. */
export const OPCODE_QUERY = 0;

/** Header flag bits in the 16-bit flags word (RFC 1035 §4.1.1, RFC 4035 for AD/CD). */
export const Flags = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

/** Length of the fixed DNS header in bytes. */
export const HEADER_LENGTH = 12;

/** Largest UDP reply size without EDNS (RFC 1035 §2.3.4). */
export const CLASSIC_UDP_SIZE = 512;

/**
 * The EDNS UDP payload size the sidecar advertises and asks upstreams for:
 * the DNS flag day 2020 value, which avoids IP fragmentation.
 */
export const EDNS_UDP_SIZE = 1232;

/** EDNS option code for Extended DNS Errors (RFC 8914). */
export const EDNS_OPTION_EDE = 15;

/** Extended DNS Error info codes used by the sidecar (RFC 8914 §4). */
export const EDECode = {
  OTHER: 0,
  STALE_ANSWER: 3,
  PROHIBITED: 18,
  BLOCKED: 15,
  NOT_READY: 14,
  NOT_AUTHORITATIVE: 20,
  NETWORK_ERROR: 23,
  NO_REACHABLE_AUTHORITY: 22,
} as const;
