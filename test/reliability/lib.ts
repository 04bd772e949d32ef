/**
 * Shared pieces of the reliability suite: a seeded PRNG, a strict
 * well-formedness check for DNS messages, a byte-exact raw upstream, and
 * memory/socket probes for child processes. No assertions live here.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { listenUdpAndTcp } from '../helpers/ports.ts';
import { frame, onFrames } from '../helpers/tcp-frames.ts';

/**
 * Checks one name at `offset` of `buf` strictly: labels of at most 63 bytes,
 * compression pointers (when `allowPointers`) only to data strictly before
 * the place they are read from (RFC 1035 §4.1.4, "a prior occurrence"), at
 * most 255 bytes expanded. Returns the offset after the name, or an error.
 */
export function checkName(buf: Buffer, offset: number, allowPointers: boolean): number | string {
  let pos = offset;
  let end = -1;
  let expanded = 0;
  for (let guard = 0; guard < 256; guard++) {
    if (pos >= buf.length) return `name at ${offset} runs past the end`;
    const len = buf[pos]!;
    if (len === 0) {
      expanded += 1;
      if (expanded > 255) return `name at ${offset} longer than 255 bytes`;
      return end < 0 ? pos + 1 : end;
    }
    if ((len & 0xc0) === 0xc0) {
      if (!allowPointers) return `compression pointer in name at ${offset}`;
      if (pos + 2 > buf.length) return `pointer at ${pos} runs past the end`;
      const target = buf.readUInt16BE(pos) & 0x3fff;
      // Each pointer goes strictly backwards, so following them always ends.
      if (target >= pos || target < 12) return `pointer at ${pos} to ${target} is not to prior data`;
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (len > 63) return `reserved label type 0x${len.toString(16)} at ${pos}`;
    if (pos + 1 + len > buf.length) return `label at ${pos} runs past the end`;
    expanded += 1 + len;
    if (expanded > 255) return `name at ${offset} longer than 255 bytes`;
    pos += 1 + len;
  }
  return `name at ${offset} has too many labels`;
}

/** The layout of a message that {@link checkMessage} accepted. */
export interface MessageLayout {
  readonly id: number;
  readonly flags: number;
  /** Header rcode (low 4 bits). */
  readonly rcode: number;
  readonly qdcount: number;
  readonly ancount: number;
  /** Offset after the question section. */
  readonly questionEnd: number;
}

/**
 * Checks that `buf` is a well-formed DNS message: a header, then exactly the
 * records its counts announce (names checked by {@link checkName}, record
 * data within the message), and nothing after the last record. Record data
 * is not interpreted. Returns the layout or an error string.
 */
export function checkMessage(buf: Buffer): MessageLayout | string {
  if (buf.length < 12) return `${buf.length} bytes, shorter than a header`;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  let pos = 12;
  for (let i = 0; i < qd; i++) {
    const n = checkName(buf, pos, true);
    if (typeof n === 'string') return `question ${i + 1}: ${n}`;
    if (n + 4 > buf.length) return `question ${i + 1} runs past the end`;
    pos = n + 4;
  }
  const questionEnd = pos;
  let opts = 0;
  for (let i = 0; i < an + ns + ar; i++) {
    const n = checkName(buf, pos, true);
    if (typeof n === 'string') return `record ${i + 1}: ${n}`;
    if (n + 10 > buf.length) return `record ${i + 1} runs past the end`;
    const type = buf.readUInt16BE(n);
    const end = n + 10 + buf.readUInt16BE(n + 8);
    if (end > buf.length) return `record ${i + 1} data runs past the end`;
    if (type === 41) {
      opts++;
      if (i < an + ns) return 'OPT record outside the additional section';
      if (buf[pos] !== 0) return 'OPT owner is not the root';
    }
    pos = end;
  }
  if (opts > 1) return `${opts} OPT records`;
  if (pos !== buf.length) return `${buf.length - pos} bytes after the last record`;
  return { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), rcode: buf[3]! & 0x0f, qdcount: qd, ancount: an, questionEnd };
}

/** The end of a query's single question when it is readable without compression, else -1. */
export function plainQuestionEnd(buf: Buffer): number {
  if (buf.length < 12) return -1;
  const n = checkName(buf, 12, false);
  if (typeof n === 'string' || n + 4 > buf.length) return -1;
  return n + 4;
}

/** A datagram or frame the raw upstream received, with where it came from. */
export interface RawQuery {
  readonly wire: Buffer;
  readonly proto: 'udp' | 'tcp';
  readonly port: number;
  readonly at: number;
}

/** What a raw upstream handler returns: replies to send (in order, each after `delayMs`), or null for none. */
export type RawHandler = (q: RawQuery) => Buffer[] | null | { delayMs: number; replies: Buffer[] };

/**
 * The echo answer to a query: its header and question with QR and RA set,
 * NOERROR, and for type A one record `A 192.0.2.1` (TTL 60) whose owner is a
 * pointer to the question. Null when the question is not plainly readable.
 */
export function echoAnswer(query: Buffer, address = [192, 0, 2, 1], ttl = 60): Buffer | null {
  const qEnd = plainQuestionEnd(query);
  if (qEnd < 0 || query.readUInt16BE(4) !== 1) return null;
  const qtype = query.readUInt16BE(qEnd - 4);
  const isA = qtype === 1;
  const out = Buffer.alloc(qEnd + (isA ? 16 : 0));
  query.copy(out, 0, 0, qEnd);
  out.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x0110) | 0x0080, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(isA ? 1 : 0, 6);
  out.writeUInt32BE(0, 8);
  if (isA) {
    let p = qEnd;
    out.writeUInt16BE(0xc00c, p);
    out.writeUInt16BE(1, p + 2);
    out.writeUInt16BE(1, p + 4);
    out.writeUInt32BE(ttl, p + 6);
    out.writeUInt16BE(4, p + 10);
    p += 12;
    for (const b of address) out[p++] = b;
  }
  return out;
}

/** A raw DNS server on 127.0.0.1 (UDP and TCP on one port) that answers with a handler over raw bytes. */
export interface RawUpstream {
  readonly port: number;
  readonly received: RawQuery[];
  /** Keep the last `n` received queries only (default 10 000), to bound memory under floods. */
  keep: number;
  count: number;
  setHandler(h: RawHandler): void;
  /** Sends `wire` from the upstream's own UDP socket to 127.0.0.1:`port`. */
  sendFrom(wire: Buffer, port: number): void;
  close(): Promise<void>;
}

/** Starts a {@link RawUpstream}; the default handler is {@link echoAnswer}. */
export async function startRawUpstream(handler?: RawHandler): Promise<RawUpstream> {
  let h: RawHandler = handler ?? ((q) => {
    const a = echoAnswer(q.wire);
    return a ? [a] : null;
  });
  const sockets = new Set<net.Socket>();
  const state = { keep: 10_000, count: 0 };
  const received: RawQuery[] = [];
  const record = (q: RawQuery) => {
    state.count++;
    received.push(q);
    if (received.length > state.keep) received.splice(0, received.length - state.keep);
  };
  const deliver = (replies: ReturnType<RawHandler>, send: (b: Buffer) => void) => {
    if (!replies) return;
    if (Array.isArray(replies)) {
      for (const r of replies) send(r);
      return;
    }
    const t = setTimeout(() => {
      for (const r of replies.replies) send(r);
    }, replies.delayMs);
    t.unref();
  };
  const { udp, tcp, port } = await listenUdpAndTcp('127.0.0.1', 0, () => {
    const u = dgram.createSocket('udp4');
    u.on('message', (wire, rinfo) => {
      const q: RawQuery = { wire, proto: 'udp', port: rinfo.port, at: Date.now() };
      record(q);
      deliver(h(q), (b) => {
        try {
          u.send(b, rinfo.port, rinfo.address);
        } catch {
          // closed
        }
      });
    });
    const t = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      onFrames(s, (wire) => {
        const q: RawQuery = { wire, proto: 'tcp', port: s.remotePort ?? 0, at: Date.now() };
        record(q);
        deliver(h(q), (b) => {
          if (!s.destroyed) s.write(frame(b));
        });
      });
    });
    return { udp: u, tcp: t };
  });
  udp.on('error', () => {});
  return {
    port,
    received,
    get keep() {
      return state.keep;
    },
    set keep(n: number) {
      state.keep = n;
    },
    get count() {
      return state.count;
    },
    set count(n: number) {
      state.count = n;
    },
    setHandler(next) {
      h = next;
    },
    sendFrom(wire, to) {
      udp.send(wire, to, '127.0.0.1');
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

/** A plain query for `name` (type `qtype`, RD set, ID `id`), optionally with an OPT record of `udpSize`. */
export function rawQuery(name: string, qtype = 1, id = 0, udpSize = 0): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter(Boolean)) parts.push(Buffer.from([label.length]), Buffer.from(label, 'latin1'));
  parts.push(Buffer.from([0]));
  const qname = Buffer.concat(parts);
  const opt = udpSize > 0 ? 11 : 0;
  const out = Buffer.alloc(12 + qname.length + 4 + opt);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0100, 2);
  out.writeUInt16BE(1, 4);
  if (opt) out.writeUInt16BE(1, 10);
  qname.copy(out, 12);
  out.writeUInt16BE(qtype, 12 + qname.length);
  out.writeUInt16BE(1, 14 + qname.length);
  if (opt) {
    const p = 16 + qname.length;
    out[p] = 0;
    out.writeUInt16BE(41, p + 1);
    out.writeUInt16BE(udpSize, p + 3);
  }
  return out;
}

/** The A addresses in a well-formed reply (owner names not compared). */
export function addressesOf(reply: Buffer): string[] {
  const layout = checkMessage(reply);
  if (typeof layout === 'string') return [];
  const out: string[] = [];
  let pos = layout.questionEnd;
  for (let i = 0; i < layout.ancount; i++) {
    const n = checkName(reply, pos, true) as number;
    const type = reply.readUInt16BE(n);
    const len = reply.readUInt16BE(n + 8);
    if (type === 1 && len === 4) out.push([...reply.subarray(n + 10, n + 14)].join('.'));
    pos = n + 10 + len;
  }
  return out;
}

/** VmRSS of a process in MB, from /proc; NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A framed TCP client that collects replies (raw) and lets a test write anything. */
export async function tcpClient(port: number, host = '127.0.0.1') {
  const sock = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const replies: Buffer[] = [];
  let closed = false;
  const waiters = new Set<() => void>();
  onFrames(sock, (reply) => replies.push(Buffer.from(reply)));
  sock.on('data', () => {
    for (const w of waiters) w();
  });
  sock.on('close', () => {
    closed = true;
    for (const w of waiters) w();
  });
  sock.on('error', () => {});
  return {
    sock,
    replies,
    closed: () => closed,
    /** Sends `wire` framed with its length (or a lying `len`). */
    send(wire: Buffer, len?: number) {
      if (!sock.destroyed) sock.write(frame(wire, len));
    },
    write(bytes: Buffer) {
      if (!sock.destroyed) sock.write(bytes);
    },
    /** Resolves when `cond` holds or after `ms` (then returns false). */
    until(cond: () => boolean, ms: number): Promise<boolean> {
      if (cond()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (v: boolean) => {
          clearTimeout(t);
          waiters.delete(check);
          resolve(v);
        };
        const check = () => {
          if (cond()) done(true);
        };
        const t = setTimeout(() => done(cond()), ms);
        waiters.add(check);
      });
    },
    close() {
      sock.destroy();
    },
  };
}

/** Sends `wire` over UDP from a fresh socket and resolves with the first reply, or null after `ms`. */
export function udpAsk(port: number, wire: Buffer, ms = 1000, host = '127.0.0.1'): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, ms);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.on('error', () => {
      clearTimeout(t);
      s.close();
      resolve(null);
    });
    s.send(wire, port, host);
  });
}
