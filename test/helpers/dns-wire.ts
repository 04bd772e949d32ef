/**
 * DNS messages at the level a conformance test needs them: queries with
 * every header bit under the test's control (opcode, RD, AD, CD, QDCOUNT,
 * EDNS version, DO), and replies read into a comparable view (full rcode,
 * each flag, the question, the records of each section in presentation form,
 * the OPT record with its Extended DNS Errors).
 */
import * as packet from 'dns-packet';

/** Record types by name, for queries and for reading replies. */
export const TYPES: Readonly<Record<string, number>> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DNAME: 39, OPT: 41, DS: 43,
  RRSIG: 46, NSEC: 47, DNSKEY: 48, NSEC3: 50, ANY: 255,
};

/** Classes by name. */
export const CLASSES: Readonly<Record<string, number>> = { IN: 1, CH: 3, HS: 4, ANY: 255 };

/** Opcodes by name (RFC 1035, RFC 1996, RFC 2136). */
export const OPCODES = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;

/** A query, every bit chosen by the test. */
export interface QuerySpec {
  readonly name: string;
  /** Type name (`A`) or number. */
  readonly type: string | number;
  /** Class name or number; default IN. */
  readonly class?: string | number;
  /** Message ID; default 0 (clients that match replies by ID set their own). */
  readonly id?: number;
  readonly opcode?: number;
  /** Default true. */
  readonly rd?: boolean;
  readonly ad?: boolean;
  readonly cd?: boolean;
  /** No OPT record when false (default); else its UDP size (default 1232), DO bit and version (default 0). */
  readonly edns?: false | { readonly udpSize?: number; readonly do?: boolean; readonly version?: number };
  /** How many times the question is written (QDCOUNT); default 1. 0 writes no question. */
  readonly qdcount?: number;
}

/** The wire form of a name in presentation form (no escapes), without compression. */
export function nameWire(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter(Boolean)) parts.push(Buffer.from([label.length]), Buffer.from(label, 'latin1'));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function code(table: Readonly<Record<string, number>>, v: string | number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return v;
  const n = table[v.toUpperCase()];
  if (n === undefined) throw new Error(`unknown DNS mnemonic ${v}`);
  return n;
}

/** Builds the wire query for `spec`. */
export function buildQuery(spec: QuerySpec): Buffer {
  const qd = spec.qdcount ?? 1;
  const question = Buffer.concat([nameWire(spec.name), Buffer.alloc(4)]);
  question.writeUInt16BE(code(TYPES, spec.type, 1), question.length - 4);
  question.writeUInt16BE(code(CLASSES, spec.class, 1), question.length - 2);
  const parts: Buffer[] = [Buffer.alloc(12)];
  for (let i = 0; i < qd; i++) parts.push(question);
  if (spec.edns) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(TYPES.OPT!, 1);
    opt.writeUInt16BE(spec.edns.udpSize ?? 1232, 3);
    opt[6] = spec.edns.version ?? 0;
    opt[7] = spec.edns.do ? 0x80 : 0;
    parts.push(opt);
  }
  const out = Buffer.concat(parts);
  out.writeUInt16BE(spec.id ?? 0, 0);
  const flags = ((spec.opcode ?? 0) << 11) | (spec.rd ?? true ? 0x0100 : 0) | (spec.ad ? 0x0020 : 0) | (spec.cd ? 0x0010 : 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(qd, 4);
  out.writeUInt16BE(spec.edns ? 1 : 0, 10);
  return out;
}

/** Header flags by name, as the comparisons list them. */
export const FLAG_BITS = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010 } as const;

/** A header flag's name. */
export type FlagName = keyof typeof FLAG_BITS;

/** One record of a reply, in a form that compares across servers. */
export interface RecordView {
  /** Owner, lower case, no trailing dot. */
  readonly owner: string;
  readonly type: string;
  readonly class: string;
  readonly ttl: number;
  /** The record data in a canonical text form (names lower case). */
  readonly data: string;
  /** `owner class type data`: the record without its TTL, for set comparisons. */
  readonly key: string;
  /** For RRSIG: the type it covers; else the record's own type. */
  readonly covers: string;
}

/** The OPT record of a reply. */
export interface OptView {
  readonly udpSize: number;
  readonly version: number;
  readonly do: boolean;
  /** Extended DNS Errors (RFC 8914), in order. */
  readonly ede: readonly { readonly code: number; readonly text: string }[];
}

/** A reply read for comparison. */
export interface ReplyView {
  readonly id: number;
  readonly opcode: number;
  /** The full rcode: header bits and the OPT record's upper bits. */
  readonly rcode: number;
  readonly flags: Readonly<Record<FlagName, boolean>>;
  /** `name TYPE CLASS` per question, name lower case. */
  readonly questions: readonly string[];
  readonly answer: readonly RecordView[];
  readonly authority: readonly RecordView[];
  /** The additional section without the OPT record. */
  readonly additional: readonly RecordView[];
  readonly opt: OptView | undefined;
  /** Bytes on the wire. */
  readonly size: number;
}

const lower = (s: unknown) => String(s).toLowerCase().replace(/\.$/, '');

/** Canonical text of record data as dns-packet decodes it. */
function dataText(type: string, data: unknown): string {
  const d = data as Record<string, unknown>;
  switch (type) {
    case 'NS':
    case 'CNAME':
    case 'DNAME':
    case 'PTR':
      return lower(data);
    case 'MX':
      return `${d.preference} ${lower(d.exchange)}`;
    case 'SRV':
      return `${d.priority} ${d.weight} ${d.port} ${lower(d.target)}`;
    case 'SOA':
      return `${lower(d.mname)} ${lower(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    case 'TXT':
      return (data as Buffer[]).map((b) => JSON.stringify(b.toString('latin1'))).join(' ');
    case 'RRSIG':
      return `${d.typeCovered} ${d.algorithm} ${d.labels} ${d.originalTTL} ${d.expiration} ${d.inception} ${d.keyTag} ${lower(d.signersName)} ${(d.signature as Buffer).toString('base64')}`;
    case 'NSEC':
      return `${lower(d.nextDomain)} ${[...(d.rrtypes as string[])].sort().join(' ')}`;
    case 'DNSKEY':
      return `${d.flags} ${d.algorithm} ${(d.key as Buffer).toString('base64')}`;
    case 'DS':
      return `${d.keyTag} ${d.algorithm} ${d.digestType} ${(d.digest as Buffer).toString('hex')}`;
    default:
      if (typeof data === 'string') return data; // A, AAAA
      return Buffer.isBuffer(data) ? data.toString('hex') : JSON.stringify(data);
  }
}

function recordView(rr: packet.Answer): RecordView {
  const r = rr as unknown as { name: string; type: string; class?: string; ttl?: number; data: unknown };
  const owner = lower(r.name);
  const cls = r.class ?? 'IN';
  const data = dataText(r.type, r.data);
  const covers = r.type === 'RRSIG' ? String((r.data as { typeCovered: string }).typeCovered) : r.type;
  return { owner, type: r.type, class: cls, ttl: r.ttl ?? 0, data, key: `${owner} ${cls} ${r.type} ${data}`, covers };
}

/** Reads a reply; throws when dns-packet cannot decode it. */
export function readReply(raw: Buffer): ReplyView {
  const p = packet.decode(raw) as packet.Packet & { additionals?: packet.Answer[] };
  const flagsWord = raw.readUInt16BE(2);
  const flags = Object.fromEntries(Object.entries(FLAG_BITS).map(([k, bit]) => [k, (flagsWord & bit) !== 0])) as Record<FlagName, boolean>;
  let opt: OptView | undefined;
  let extended = 0;
  const additional: RecordView[] = [];
  for (const rr of p.additionals ?? []) {
    if (rr.type !== 'OPT') {
      additional.push(recordView(rr));
      continue;
    }
    const o = rr as unknown as { udpPayloadSize: number; extendedRcode: number; ednsVersion: number; flags: number; options?: { code: number; data: Buffer }[] };
    extended = o.extendedRcode ?? 0;
    opt = {
      udpSize: o.udpPayloadSize,
      version: o.ednsVersion ?? 0,
      do: ((o.flags ?? 0) & packet.DNSSEC_OK) !== 0,
      ede: (o.options ?? [])
        .filter((x) => x.code === 15 && x.data.length >= 2)
        .map((x) => ({ code: x.data.readUInt16BE(0), text: x.data.subarray(2).toString('utf8') })),
    };
  }
  return {
    id: raw.readUInt16BE(0),
    opcode: (flagsWord >>> 11) & 0x0f,
    rcode: (extended << 4) | (flagsWord & 0x0f),
    flags,
    questions: (p.questions ?? []).map((q) => `${lower(q.name)} ${q.type} ${q.class}`),
    answer: (p.answers ?? []).map(recordView),
    authority: (p.authorities ?? []).map(recordView),
    additional,
    opt,
    size: raw.length,
  };
}

/** The set flags of a view, as dig prints them (`qr rd ra`). */
export function flagText(v: ReplyView): string {
  return (Object.keys(FLAG_BITS) as FlagName[]).filter((f) => v.flags[f]).join(' ').toLowerCase();
}
