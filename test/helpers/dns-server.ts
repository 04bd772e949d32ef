/**
 * A small scriptable DNS server for upstream tests, on 127.0.0.1 port 0 (or a
 * given address and ports: the test hosts of test/helpers/pod-hosts.ts), with
 * four faces: UDP, TCP (pipelined, RFC 7766), TLS (DoT) and HTTPS over HTTP/2
 * (DoH, RFC 8484; HTTP/1.1 allowed too). UDP and TCP share one port. A
 * handler decides each answer.
 *
 * The default handler answers A 192.0.2.1 for every name, and for names
 * starting with `big.` a TXT set over 4 KB. UDP replies larger than the
 * query's EDNS size (512 without EDNS) go out truncated with TC set.
 */
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import * as packet from 'dns-packet';
import { freePort, listenOn, listenUdpAndTcp } from './ports.ts';
import { frame, onFrames } from './tcp-frames.ts';

/** Which face a query came in on. */
export type Face = 'udp' | 'tcp' | 'tls' | 'https';

/**
 * What a handler may return:
 * - a dns-packet Packet or wire Buffer: the reply (its ID is set to the query's unless `keepId`);
 * - 'drop': never answer (the connection stays open);
 * - 'close': close the connection (UDP: same as drop; DoH: reset the stream);
 * - 'wrong-id' / 'wrong-question': the right answer with another ID / another question, only;
 * - 'spoof-then-answer': a wrong-ID and a wrong-question reply, then the right one;
 * - 'garbage': 7 random bytes (framed on TCP/TLS, as the body on DoH);
 * - { delayMs, then? }: the `then` result (default: the default answer) after a delay;
 * - { httpStatus?, contentType? }: DoH only, the default answer with this status / content type.
 */
export type HandlerResult =
  | packet.Packet
  | Buffer
  | 'drop'
  | 'close'
  | 'wrong-id'
  | 'wrong-question'
  | 'spoof-then-answer'
  | 'garbage'
  | { delayMs: number; then?: HandlerResult }
  | { httpStatus?: number; contentType?: string };

/** Where a query came from: the client's address and port. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}

/** Decides the answer to a decoded query; `peer` is the client (undefined when the socket no longer says). */
export type Handler = (query: packet.Packet, face: Face, peer?: Peer) => HandlerResult | Promise<HandlerResult>;

/** A running test server. */
export interface TestDnsServer {
  readonly host: string;
  readonly udpPort: number;
  readonly tcpPort: number;
  /** 0 when no TLS key pair was given. */
  readonly tlsPort: number;
  readonly httpsPort: number;
  /** Queries received per face, and in total. */
  readonly counts: Record<Face | 'total', number>;
  /** TCP, TLS and HTTPS connections accepted so far. */
  readonly connections: number;
  /** The URL of a face for fromUrl: udp://HOST:P, tcp://…, tls://dns.test:P, https://dns.test:P/dns-query. */
  url(face: Face): string;
  /** Replaces the handler. */
  setHandler(handler: Handler): void;
  /** Stops every face and drops every connection; the ports stay reserved for restart(). */
  stop(): Promise<void>;
  /** Starts again on the same ports. */
  restart(): Promise<void>;
  /** Stops for good. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startDnsServer}. */
export interface TestDnsServerOptions {
  readonly handler?: Handler;
  /** The key pair for the TLS and HTTPS faces (e.g. testPki().good); without it those faces are off. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  /** The IPv4 address every face listens on (default 127.0.0.1). */
  readonly host?: string;
  /** The UDP and TCP port (default: pre-picked below the ephemeral range). */
  readonly port?: number;
  /** The TLS face's port (default: pre-picked). */
  readonly tlsPort?: number;
}

/** A TXT record set of about 5 KB: 20 strings of 250 bytes. */
export function bigTxt(name: string): packet.Answer[] {
  const out: packet.Answer[] = [];
  for (let i = 0; i < 20; i++) {
    out.push({ name, type: 'TXT', class: 'IN', ttl: 60, data: [`${String(i).padStart(3, '0')}`.padEnd(250, 'x')] } as packet.Answer);
  }
  return out;
}

/** The default answer: a reply echoing the question with A 192.0.2.1, or a big TXT set for `big.*`. */
export function defaultAnswer(query: packet.Packet): packet.Packet {
  const q = query.questions?.[0];
  const answers: packet.Answer[] = [];
  if (q && q.name.toLowerCase().startsWith('big.')) answers.push(...bigTxt(q.name));
  else if (q && q.type === 'A') answers.push({ name: q.name, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.1' });
  return {
    id: query.id,
    type: 'response',
    flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
    questions: query.questions,
    answers,
  };
}

function udpLimit(query: packet.Packet): number {
  const opt = (query.additionals ?? []).find((rr) => rr.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return opt ? Math.max(512, opt.udpPayloadSize ?? 512) : 512;
}

/** The wire replies (zero or more) for a handler result, or 'close' / a delay / HTTP details. */
interface Rendered {
  readonly wires: Buffer[];
  readonly close: boolean;
  readonly http?: { status?: number; contentType?: string };
}

async function render(result: HandlerResult, query: packet.Packet, raw: Buffer, face: Face): Promise<Rendered> {
  if (Buffer.isBuffer(result)) return { wires: [result], close: false };
  if (typeof result === 'string') {
    const good = packet.encode(defaultAnswer(query));
    switch (result) {
      case 'drop':
        return { wires: [], close: false };
      case 'close':
        return { wires: [], close: true };
      case 'wrong-id':
        return { wires: [withId(good, (raw.readUInt16BE(0) + 1) & 0xffff)], close: false };
      case 'wrong-question':
        return { wires: [wrongQuestion(query)], close: false };
      case 'spoof-then-answer':
        return { wires: [withId(good, (raw.readUInt16BE(0) + 1) & 0xffff), wrongQuestion(query), withId(good, raw.readUInt16BE(0))], close: false };
      case 'garbage':
        return { wires: [Buffer.from([1, 2, 3, 4, 5, 6, 7])], close: false };
    }
  }
  if ('delayMs' in result) {
    await new Promise((r) => setTimeout(r, result.delayMs));
    return render(result.then ?? defaultAnswer(query), query, raw, face);
  }
  if ('httpStatus' in result || 'contentType' in result) {
    const r = result as { httpStatus?: number; contentType?: string };
    return { wires: [packet.encode(defaultAnswer(query))], close: false, http: { status: r.httpStatus, contentType: r.contentType } };
  }
  const p = result as packet.Packet;
  return { wires: [packet.encode({ ...p, id: raw.readUInt16BE(0) })], close: false };
}

function withId(wire: Buffer, id: number): Buffer {
  const out = Buffer.from(wire);
  out.writeUInt16BE(id, 0);
  return out;
}

function wrongQuestion(query: packet.Packet): Buffer {
  const reply = defaultAnswer(query);
  reply.questions = (query.questions ?? []).map((q) => ({ ...q, name: `wrong.${q.name}` }));
  reply.answers = [];
  return packet.encode(reply);
}

/** Cuts a UDP reply to the header and question with TC set. */
function truncate(wire: Buffer): Buffer {
  const p = packet.decode(wire);
  return packet.encode({ ...p, flags: (p.flags ?? 0) | packet.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: [] });
}

function peerOf(socket: net.Socket): Peer | undefined {
  return socket.remoteAddress === undefined || socket.remotePort === undefined ? undefined : { address: socket.remoteAddress, port: socket.remotePort };
}

/** Starts a server with every face on its own port: pre-picked, unless given in `options`. */
export async function startDnsServer(options: TestDnsServerOptions = {}): Promise<TestDnsServer> {
  let handler: Handler = options.handler ?? ((q) => defaultAnswer(q));
  const counts = { udp: 0, tcp: 0, tls: 0, https: 0, total: 0 };
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let udp: dgram.Socket | undefined;
  let tcp: net.Server | undefined;
  let tlsServer: tls.Server | undefined;
  let https: http2.Http2SecureServer | undefined;
  const host = options.host ?? '127.0.0.1';
  const ports = { udp: options.port ?? 0, tcp: options.port ?? 0, tls: options.tlsPort ?? 0, https: 0 };
  let closed = false;

  async function decide(raw: Buffer, face: Face, peer?: Peer): Promise<{ query: packet.Packet; result: HandlerResult } | undefined> {
    let query: packet.Packet;
    try {
      query = packet.decode(raw);
    } catch {
      return undefined;
    }
    counts[face]++;
    counts.total++;
    return { query, result: await handler(query, face, peer) };
  }

  function onStream(socket: net.Socket, face: 'tcp' | 'tls'): void {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onFrames(socket, (raw) => {
      void (async () => {
        const d = await decide(raw, face, peerOf(socket));
        if (!d) return;
        const out = await render(d.result, d.query, raw, face);
        if (out.close) {
          socket.destroy();
          return;
        }
        for (const w of out.wires) if (!socket.destroyed) socket.write(frame(w));
      })();
    });
  }

  function makeUdp(): dgram.Socket {
    const u = dgram.createSocket('udp4');
    u.on('message', (raw, rinfo) => {
      void (async () => {
        const d = await decide(raw, 'udp', { address: rinfo.address, port: rinfo.port });
        if (!d) return;
        const out = await render(d.result, d.query, raw, 'udp');
        for (let w of out.wires) {
          if (w.length > udpLimit(d.query)) w = truncate(w);
          try {
            u.send(w, rinfo.port, rinfo.address);
          } catch {
            // socket closed by stop()
          }
        }
      })();
    });
    return u;
  }

  async function start(): Promise<void> {
    // UDP and TCP share one port, like a real server (TC fallback goes to the same port).
    const pair = await listenUdpAndTcp(host, ports.udp, () => ({ udp: makeUdp(), tcp: net.createServer((s) => onStream(s, 'tcp')) }));
    udp = pair.udp;
    tcp = pair.tcp;
    ports.udp = ports.tcp = pair.port;

    if (options.tls) {
      tlsServer = tls.createServer({ key: options.tls.key, cert: options.tls.cert }, (s) => onStream(s, 'tls'));
      tlsServer.on('tlsClientError', () => {});
      // Pre-picked below the ephemeral range, as for UDP and TCP: a restart then finds the port free.
      ports.tls = await listenOn(tlsServer, host, ports.tls || (await freePort(host)));

      const h = http2.createSecureServer({ key: options.tls.key, cert: options.tls.cert, allowHTTP1: true });
      h.on('session', (s) => {
        connections++;
        sessions.add(s);
        s.on('close', () => sessions.delete(s));
        s.on('error', () => {});
      });
      h.on('secureConnection', (s: tls.TLSSocket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      h.on('tlsClientError', () => {});
      h.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
        void onHttp(req, res);
      });
      https = h;
      ports.https = await listenOn(h as unknown as net.Server, host, ports.https || (await freePort(host)));
    }
  }

  async function onHttp(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
    res.on('error', () => {});
    const url = new URL(req.url, 'https://dns.test');
    if (url.pathname !== '/dns-query') {
      res.writeHead(404).end();
      return;
    }
    let raw: Buffer;
    if (req.method === 'GET') {
      raw = Buffer.from(url.searchParams.get('dns') ?? '', 'base64url');
    } else {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      raw = Buffer.concat(chunks);
    }
    const d = await decide(raw, 'https', peerOf(req.socket));
    if (!d) {
      res.writeHead(400).end();
      return;
    }
    const out = await render(d.result, d.query, raw, 'https');
    if (out.close) {
      if (req.stream) req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else req.socket.destroy();
      return;
    }
    const wire = out.wires.at(-1);
    if (!wire) return; // drop: never answer
    res.writeHead(out.http?.status ?? 200, { 'content-type': out.http?.contentType ?? 'application/dns-message', 'content-length': wire.length });
    res.end(wire);
  }

  async function stop(): Promise<void> {
    const closing: Promise<unknown>[] = [];
    if (udp) {
      const u = udp;
      closing.push(new Promise<void>((r) => u.close(() => r())));
    }
    for (const server of [tcp, tlsServer, https as unknown as net.Server | undefined]) {
      if (server) closing.push(new Promise<void>((r) => server.close(() => r())));
    }
    for (const s of sessions) s.destroy();
    for (const s of sockets) s.destroy();
    udp = undefined;
    tcp = undefined;
    tlsServer = undefined;
    https = undefined;
    await Promise.all(closing);
  }

  await start();
  return {
    host,
    get udpPort() {
      return ports.udp;
    },
    get tcpPort() {
      return ports.tcp;
    },
    get tlsPort() {
      return ports.tls;
    },
    get httpsPort() {
      return ports.https;
    },
    counts,
    get connections() {
      return connections;
    },
    url(face: Face): string {
      switch (face) {
        case 'udp':
          return `udp://${host}:${ports.udp}`;
        case 'tcp':
          return `tcp://${host}:${ports.tcp}`;
        case 'tls':
          return `tls://dns.test:${ports.tls}`;
        case 'https':
          return `https://dns.test:${ports.https}/dns-query`;
      }
    },
    setHandler(h: Handler) {
      handler = h;
    },
    stop,
    async restart() {
      if (closed) throw new Error('test DNS server closed');
      await stop();
      await start();
    },
    async close() {
      if (closed) return;
      closed = true;
      await stop();
    },
  };
}
