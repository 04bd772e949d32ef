/**
 * Builds queries the sidecar makes itself (chasing a split-zone CNAME,
 * probing an upstream). No I/O.
 */
import { CLASS_IN, Flags } from './constants.ts';
import { readQuery, type ParsedQuery } from './wire.ts';

/** The wire form of a name in the sidecar's form (lower case, no trailing dot; '' is the root). */
export function encodeName(name: string): Buffer {
  if (name === '') return Buffer.from([0]);
  const labels = name.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`bad label "${label}" in ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** A recursive query for `name`/`qtype` with ID `id`, no EDNS, and its parsed form. */
export function buildQuery(name: string, qtype: number, id = 0): { wire: Buffer; query: ParsedQuery } {
  const qname = encodeName(name);
  const wire = Buffer.alloc(12 + qname.length + 4);
  wire.writeUInt16BE(id, 0);
  wire.writeUInt16BE(Flags.RD, 2);
  wire.writeUInt16BE(1, 4);
  qname.copy(wire, 12);
  wire.writeUInt16BE(qtype, 12 + qname.length);
  wire.writeUInt16BE(CLASS_IN, 14 + qname.length);
  const read = readQuery(wire);
  if (!read.query) throw new Error(`cannot build a query for ${name}: ${read.rejected.why}`);
  return { wire, query: read.query };
}
