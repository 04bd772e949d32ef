/**
 * Reply builders: error replies, the OPT record, UDP truncation, and
 * synthesized answers. No I/O.
 *
 * Convention: inside the pipeline a reply is a "body", a complete DNS
 * message with the client's ID and no OPT record of the client's, at most
 * one carrying the upstream's Extended DNS Errors as its last record (see
 * stripOpt in records.ts). {@link finishReply} makes the OPT record the
 * client gets (RFC 6891: OPT is hop by hop; the upstream's EDEs go into it,
 * RFC 8914) and cuts the reply to the client's UDP limit.
 */
import * as packet from 'dns-packet';
import {
  EDNS_OPTION_EDE,
  EDNS_UDP_SIZE,
  Flags,
  HEADER_LENGTH,
  RCode,
  RRType,
} from './constants.ts';
import { skipName, type ParsedQuery } from './wire.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';

/** An Extended DNS Error (RFC 8914) to attach to a reply. */
export interface ExtendedError {
  /** INFO-CODE (RFC 8914 §4). */
  readonly code: number;
  /** EXTRA-TEXT, UTF-8; may be empty. */
  readonly text: string;
}

/**
 * The flags word of a reply to a query with `queryFlags`: QR and RA set,
 * opcode, RD and CD copied, AA as asked, rcode's low 4 bits.
 */
export function replyFlags(queryFlags: number, rcode: number, authoritative = false): number {
  return (
    Flags.QR |
    Flags.RA |
    (queryFlags & (0x7800 | Flags.RD | Flags.CD)) |
    (authoritative ? Flags.AA : 0) |
    (rcode & 0x0f)
  );
}

/**
 * An error reply body to the client message `wire`: the header with `rcode`,
 * echoing the question section [12, questionEnd) with the message's QDCOUNT
 * when `questionEnd` > 0 (it was readable), no records. FORMERR and NOTIMP
 * say the message was not taken as a query at all: they carry no RA, as
 * unbound's do.
 */
export function errorReply(wire: Buffer, rcode: number, questionEnd: number): Buffer {
  const qEnd = questionEnd > 0 ? questionEnd : HEADER_LENGTH;
  const out = Buffer.allocUnsafe(qEnd);
  wire.copy(out, 0, 0, qEnd);
  const flags = replyFlags(wire.readUInt16BE(2), rcode);
  out.writeUInt16BE(rcode === RCode.FORMERR || rcode === RCode.NOTIMP ? flags & ~Flags.RA : flags, 2);
  out.writeUInt16BE(questionEnd > 0 ? wire.readUInt16BE(4) : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/** The largest DNS message: what a TCP length prefix can frame (RFC 1035 §4.2.2). */
const MAX_MESSAGE = 65_535;

/**
 * The OPT record the sidecar sends: root owner, UDP size 1232, the upper 8
 * bits of an extended rcode, DO mirrored from the query, an EDE option of
 * its own, then `carried`: option bytes as they are on the wire (the
 * upstream's EDE options, RFC 8914).
 */
export function optRecord(rcode: number, dnssecOk: boolean, ede?: ExtendedError, carried?: Buffer): Buffer {
  const text = ede ? Buffer.from(ede.text, 'utf8') : undefined;
  const own = ede ? 4 + 2 + text!.length : 0;
  const rdlen = own + (carried?.length ?? 0);
  const out = Buffer.alloc(11 + rdlen);
  // out[0] = 0: root owner name.
  out.writeUInt16BE(RRType.OPT, 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, 3);
  out[5] = (rcode >>> 4) & 0xff;
  out[6] = 0; // version 0
  out[7] = dnssecOk ? 0x80 : 0;
  out.writeUInt16BE(rdlen, 9);
  if (ede) {
    out.writeUInt16BE(EDNS_OPTION_EDE, 11);
    out.writeUInt16BE(2 + text!.length, 13);
    out.writeUInt16BE(ede.code, 15);
    text!.copy(out, 17);
  }
  carried?.copy(out, 11 + own);
  return out;
}

/** Where the records of a body are: read only when a reply carries additional records or must be cut. */
interface Layout {
  /** Offset just after the question section. */
  readonly questionEnd: number;
  /** ANCOUNT and NSCOUNT; the rest of `starts` is the additional section. */
  readonly an: number;
  readonly ns: number;
  /** Offset of each record, then the offset after the last one: record i is [starts[i], starts[i + 1]). */
  readonly starts: number[];
  /** Each record's type. */
  readonly types: number[];
}

function unbuildable(what: string): never {
  throw new SidecarError(ErrorCodes.INTERNAL, `finishing a reply: ${what}`);
}

/** The offset after a body's question section; throws INTERNAL when it runs past the end. */
function questionSectionEnd(body: Buffer): number {
  let pos = HEADER_LENGTH;
  for (let i = body.readUInt16BE(4); i > 0; i--) {
    pos = skipName(body, pos);
    if (pos < 0 || pos + 4 > body.length) unbuildable('question runs past the end');
    pos += 4;
  }
  return pos;
}

/**
 * The layout of a body of `an`, `ns` and `ar` records (its header's counts
 * may include a carried OPT record cut off the end), whose names and counts
 * its maker already checked; throws INTERNAL when it does not hold.
 */
function layoutOf(body: Buffer, an: number, ns: number, ar: number): Layout {
  const questionEnd = questionSectionEnd(body);
  let pos = questionEnd;
  const total = an + ns + ar;
  const starts: number[] = [];
  const types: number[] = [];
  for (let i = 0; i < total; i++) {
    starts.push(pos);
    pos = skipName(body, pos);
    if (pos < 0 || pos + 10 > body.length) unbuildable(`record ${i + 1} runs past the end`);
    types.push(body.readUInt16BE(pos));
    pos += 10 + body.readUInt16BE(pos + 8);
    if (pos > body.length) unbuildable(`record ${i + 1} data runs past the end`);
  }
  starts.push(pos);
  return { questionEnd, an, ns, starts, types };
}

/**
 * The offset of the last record of a body with at least one record, found
 * without reading the records into a layout (the common reply with
 * additional records only needs to know whether its last one is a carried
 * OPT record); throws INTERNAL when the body does not hold together.
 */
function lastRecordStart(body: Buffer): number {
  let pos = questionSectionEnd(body);
  let last = pos;
  for (let i = body.readUInt16BE(6) + body.readUInt16BE(8) + body.readUInt16BE(10); i > 0; i--) {
    last = pos;
    pos = skipName(body, pos);
    if (pos < 0 || pos + 10 > body.length) unbuildable('a record runs past the end');
    pos += 10 + body.readUInt16BE(pos + 8);
  }
  if (pos !== body.length) unbuildable('the records do not end where the message does');
  return last;
}

/** The owner name of the record at `offset`, lower case, compression pointers followed (at most 127). */
function ownerKey(body: Buffer, offset: number): string {
  let key = '';
  let pos = offset;
  for (let hops = 0; hops < 128; ) {
    if (pos >= body.length) unbuildable('owner name runs past the end');
    const len = body[pos]!;
    if (len === 0) return key;
    if ((len & 0xc0) === 0xc0) {
      pos = body.readUInt16BE(pos) & 0x3fff;
      hops++;
      continue;
    }
    key += body.toString('latin1', pos + 1, pos + 1 + len).toLowerCase() + '.';
    pos += 1 + len;
  }
  return unbuildable('compression pointers loop');
}

/**
 * The RRset of record `i` as a comparable key: owner, class and type, where
 * an RRSIG counts as part of the RRset it covers (RFC 4035 §3.1.1: a
 * signature goes, or stays, with its RRset).
 */
function rrsetKey(body: Buffer, lay: Layout, i: number): string {
  const start = lay.starts[i]!;
  const fixed = skipName(body, start);
  const type = lay.types[i]!;
  const covered = type === RRType.RRSIG ? body.readUInt16BE(fixed + 10) : type;
  return `${ownerKey(body, start)}/${body.readUInt16BE(fixed + 2)}/${covered}`;
}

/**
 * The record indexes in [from, to) where an RRset ends (consecutive records
 * of one RRset, its signatures included, stay together), ascending; `to`
 * is always the last.
 */
function rrsetEnds(body: Buffer, lay: Layout, from: number, to: number): number[] {
  const ends: number[] = [];
  let prev = '';
  for (let i = from; i < to; i++) {
    const key = rrsetKey(body, lay, i);
    if (i > from && key !== prev) ends.push(i);
    prev = key;
  }
  if (to > from) ends.push(to);
  return ends;
}

/**
 * The reply made of `body`'s first `end` bytes (header, question, and
 * whole records), counts set to `an`, `ns`, `ar`, then `opt` appended.
 */
function assemble(body: Buffer, end: number, an: number, ns: number, ar: number, opt: Buffer | undefined): Buffer {
  const out = Buffer.allocUnsafe(end + (opt?.length ?? 0));
  body.copy(out, 0, 0, end);
  opt?.copy(out, end);
  out.writeUInt16BE(an, 6);
  out.writeUInt16BE(ns, 8);
  out.writeUInt16BE(ar + (opt ? 1 : 0), 10);
  return out;
}

/**
 * The part of `body` (without a carried OPT record: `ar` additional records
 * in [0, end)) that fits `budget` bytes, after RFC 2181 §9 and RFC 4035
 * §3.1: whole additional RRsets go first, from the end, without TC; then,
 * when there is an answer, the NS RRsets ending the authority section (the
 * SOA of a negative answer and the NSEC and NSEC3 proofs are needed by the
 * answer: they never go alone); when that is not enough, undefined (the
 * caller sets TC).
 */
function fitting(body: Buffer, lay: Layout, ar: number, budget: number): { end: number; ns: number; ar: number } | undefined {
  const { an, ns, starts } = lay;
  const authorityEnd = an + ns;
  if (starts[authorityEnd]! <= budget) {
    let keep = authorityEnd;
    for (const end of rrsetEnds(body, lay, authorityEnd, authorityEnd + ar)) {
      if (starts[end]! > budget) break;
      keep = end;
    }
    return { end: starts[keep]!, ns, ar: keep - authorityEnd };
  }
  if (an === 0 || starts[an]! > budget) return undefined;
  const ends = [an, ...rrsetEnds(body, lay, an, authorityEnd)];
  for (let g = ends.length - 1; g > 0; g--) {
    const first = ends[g - 1]!;
    const type = lay.types[first] === RRType.RRSIG ? body.readUInt16BE(skipName(body, starts[first]!) + 10) : lay.types[first];
    if (type !== RRType.NS) return undefined;
    if (starts[first]! <= budget) return { end: starts[first]!, ns: first - an, ar: 0 };
  }
  return undefined;
}

/**
 * The wire reply the client receives for a pipeline body: the OPT record
 * the client gets when it used EDNS (the extended rcode bits, `ede`, and
 * the upstream's EDE options when the body carries them in an OPT record of
 * its own, its last record; that record never reaches the client as it is),
 * then cut to fit `udpLimit` bytes. `udpLimit` 0 means TCP: the limit is
 * then the largest message a 2-byte length prefix can frame, 65 535 bytes
 * (RFC 7766 §8). `rcode` is the full (extended) rcode.
 *
 * A reply over the limit loses records the way {@link fitting} says, the
 * OPT record staying; TC is set only when the answer itself, or authority
 * records it needs, do not fit: the reply is then the header with TC, the
 * question and the OPT record.
 *
 * A body that needs none of this (no OPT record to add or drop, within the
 * limit: a cache hit for a client without EDNS) is returned itself, not
 * copied: every body a pipeline outcome carries is its query's own (the
 * cache hands out a copy, the ID is the query's).
 */
export function finishReply(
  body: Buffer,
  q: ParsedQuery,
  udpLimit: number,
  rcode: number,
  ede?: ExtendedError,
): Buffer {
  const limit = udpLimit > 0 ? udpLimit : MAX_MESSAGE;
  let an = body.readUInt16BE(6);
  let ns = body.readUInt16BE(8);
  let ar = body.readUInt16BE(10);
  let end = body.length;
  let carried: Buffer | undefined;
  if (ar > 0) {
    const last = lastRecordStart(body);
    // The root owner (one zero byte), then the type.
    if (body[last] === 0 && body.readUInt16BE(last + 1) === RRType.OPT) {
      end = last;
      carried = body.subarray(last + 11, body.length);
      ar--;
    }
  }
  let opt = q.edns ? optRecord(rcode, q.dnssecOk, ede, carried) : undefined;
  if (opt === undefined && end === body.length && end <= limit) return body;
  if (end + (opt?.length ?? 0) <= limit) return assemble(body, end, an, ns, ar, opt);

  const lay = layoutOf(body.subarray(0, end), an, ns, ar);
  // The OPT record stays (RFC 6891 §7); should the EDE texts make it too long for the question alone, they go.
  if (opt && lay.questionEnd + opt.length > limit) opt = optRecord(rcode, q.dnssecOk, ede);
  if (opt && lay.questionEnd + opt.length > limit) opt = optRecord(rcode, q.dnssecOk);
  const fit = fitting(body, lay, ar, limit - (opt?.length ?? 0));
  if (fit) return assemble(body, fit.end, an, fit.ns, fit.ar, opt);
  const cut = assemble(body, lay.questionEnd, 0, 0, 0, opt);
  cut.writeUInt16BE(cut.readUInt16BE(2) | Flags.TC, 2);
  return cut;
}

/** A record to synthesize, in dns-packet's shape. */
export type SynthRecord = packet.Answer;

/** What a synthesized reply holds: records in dns-packet's shape, or stand-alone wire records (no compression pointers). */
export interface SynthesizedReply {
  readonly rcode: number;
  readonly authoritative?: boolean;
  readonly answers?: readonly (SynthRecord | Buffer)[];
  readonly authorities?: readonly (SynthRecord | Buffer)[];
  readonly additionals?: readonly (SynthRecord | Buffer)[];
}

/**
 * Builds a reply body to the client query `wire` (parsed as `q`) from
 * records. The question is the client's own bytes (its spelling of the name,
 * 0x20 case randomization, and any byte a label may hold), and a record owned
 * by the query name points at it (0xC00C) instead of spelling it again: the
 * name in `q.qname` is presentation text (`\046`, `\\`), which dns-packet
 * would write byte for byte. Other names and all record data are encoded
 * with dns-packet (which never compresses, so each record stands alone);
 * records given as wire bytes are copied as they are.
 */
export function synthesize(wire: Buffer, q: ParsedQuery, reply: SynthesizedReply): Buffer {
  const answers = reply.answers ?? [];
  const authorities = reply.authorities ?? [];
  const additionals = reply.additionals ?? [];
  const parts: Buffer[] = [Buffer.alloc(HEADER_LENGTH), wire.subarray(HEADER_LENGTH, q.questionEnd)];
  for (const rr of [...answers, ...authorities, ...additionals]) parts.push(Buffer.isBuffer(rr) ? rr : encodeRecord(rr, q.qname));
  const body = Buffer.concat(parts);
  body.writeUInt16BE(q.id, 0);
  body.writeUInt16BE(replyFlags(q.flags, reply.rcode, reply.authoritative ?? false), 2);
  body.writeUInt16BE(1, 4);
  body.writeUInt16BE(answers.length, 6);
  body.writeUInt16BE(authorities.length, 8);
  body.writeUInt16BE(additionals.length, 10);
  return body;
}

/** The owner written for records of the query name before it is replaced by a pointer: one label, "x". */
const PLACEHOLDER = 'x';

/**
 * One record's wire bytes, standing alone (no pointer into other records); a
 * record owned by `qname` gets a pointer to the question (offset 12) as its
 * owner, so the bytes fit any reply to a question for `qname`, whatever its
 * spelling ({@link synthesize} takes them as they are).
 */
export function encodeRecord(rr: SynthRecord, qname: string): Buffer {
  const ownQuestion = rr.name === qname;
  const enc = packet.encode({ type: 'response', answers: [ownQuestion ? { ...rr, name: PLACEHOLDER } : rr] } as packet.Packet);
  if (!ownQuestion) return enc.subarray(HEADER_LENGTH);
  // [1, 'x', 0] → [0xC0, 0x0C]
  const out = Buffer.allocUnsafe(enc.length - HEADER_LENGTH - 1);
  out.writeUInt16BE(0xc000 | HEADER_LENGTH, 0);
  enc.copy(out, 2, HEADER_LENGTH + 3);
  return out;
}
