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
import types from 'dns-packet/types.js';
import classes from 'dns-packet/classes.js';
import {
  EDNS_OPTION_EDE,
  EDNS_UDP_SIZE,
  Flags,
  HEADER_LENGTH,
  RCode,
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
 * echoing the question when `questionEnd` > 0 (it was readable), no records.
 */
export function errorReply(wire: Buffer, rcode: number, questionEnd: number): Buffer {
  const qEnd = questionEnd > 0 ? questionEnd : HEADER_LENGTH;
  const out = Buffer.allocUnsafe(qEnd);
  wire.copy(out, 0, 0, qEnd);
  out.writeUInt16BE(replyFlags(wire.readUInt16BE(2), rcode), 2);
  out.writeUInt16BE(questionEnd > 0 ? 1 : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

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
 * `udpLimit` 0 means no limit (TCP). `rcode` is the full (extended) rcode.
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
  if (udpLimit > 0 && out.length > udpLimit) {
    const cut = truncated(body, q.questionEnd);
    if (!q.edns) return cut;
    const opt = optRecord(rcode, q.dnssecOk, ede);
    const withOpt = Buffer.allocUnsafe(cut.length + opt.length);
    cut.copy(withOpt, 0);
    opt.copy(withOpt, cut.length);
    withOpt.writeUInt16BE(1, 10);
    return withOpt.length <= udpLimit ? withOpt : cut;
  }
  return out;
}

/** A record to synthesize, in dns-packet's shape. */
export type SynthRecord = packet.Answer;

/** What a synthesized reply holds. */
export interface SynthesizedReply {
  readonly rcode: number;
  readonly authoritative?: boolean;
  readonly answers?: readonly SynthRecord[];
  readonly authorities?: readonly SynthRecord[];
}

/**
 * Builds a reply body to the client query `wire` (parsed as `q`) from
 * records, with dns-packet. The question bytes are copied from the query so
 * the client sees its own spelling of the name (0x20 case randomization).
 */
export function synthesize(wire: Buffer, q: ParsedQuery, reply: SynthesizedReply): Buffer {
  const flags = replyFlags(q.flags, reply.rcode, reply.authoritative ?? false);
  const body = packet.encode({
    id: q.id,
    type: 'response',
    flags: flags & 0x7fff & ~0x000f,
    rcode: rcodeName(reply.rcode),
    questions: [{ name: q.qname, type: typeName(q.qtype), class: className(q.qclass) }],
    answers: reply.answers as packet.Answer[] | undefined,
    authorities: reply.authorities as packet.Answer[] | undefined,
  } as packet.Packet);
  body.writeUInt16BE(flags, 2);
  wire.copy(body, HEADER_LENGTH, HEADER_LENGTH, q.questionEnd);
  return body;
}

const RCODE_NAMES: Record<number, string> = {
  [RCode.NOERROR]: 'NOERROR',
  [RCode.FORMERR]: 'FORMERR',
  [RCode.SERVFAIL]: 'SERVFAIL',
  [RCode.NXDOMAIN]: 'NXDOMAIN',
  [RCode.NOTIMP]: 'NOTIMP',
  [RCode.REFUSED]: 'REFUSED',
};

function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode & 0x0f] ?? 'NOERROR';
}

/** dns-packet's name for a numeric type ('A', or 'UNKNOWN_nnn', which it also encodes). */
export function typeName(type: number): packet.RecordType {
  return types.toString(type) as packet.RecordType;
}
function className(cls: number): packet.RecordClass {
  return classes.toString(cls) as packet.RecordClass;
}
