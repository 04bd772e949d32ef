/**
 * The Node forwarding floor of the benchmark (issue 19): the least a correct
 * UDP forwarder written in Node does per cache miss, and nothing else. A
 * query goes out on one of 8 connected sockets on kernel-chosen ports with a
 * random ID (RFC 5452); a reply is taken only when its ID and question match
 * the query's, gets the client's ID back and goes to the client. No policy,
 * no cache, no metrics, no retry, no EDNS handling. tenant-dns's misses
 * minus this floor's is what the sidecar's own work costs; this floor
 * against the peers is what Node costs on this machine before any of it.
 *
 * Run: node test/bench/forwarder.ts PORT UPSTREAM_PORT   (listens on 127.0.0.1:PORT until SIGTERM;
 * the upstream is 127.0.0.1:UPSTREAM_PORT). The bench runs it compiled to plain JavaScript
 * (test/helpers/peers.ts forwarderScript), as it runs the ceiling.
 */
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { literalLookup } from '../../sidecar/listener/address.ts';

const port = Number(process.argv[2] ?? 0);
const upstreamPort = Number(process.argv[3]);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0 || upstreamPort > 65535) throw new Error('usage: forwarder.ts PORT UPSTREAM_PORT');

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
const upstreams = Array.from({ length: 8 }, () => {
  const socket = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  const pending = new Map<number, Pending>();
  socket.on('message', (reply) => {
    if (reply.length < 12) return;
    const p = pending.get(reply.readUInt16BE(0));
    if (p === undefined || reply.length < p.questionEnd || reply.compare(p.query, 12, p.questionEnd, 12, p.questionEnd) !== 0) return;
    pending.delete(reply.readUInt16BE(0));
    reply.writeUInt16BE(p.clientId, 0);
    server.send(reply, p.clientPort, p.clientAddress);
  });
  socket.bind(0, '127.0.0.1', () => socket.connect(upstreamPort, '127.0.0.1'));
  return { socket, pending };
});

let next = 0;
server.on('message', (msg, rinfo) => {
  const end = msg.length >= 12 ? questionEnd(msg) : -1;
  if (end < 0) return;
  const up = upstreams[next++ & 7]!;
  let id = randomId();
  while (up.pending.has(id)) id = randomId();
  // The received buffer is this handler's: it goes upstream with the new ID, and is kept to match the reply on.
  const clientId = msg.readUInt16BE(0);
  msg.writeUInt16BE(id, 0);
  up.pending.set(id, { clientId, clientPort: rinfo.port, clientAddress: rinfo.address, query: msg, questionEnd: end, sentAt: Date.now() });
  up.socket.send(msg);
});

// Queries the upstream never answered are forgotten after 2 s (the client has retried by then).
setInterval(() => {
  const old = Date.now() - 2000;
  for (const up of upstreams) for (const [id, p] of up.pending) if (p.sentAt < old) up.pending.delete(id);
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
