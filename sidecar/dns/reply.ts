/**
 * Reply builders: error replies, the OPT record, UDP truncation, and
 * synthesized answers. No I/O.
 *
 * Convention: inside the pipeline a reply is a "body", a complete DNS
 * message with the client's ID and no OPT record. {@link finishReply} adds
 * the OPT record the client gets (RFC 6891: OPT is hop by hop) and cuts the
 * reply to the client's UDP limit.
 */
import * as packet from 'dns-packet';
import {
  EDNS_OPTION_EDE,
  EDNS_UDP_SIZE,
  Flags,
  HEADER_LENGTH,
} from './constants.ts';
import type { ParsedQuery } from './wire.ts';

/** An Extended DNS Error (RFC 8914) to attach to a reply. */
export interface ExtendedError {
  /** INFO-CODE (RFC 8914 §4). */
  readonly code: number;
  /** EXTRA-TEXT, UTF-8; may be empty. */
  readonly text: string;
}

/**
 * The flags word of a reply to a query with `queryFlags`: QR set, RA set
 * when the opcode is QUERY (recursion is what the sidecar offers for
 * queries, not for NOTIFY or UPDATE; as unbound), opcode, RD and CD copied,
 * AA as asked, rcode's low 4 bits.
 */
export function replyFlags(queryFlags: number, rcode: number, authoritative = false): number {
  return (
    Flags.QR |
    ((queryFlags & 0x7800) === 0 ? Flags.RA : 0) |
    (queryFlags & (0x7800 | Flags.RD | Flags.CD)) |
    (authoritative ? Flags.AA : 0) |
    (rcode & 0x0f)
  );
}

/**
 * An error reply body to the client message `wire`: the header with `rcode`,
 * echoing the question section [12, questionEnd) with the message's QDCOUNT
 * when `questionEnd` > 0 (it was readable), no records.
 */
export function errorReply(wire: Buffer, rcode: number, questionEnd: number): Buffer {
  const qEnd = questionEnd > 0 ? questionEnd : HEADER_LENGTH;
  const out = Buffer.allocUnsafe(qEnd);
  wire.copy(out, 0, 0, qEnd);
  out.writeUInt16BE(replyFlags(wire.readUInt16BE(2), rcode), 2);
  out.writeUInt16BE(questionEnd > 0 ? wire.readUInt16BE(4) : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/** The largest DNS message: what a TCP length prefix can frame (RFC 1035 §4.2.2). */
const MAX_MESSAGE = 65_535;

/**
 * The OPT record the sidecar sends: root owner, UDP size 1232, the upper 8
 * bits of an extended rcode, DO mirrored from the query, and an EDE option.
 */
export function optRecord(rcode: number, dnssecOk: boolean, ede?: ExtendedError): Buffer {
  const text = ede ? Buffer.from(ede.text, 'utf8') : undefined;
  const rdlen = ede ? 4 + 2 + text!.length : 0;
  const out = Buffer.alloc(11 + rdlen);
  // out[0] = 0: root owner name.
  out.writeUInt16BE(41, 1);
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
  return out;
}

/**
 * A truncated form of `body`: header with TC set, the question, no records
 * (RFC 2181 §9: the client retries over TCP and must not use a partial set).
 */
export function truncated(body: Buffer, questionEnd: number): Buffer {
  const out = Buffer.allocUnsafe(questionEnd);
  body.copy(out, 0, 0, questionEnd);
  out.writeUInt16BE(body.readUInt16BE(2) | Flags.TC, 2);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

/**
 * The wire reply the client receives for a pipeline body: an OPT record
 * appended when the client used EDNS (with `ede` and the extended rcode
 * bits), then cut to `udpLimit` bytes with TC set when it does not fit.
 * `udpLimit` 0 means TCP: the limit is then the largest message a 2-byte
 * length prefix can frame, 65 535 bytes (RFC 7766 §8: TC over TCP only when
 * the reply would not fit). `rcode` is the full (extended) rcode.
 */
export function finishReply(
  body: Buffer,
  q: ParsedQuery,
  udpLimit: number,
  rcode: number,
  ede?: ExtendedError,
): Buffer {
  let out = body;
  if (q.edns) {
    const opt = optRecord(rcode, q.dnssecOk, ede);
    out = Buffer.allocUnsafe(body.length + opt.length);
    body.copy(out, 0);
    opt.copy(out, body.length);
    out.writeUInt16BE(body.readUInt16BE(10) + 1, 10);
  }
  const limit = udpLimit > 0 ? udpLimit : MAX_MESSAGE;
  if (out.length > limit) {
    const cut = truncated(body, q.questionEnd);
    if (!q.edns) return cut;
    const opt = optRecord(rcode, q.dnssecOk, ede);
    const withOpt = Buffer.allocUnsafe(cut.length + opt.length);
    cut.copy(withOpt, 0);
    opt.copy(withOpt, cut.length);
    withOpt.writeUInt16BE(1, 10);
    return withOpt.length <= limit ? withOpt : cut;
  }
  return out;
}

/** A record to synthesize, in dns-packet's shape. */
export type SynthRecord = packet.Answer;

/** What a synthesized reply holds: records in dns-packet's shape, or stand-alone wire records (no compression pointers). */
export interface SynthesizedReply {
  readonly rcode: number;
  readonly authoritative?: boolean;
  readonly answers?: readonly (SynthRecord | Buffer)[];
  readonly authorities?: readonly (SynthRecord | Buffer)[];
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
  const parts: Buffer[] = [Buffer.alloc(HEADER_LENGTH), wire.subarray(HEADER_LENGTH, q.questionEnd)];
  for (const rr of [...answers, ...authorities]) parts.push(Buffer.isBuffer(rr) ? rr : encodeRecord(rr, q.qname));
  const body = Buffer.concat(parts);
  body.writeUInt16BE(q.id, 0);
  body.writeUInt16BE(replyFlags(q.flags, reply.rcode, reply.authoritative ?? false), 2);
  body.writeUInt16BE(1, 4);
  body.writeUInt16BE(answers.length, 6);
  body.writeUInt16BE(authorities.length, 8);
  body.writeUInt16BE(0, 10);
  return body;
}

/** The owner written for records of the query name before it is replaced by a pointer: one label, "x". */
const PLACEHOLDER = 'x';

/** One record's wire bytes; a record owned by `qname` gets a pointer to the question (offset 12) as its owner. */
function encodeRecord(rr: SynthRecord, qname: string): Buffer {
  const ownQuestion = rr.name === qname;
  const enc = packet.encode({ type: 'response', answers: [ownQuestion ? { ...rr, name: PLACEHOLDER } : rr] } as packet.Packet);
  if (!ownQuestion) return enc.subarray(HEADER_LENGTH);
  // [1, 'x', 0] → [0xC0, 0x0C]
  const out = Buffer.allocUnsafe(enc.length - HEADER_LENGTH - 1);
  out.writeUInt16BE(0xc000 | HEADER_LENGTH, 0);
  enc.copy(out, 2, HEADER_LENGTH + 3);
  return out;
}
