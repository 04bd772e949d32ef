/**
 * The Node forwarding floor of the benchmark (issue 19): the least a correct
 * forwarder written in Node does per cache miss, and nothing else. A query
 * goes upstream with a random ID (RFC 5452); a reply is taken only when its ID
 * and question match the query's, gets the client's ID back and goes to the
 * client. No policy, no cache, no metrics, no retry, no EDNS handling.
 * tenant-dns's misses minus this floor's is what the sidecar's own work costs;
 * this floor against the peers is what Node costs on this machine before any
 * of it.
 *
 * Over UDP the queries go out on 8 connected sockets on kernel-chosen ports.
 * Over DoT (RFC 7858) they go out as the sidecar's stream transport sends them
 * (sidecar/upstream/stream.ts): pipelined on a TLS connection, at most 128 in
 * flight on one, up to 4 connections, the queries of one event-loop turn
 * written as one buffer, replies read in place from a reused read buffer
 * (`onread`).
 *
 * Run: node test/bench/forwarder.ts PORT UPSTREAM_PORT [TLS_NAME CA_FILE]   (listens on
 * 127.0.0.1:PORT until SIGTERM; the upstream is 127.0.0.1:UPSTREAM_PORT, over DoT when TLS_NAME and
 * CA_FILE, the name in its certificate and the CA that signed it, are given). The bench runs it
 * compiled to plain JavaScript (test/helpers/peers.ts startForwarder), as it runs the ceiling.
 */
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { literalLookup } from '../../sidecar/listener/address.ts';

const port = Number(process.argv[2] ?? 0);
const upstreamPort = Number(process.argv[3]);
const [tlsName, caFile] = process.argv.slice(4);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0 || upstreamPort > 65535 || (tlsName !== undefined && caFile === undefined)) {
  throw new Error('usage: forwarder.ts PORT UPSTREAM_PORT [TLS_NAME CA_FILE]');
}

/** A query sent upstream: who asked, with which ID, and the bytes of its question (to match the reply on). */
interface Pending {
  readonly clientId: number;
  readonly clientPort: number;
  readonly clientAddress: string;
  readonly query: Buffer;
  readonly questionEnd: number;
  readonly sentAt: number;
}

/** Where the question section ends (one question, uncompressed name), or -1. */
function questionEnd(msg: Buffer): number {
  let i = 12;
  while (i < msg.length) {
    const len = msg[i]!;
    if (len === 0) return i + 5 <= msg.length ? i + 5 : -1;
    if (len > 63) return -1;
    i += len + 1;
  }
  return -1;
}

// Random IDs from a pool refilled by the kernel's generator, two bytes each.
const random = Buffer.alloc(4096);
let randomAt = random.length;
function randomId(): number {
  if (randomAt >= random.length) {
    randomFillSync(random);
    randomAt = 0;
  }
  const id = random.readUInt16BE(randomAt);
  randomAt += 2;
  return id;
}

const server = dgram.createSocket({ type: 'udp4', lookup: literalLookup });

/** Takes `reply` when it answers a query pending on `pending`: the client's ID back, and to the client. */
function deliver(pending: Map<number, Pending>, reply: Buffer): void {
  if (reply.length < 12) return;
  const p = pending.get(reply.readUInt16BE(0));
  if (p === undefined || reply.length < p.questionEnd || reply.compare(p.query, 12, p.questionEnd, 12, p.questionEnd) !== 0) return;
  pending.delete(reply.readUInt16BE(0));
  reply.writeUInt16BE(p.clientId, 0);
  server.send(reply, p.clientPort, p.clientAddress);
}

/** Where a query goes: a table of the queries in flight there, and how to send one. */
interface Upstream {
  readonly pending: Map<number, Pending>;
  send(query: Buffer): void;
}

/** Where queries go: the next upstream with room for one (undefined: none has), and all of them. */
interface Upstreams {
  pick(): Upstream | undefined;
  all(): Iterable<Upstream>;
}

/** The 8 connected UDP sockets, taken in turn. */
function udpUpstreams(): Upstreams {
  const all = Array.from({ length: 8 }, (): Upstream => {
    const socket = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
    const pending = new Map<number, Pending>();
    socket.on('message', (reply) => deliver(pending, reply));
    socket.bind(0, '127.0.0.1', () => socket.connect(upstreamPort, '127.0.0.1'));
    return { pending, send: (query) => socket.send(query) };
  });
  let next = 0;
  return { pick: () => all[next++ & 7], all: () => all };
}

const DOT_IN_FLIGHT = 128;
const DOT_CONNECTIONS = 4;

/** One DoT connection: queries of a turn written together, replies framed out of the read buffer. */
function dotConnection(name: string, ca: Buffer, onClose: () => void): Upstream {
  const pending = new Map<number, Pending>();
  let outbox: Buffer[] = [];
  let carry: Buffer | undefined;
  const onread = {
    buffer: Buffer.allocUnsafe(64 * 1024),
    callback(n: number, buf: Buffer): boolean {
      let data = carry ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      carry = undefined;
      let at = 0;
      while (data.length - at >= 2) {
        const len = data.readUInt16BE(at);
        if (data.length - at - 2 < len) break;
        // A copy: the read buffer is reused for the next read, and the reply goes to the client after this one.
        deliver(pending, Buffer.from(data.subarray(at + 2, at + 2 + len)));
        at += 2 + len;
      }
      if (at < data.length) carry = Buffer.from(data.subarray(at));
      return true;
    },
  };
  const socket = tls.connect({ host: '127.0.0.1', port: upstreamPort, servername: name, ca, onread } as tls.ConnectionOptions);
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.on('close', () => {
    pending.clear();
    onClose();
  });
  // The turn's queries, each behind its two-byte length, in one buffer: one copy of each query, one write.
  const flush = (): void => {
    const batch = outbox;
    outbox = [];
    let size = 0;
    for (const q of batch) size += 2 + q.length;
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (const q of batch) {
      out.writeUInt16BE(q.length, at);
      at += 2 + q.copy(out, at + 2);
    }
    socket.write(out);
  };
  return {
    pending,
    send(query) {
      if (outbox.push(query) === 1) setImmediate(flush);
    },
  };
}

/** The DoT connections: the first with room for another query, a new one while fewer than 4 are open. */
function dotUpstreams(name: string, ca: Buffer): Upstreams {
  const open: Upstream[] = [];
  const pick = (): Upstream | undefined => {
    for (const c of open) if (c.pending.size < DOT_IN_FLIGHT) return c;
    if (open.length >= DOT_CONNECTIONS) return undefined;
    const c = dotConnection(name, ca, () => {
      const at = open.indexOf(c);
      if (at >= 0) open.splice(at, 1);
    });
    open.push(c);
    return c;
  };
  return { pick, all: () => open };
}

const upstreams = tlsName !== undefined ? dotUpstreams(tlsName, readFileSync(caFile!)) : udpUpstreams();

server.on('message', (msg, rinfo) => {
  const end = msg.length >= 12 ? questionEnd(msg) : -1;
  if (end < 0) return;
  const up = upstreams.pick();
  if (up === undefined) return; // every DoT connection full: the client retries
  let id = randomId();
  while (up.pending.has(id)) id = randomId();
  // The received buffer is this handler's: it goes upstream with the new ID, and is kept to match the reply on.
  const clientId = msg.readUInt16BE(0);
  msg.writeUInt16BE(id, 0);
  up.pending.set(id, { clientId, clientPort: rinfo.port, clientAddress: rinfo.address, query: msg, questionEnd: end, sentAt: Date.now() });
  up.send(msg);
});

// Queries the upstream never answered are forgotten after 2 s (the client has retried by then).
setInterval(() => {
  const old = Date.now() - 2000;
  for (const up of upstreams.all()) for (const [id, p] of up.pending) if (p.sentAt < old) up.pending.delete(id);
}, 1000).unref();

// The same receive buffer the sidecar asks for (sidecar/listener/udp.ts), so bursts are absorbed alike.
server.bind(port, '127.0.0.1', () => {
  try {
    server.setRecvBufferSize(4 * 1024 * 1024);
  } catch {
    // capped by net.core.rmem_max
  }
});
process.on('SIGTERM', () => process.exit(0));
