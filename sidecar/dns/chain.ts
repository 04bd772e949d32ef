/**
 * The names an answer leads to: the owner names and CNAME/DNAME targets of
 * its answer section other than the question name, so the policy can check
 * every name in a chain, not only the question (response policy zones do the
 * same). No I/O; the reply was validated by `scanReply` (pointers point
 * strictly backwards), so following them here cannot loop.
 */
import { HEADER_LENGTH, RRType } from './constants.ts';
import { readPlainName } from './wire.ts';

/** Scratch for one expanded name (255 bytes at most, RFC 1035 §3.1). */
const SCRATCH = Buffer.allocUnsafe(256);

/** The name at `offset` with pointers followed, in the sidecar's form; undefined when it cannot be read. */
function readName(buf: Buffer, offset: number): string | undefined {
  let pos = offset;
  let n = 0;
  for (let guard = 0; guard < 128; guard++) {
    if (pos >= buf.length) return undefined;
    const len = buf[pos]!;
    if (len === 0) {
      SCRATCH[n++] = 0;
      const read = readPlainName(SCRATCH.subarray(0, n), 0);
      return typeof read === 'string' ? undefined : read.name;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) return undefined;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if (len > 63 || n + len + 2 > SCRATCH.length || pos + 1 + len > buf.length) return undefined;
    buf.copy(SCRATCH, n, pos, pos + 1 + len);
    n += len + 1;
    pos += len + 1;
  }
  return undefined;
}

/** The offset after a (possibly compressed) name; -1 past the end. */
function nameEnd(buf: Buffer, offset: number): number {
  let pos = offset;
  while (pos < buf.length) {
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2;
    pos += len + 1;
  }
  return -1;
}

/**
 * The names of the answer section of `buf` (a scanned reply) besides
 * `qname`: owner names and CNAME/DNAME targets, each once; undefined when
 * there are none (the common case: every record owned by the question, its
 * owner a pointer to the question, read without making a string).
 */
export function chainNames(buf: Buffer, questionEnd: number, answerCount: number, qname: string): readonly string[] | undefined {
  let out: string[] | undefined;
  const add = (name: string | undefined) => {
    if (name === undefined || name === qname) return;
    if (out === undefined) out = [name];
    else if (!out.includes(name)) out.push(name);
  };
  let pos = questionEnd;
  for (let i = 0; i < answerCount; i++) {
    // An owner that is a pointer to the question (offset 12) is the question name.
    const toQuestion = buf[pos] === 0xc0 && buf[pos + 1] === HEADER_LENGTH;
    if (!toQuestion) add(readName(buf, pos));
    const end = nameEnd(buf, pos);
    if (end < 0 || end + 10 > buf.length) break;
    const type = buf.readUInt16BE(end);
    const rdata = end + 10;
    if (type === RRType.CNAME || type === RRType.DNAME) add(readName(buf, rdata));
    pos = rdata + buf.readUInt16BE(end + 8);
  }
  return out;
}
