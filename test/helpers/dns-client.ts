/**
 * A small DNS client for tests: one query over UDP or TCP to a loopback
 * server, decoded with dns-packet, with a deadline.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import * as packet from 'dns-packet';
import { frame, onFrames } from './tcp-frames.ts';

/** A question, as dns-packet spells it. */
export interface TestQuestion {
  readonly name: string;
  readonly type: string;
  /** Default: an EDNS query with a 1232-byte buffer; `false`: no OPT record. */
  readonly edns?: false | { udpSize?: number; do?: boolean };
  /** Message ID; random by default. */
  readonly id?: number;
}

/** The wire query for `q`. */
export function encodeQuery(q: TestQuestion): Buffer {
  const additionals: packet.Answer[] = [];
  if (q.edns !== false) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: q.edns?.udpSize ?? 1232,
      flags: q.edns?.do ? packet.DNSSEC_OK : 0,
    } as unknown as packet.Answer);
  }
  return packet.encode({
    id: q.id ?? Math.floor(Math.random() * 65536),
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name: q.name, type: q.type as packet.RecordType, class: 'IN' }],
    additionals,
  });
}

/** Sends raw bytes over UDP and resolves with the first datagram back (raw), or rejects after `timeoutMs`. */
export function exchangeUdpRaw(host: string, port: number, wire: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP reply from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(wire, port, host);
  });
}

/** Sends one length-prefixed message over a new TCP connection and resolves with the reply (raw). */
export function exchangeTcpRaw(host: string, port: number, wire: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TCP reply from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(frame(wire)));
    onFrames(sock, (reply) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(reply);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A decoded record, loosely typed for assertions. */
export interface DecodedRecord {
  readonly name: string;
  readonly type: string;
  readonly ttl: number;
  readonly class: string;
  readonly data: any;
  readonly options?: readonly { code: number; data: Buffer }[];
}

/** A decoded reply as dns-packet reads it, typed for what tests look at. */
export interface DecodedReply {
  readonly id: number;
  readonly rcode: string;
  readonly flag_tc: boolean;
  readonly flag_aa: boolean;
  readonly flag_rd: boolean;
  readonly flag_ra: boolean;
  readonly questions: readonly { name: string; type: string; class: string }[];
  readonly answers: readonly DecodedRecord[];
  readonly authorities: readonly DecodedRecord[];
  readonly additionals: readonly DecodedRecord[];
  /** The reply's bytes. */
  readonly raw: Buffer;
}

/** Decodes a reply with dns-packet. */
export function decodeReply(raw: Buffer): DecodedReply {
  const p = packet.decode(raw) as unknown as Omit<DecodedReply, 'raw'>;
  return { ...p, answers: p.answers ?? [], authorities: p.authorities ?? [], additionals: p.additionals ?? [], raw };
}

/** Queries over UDP and decodes the reply. */
export async function queryUdp(host: string, port: number, q: TestQuestion, timeoutMs = 2000): Promise<DecodedReply> {
  return decodeReply(await exchangeUdpRaw(host, port, encodeQuery(q), timeoutMs));
}

/** Queries over TCP and decodes the reply. */
export async function queryTcp(host: string, port: number, q: TestQuestion, timeoutMs = 2000): Promise<DecodedReply> {
  return decodeReply(await exchangeTcpRaw(host, port, encodeQuery(q), timeoutMs));
}

/** The EDE option (RFC 8914) of a decoded reply, if any. */
export function extendedError(reply: DecodedReply): { code: number; text: string } | undefined {
  for (const rr of reply.additionals) {
    if (rr.type !== 'OPT') continue;
    for (const opt of rr.options ?? []) {
      if (opt.code === 15) return { code: opt.data.readUInt16BE(0), text: opt.data.subarray(2).toString('utf8') };
    }
  }
  return undefined;
}
