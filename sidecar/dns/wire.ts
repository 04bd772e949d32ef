/**
 * The fast wire reader for client queries: header, question and the OPT
 * record, nothing else. No I/O and no dns-packet on this path (DESIGN §4).
 */
import {
  CLASSIC_UDP_SIZE,
  Flags,
  HEADER_LENGTH,
  OPCODE_QUERY,
  RCode,
  RRType,
} from './constants.ts';

/** What the reader learned from a well-formed query. */
export interface ParsedQuery {
  /** Message ID chosen by the client. */
  readonly id: number;
  /** The 16-bit flags word as received (opcode and rcode bits included). */
  readonly flags: number;
  /**
   * Query name in lower case without the trailing dot; the root is ''.
   * Bytes outside printable ASCII, dots and backslashes inside a label are
   * written in presentation format (`\046`, `\\`).
   */
  readonly qname: string;
  /** Query type (RFC 1035 TYPE). */
  readonly qtype: number;
  /** Query class (RFC 1035 CLASS). */
  readonly qclass: number;
  /** Offset just after the question section: [12, questionEnd) is the question. */
  readonly questionEnd: number;
  /** Whether the query carried an OPT record (RFC 6891). */
  readonly edns: boolean;
  /** The client's advertised UDP payload size; 0 without EDNS. */
  readonly ednsUdpSize: number;
  /** The DNSSEC OK bit of the OPT record (RFC 3225); false without EDNS. */
  readonly dnssecOk: boolean;
  /**
   * Offset of the data of a loop-detection option ({@link LOOP_OPTION_CODE},
   * {@link LOOP_TAG_LENGTH} bytes) in the OPT record, or -1 when there is none.
   */
  readonly loopTagOffset: number;
}

/**
 * EDNS option code the sidecar puts in its upstream queries to recognize
 * them if they come back to it (a forwarding loop). From the range RFC 6891
 * §9 reserves for local and experimental use.
 */
export const LOOP_OPTION_CODE = 65_101;

/** Length in bytes of the loop-detection tag: a random value per process. */
export const LOOP_TAG_LENGTH = 8;

/** A query the reader could not accept, with the answer it deserves. */
export interface Rejected {
  /** FORMERR, NOTIMP or BADVERS: answer with this code; -1: send nothing. */
  readonly rcode: number;
  /** Why, for logs and tests. */
  readonly why: string;
  /**
   * Offset after the question section if every question in it was readable
   * (the reply echoes [12, questionEnd) with the message's QDCOUNT; 12 when
   * QDCOUNT is 0), else 0 (the reply echoes no question).
   */
  readonly questionEnd: number;
  /**
   * Whether the message carried an OPT record owned by the root in its
   * additional section (its options may be what is malformed): the reply
   * then carries one too (RFC 6891 §7).
   */
  readonly edns: boolean;
  /** The DO bit of that OPT record, mirrored in the reply's (RFC 3225). */
  readonly dnssecOk: boolean;
}

/** The result of {@link readQuery}: exactly one of `query` or `rejected` is set. */
export type ReadResult =
  | { readonly query: ParsedQuery; readonly rejected: undefined }
  | { readonly query: undefined; readonly rejected: Rejected };

const DROP = -1;

function reject(rcode: number, why: string, questionEnd = 0, edns = false, dnssecOk = false): ReadResult {
  return { query: undefined, rejected: { rcode, why, questionEnd, edns, dnssecOk } };
}

/** The largest wire length of a name (RFC 1035 §3.1). */
const MAX_NAME_WIRE = 255;

/** FNV-1a (32 bits) over the name's text, as readPlainName writes it. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Where readPlainName writes a name's text before making it one string:
 * a wire name of at most 255 bytes has at most 253 characters of text
 * when no label needs an escape.
 */
const NAME_TEXT = Buffer.allocUnsafe(MAX_NAME_WIRE);

/**
 * Reads a name that may not use compression, starting at `offset`.
 * Returns the presentation string (lower case, no trailing dot) and the
 * offset after it, or a string describing why the name is malformed.
 *
 * The common name, whose labels need no escapes, is lower-cased into
 * {@link NAME_TEXT} and hashed on the way; {@link plainName} then returns
 * the string of the same text read before, or makes one flat string.
 */
export function readPlainName(buf: Buffer, offset: number): { name: string; end: number } | string {
  let pos = offset;
  let n = 0;
  let plain = true;
  let hash = FNV_OFFSET;
  for (;;) {
    if (pos >= buf.length) return 'name runs past the end of the message';
    const len = buf[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    if (len > 63) return (len & 0xc0) === 0xc0 ? 'compression pointer in question name' : 'bad label type';
    const start = pos + 1;
    const end = start + len;
    if (end > buf.length) return 'label runs past the end of the message';
    if (end - offset + 1 > MAX_NAME_WIRE) return 'name longer than 255 bytes';
    if (n > 0) {
      NAME_TEXT[n++] = 0x2e;
      hash = Math.imul(hash ^ 0x2e, FNV_PRIME);
    }
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) plain = false;
      const lower = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
      NAME_TEXT[n++] = lower;
      hash = Math.imul(hash ^ lower, FNV_PRIME);
    }
    pos = end;
  }
  return { name: plain ? plainName(n, hash) : escapedName(buf, offset), end: pos };
}

/** Slots of {@link RECENT_NAMES}, a power of two. */
const RECENT_SLOTS = 1024;

/**
 * The names read lately, one per slot, the slot chosen by the hash of the
 * name's text (direct-mapped: a name replaces the one before it in its
 * slot). A pod asks for the same few names again and again; a name found
 * here costs no new string, and the cache's Map finds the hash V8 keeps in
 * a string once it has hashed it. Collisions only cost a new string, so a
 * client cannot make a lookup slower than without the table.
 */
const RECENT_NAMES: string[] = new Array<string>(RECENT_SLOTS).fill('');

/** The text NAME_TEXT[0, n) as a string: the one in its slot of RECENT_NAMES when that has the same text. */
function plainName(n: number, hash: number): string {
  const slot = (hash ^ (hash >>> 16)) & (RECENT_SLOTS - 1);
  const recent = RECENT_NAMES[slot]!;
  if (recent.length === n) {
    let i = 0;
    while (i < n && recent.charCodeAt(i) === NAME_TEXT[i]) i++;
    if (i === n) return recent;
  }
  const name = NAME_TEXT.toString('latin1', 0, n);
  RECENT_NAMES[slot] = name;
  return name;
}

/** The presentation text of a well-formed uncompressed name at `offset` with a label that needs escapes. */
function escapedName(buf: Buffer, offset: number): string {
  let name = '';
  for (let pos = offset; buf[pos] !== 0; pos += 1 + buf[pos]!) {
    if (pos > offset) name += '.';
    name += labelText(buf, pos + 1, pos + 1 + buf[pos]!);
  }
  return name;
}

/**
 * Presentation text of one label, lower-cased, escaping what DNS
 * presentation format escapes. Only names with such a label come here
 * (readPlainName reads the others in one pass).
 */
function labelText(buf: Buffer, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c === 0x2e || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c <= 0x20 || c >= 0x7f) out += '\\' + String(c).padStart(3, '0');
    else out += String.fromCharCode(c);
  }
  return out;
}

/**
 * Skips a name that may use compression and returns the offset after it, or
 * -1 when it runs past the end. Pointers are not followed: only the bytes the
 * name occupies at `offset` matter for skipping.
 */
export function skipName(buf: Buffer, offset: number): number {
  let pos = offset;
  for (let guard = 0; guard < 128; guard++) {
    if (pos >= buf.length) return -1;
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= buf.length ? pos + 2 : -1;
    if (len > 63) return -1;
    pos += 1 + len;
  }
  return -1;
}

/** What {@link scanEdns} found in the records after the question; one object, reused (the reader is synchronous). */
interface EdnsScan {
  /** 0: well-formed; FORMERR or BADVERS: the message deserves that answer, for {@link EdnsScan.why}. */
  rcode: number;
  why: string;
  /** Whether an OPT record owned by the root was found in the additional section (before any problem). */
  edns: boolean;
  udpSize: number;
  dnssecOk: boolean;
  loopTagOffset: number;
}

const EDNS_SCAN: EdnsScan = { rcode: 0, why: '', edns: false, udpSize: 0, dnssecOk: false, loopTagOffset: -1 };

/**
 * Walks the answer, authority and additional records from `start` (the end
 * of the question section) and reads the OPT record: at most one, in the
 * additional section, owned by the root, EDNS version 0, its options tiling
 * its data (RFC 6891 §6.1). Returns {@link EDNS_SCAN}, overwritten.
 */
function scanEdns(buf: Buffer, start: number): EdnsScan {
  const out = EDNS_SCAN;
  out.rcode = 0;
  out.why = '';
  out.edns = false;
  out.udpSize = 0;
  out.dnssecOk = false;
  out.loopTagOffset = -1;
  const ancount = buf.readUInt16BE(6);
  const nscount = buf.readUInt16BE(8);
  const total = ancount + nscount + buf.readUInt16BE(10);
  const fail = (rcode: number, why: string) => {
    out.rcode = rcode;
    out.why = why;
    return out;
  };
  let pos = start;
  for (let i = 0; i < total; i++) {
    const nameStart = pos;
    pos = skipName(buf, pos);
    if (pos < 0 || pos + 10 > buf.length) return fail(RCode.FORMERR, `record ${i + 1} runs past the end of the message`);
    const type = buf.readUInt16BE(pos);
    const rdataEnd = pos + 10 + buf.readUInt16BE(pos + 8);
    if (rdataEnd > buf.length) return fail(RCode.FORMERR, `record ${i + 1} data runs past the end of the message`);
    if (type === RRType.OPT) {
      if (i < ancount + nscount) return fail(RCode.FORMERR, 'OPT record outside the additional section');
      if (out.edns) return fail(RCode.FORMERR, 'more than one OPT record');
      if (buf[nameStart] !== 0) return fail(RCode.FORMERR, 'OPT record owner is not the root');
      out.edns = true;
      out.udpSize = buf.readUInt16BE(pos + 2);
      out.dnssecOk = (buf[pos + 6]! & 0x80) !== 0;
      const version = buf[pos + 5]!;
      if (version !== 0) return fail(RCode.BADVERS, `EDNS version ${version} not supported`);
      // Options must tile the rdata exactly (RFC 6891 §6.1.2).
      let opt = pos + 10;
      while (opt < rdataEnd) {
        if (opt + 4 > rdataEnd) return fail(RCode.FORMERR, 'truncated EDNS option');
        const optLen = buf.readUInt16BE(opt + 2);
        if (buf.readUInt16BE(opt) === LOOP_OPTION_CODE && optLen === LOOP_TAG_LENGTH) out.loopTagOffset = opt + 4;
        opt += 4 + optLen;
      }
      if (opt !== rdataEnd) return fail(RCode.FORMERR, 'EDNS option runs past the OPT record');
    }
    pos = rdataEnd;
  }
  return out;
}

/**
 * The offset after the uncompressed name at `offset` (labels of at most 63
 * bytes, 255 bytes in all), or -1 when it is not one.
 */
function plainNameEnd(buf: Buffer, offset: number): number {
  let pos = offset;
  for (;;) {
    if (pos >= buf.length) return -1;
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if (len > 63 || pos + 1 + len - offset + 1 > MAX_NAME_WIRE) return -1;
    pos += 1 + len;
  }
}

/**
 * The rejection of a message whose opcode is not QUERY (NOTIMP, RFC 1035
 * §4.1.1) or whose QDCOUNT is not 1 (FORMERR), with what its reply echoes,
 * as unbound does: the question section when every question in it is
 * readable, and an OPT record when the message has a readable one
 * (RFC 6891 §7).
 */
function rejectMessage(buf: Buffer, opcode: number, qdcount: number): ReadResult {
  const rcode = opcode !== OPCODE_QUERY ? RCode.NOTIMP : RCode.FORMERR;
  const why = opcode !== OPCODE_QUERY ? `opcode ${opcode} not implemented` : `QDCOUNT is ${qdcount}, expected 1`;
  let pos = HEADER_LENGTH;
  for (let i = 0; i < qdcount; i++) {
    const end = plainNameEnd(buf, pos);
    if (end < 0 || end + 4 > buf.length) return reject(rcode, why);
    pos = end + 4;
  }
  const e = scanEdns(buf, pos);
  return reject(rcode, why, pos, e.edns, e.dnssecOk);
}

/**
 * Reads a client query: the header, the single question and, when present,
 * the OPT record of the additional section.
 *
 * - fewer than 12 bytes, or QR set (a response): dropped (rcode -1);
 * - opcode other than QUERY: NOTIMP (RFC 1035 §4.1.1);
 * - QDCOUNT other than 1, a malformed question, malformed or repeated OPT
 *   records: FORMERR (RFC 6891 §6.1.1);
 * - EDNS version above 0: BADVERS (RFC 6891 §6.1.3).
 *
 * A rejection says what its reply echoes: the question when readable, and
 * an OPT record when the message had a readable one.
 */
export function readQuery(buf: Buffer): ReadResult {
  if (buf.length < HEADER_LENGTH) return reject(DROP, 'message shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  if (flags & Flags.QR) return reject(DROP, 'QR set: a response, not a query');
  const opcode = (flags >>> 11) & 0x0f;
  const qdcount = buf.readUInt16BE(4);
  if (opcode !== OPCODE_QUERY || qdcount !== 1) return rejectMessage(buf, opcode, qdcount);
  const name = readPlainName(buf, HEADER_LENGTH);
  if (typeof name === 'string') return reject(RCode.FORMERR, name);
  const questionEnd = name.end + 4;
  if (questionEnd > buf.length) return reject(RCode.FORMERR, 'question runs past the end of the message');
  const qtype = buf.readUInt16BE(name.end);
  const qclass = buf.readUInt16BE(name.end + 2);

  let edns = false;
  let ednsUdpSize = 0;
  let dnssecOk = false;
  let loopTagOffset = -1;
  if (buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10) > 0) {
    const e = scanEdns(buf, questionEnd);
    if (e.rcode !== 0) return reject(e.rcode, e.why, questionEnd, e.edns, e.dnssecOk);
    edns = e.edns;
    ednsUdpSize = e.udpSize;
    dnssecOk = e.dnssecOk;
    loopTagOffset = e.loopTagOffset;
  }
  return {
    query: { id: buf.readUInt16BE(0), flags, qname: name.name, qtype, qclass, questionEnd, edns, ednsUdpSize, dnssecOk, loopTagOffset },
    rejected: undefined,
  };
}

/**
 * The largest UDP reply this client accepts: its EDNS size (never below 512),
 * or 512 without EDNS (RFC 1035 §2.3.4, RFC 6891 §6.2.5).
 */
export function clientUdpLimit(q: ParsedQuery): number {
  return q.edns ? Math.max(CLASSIC_UDP_SIZE, q.ednsUdpSize) : CLASSIC_UDP_SIZE;
}

/** Whether `name` equals `zone` or lies below it; both in the sidecar's name form. */
export function inZone(name: string, zone: string): boolean {
  if (zone === '') return true;
  if (name.length === zone.length) return name === zone;
  return name.length > zone.length && name.endsWith(zone) && name.charCodeAt(name.length - zone.length - 1) === 0x2e;
}

/** The first of `zones` that `name` equals or lies below, or undefined. */
export function findZone(name: string, zones: readonly string[]): string | undefined {
  // Indexed: a for-of that V8 has not optimized allocates an iterator result per zone.
  for (let i = 0; i < zones.length; i++) if (inZone(name, zones[i]!)) return zones[i];
  return undefined;
}

/**
 * Normalizes a name typed by a person or written in config: lower case, no
 * trailing dot; the root ('.') becomes ''.
 */
export function normalizeName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
