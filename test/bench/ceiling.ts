/**
 * The Node ceiling of the benchmark (issue 7): a node:dgram server that
 * copies the query ID into a fixed, valid reply (an A record for
 * h0.bench.test) and sends it. No DNS logic at all, so no Node DNS proxy can
 * answer faster on the same machine: it is the physical limit of our hot path.
 * It allocates one reply buffer per query, as the sidecar must.
 *
 * Run: node test/bench/ceiling.ts PORT   (listens on 127.0.0.1:PORT until SIGTERM). The bench runs
 * it compiled to plain JavaScript (test/helpers/peers.ts ceilingScript), as the sidecar runs its bundle.
 */
import dgram from 'node:dgram';
import { literalLookup } from '../../sidecar/listener/address.ts';

const port = Number(process.argv[2] ?? 0);

// Header: QR RD RA, NOERROR, 1 question, 1 answer. Question h0.bench.test A IN; answer via a pointer to it.
const name = Buffer.from([2, 0x68, 0x30, 5, 0x62, 0x65, 0x6e, 0x63, 0x68, 4, 0x74, 0x65, 0x73, 0x74, 0]);
const TEMPLATE = Buffer.concat([
  Buffer.from([0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]),
  name,
  Buffer.from([0, 1, 0, 1]),
  Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 10, 0, 0, 0]),
]);

// The sidecar's own send path: its sockets answer IP literals without dns.lookup's tick (sidecar/listener/address.ts).
const sock = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
sock.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  const reply = Buffer.allocUnsafe(TEMPLATE.length);
  TEMPLATE.copy(reply);
  reply[0] = msg[0]!;
  reply[1] = msg[1]!;
  sock.send(reply, rinfo.port, rinfo.address);
});
// The same receive buffer the sidecar asks for (sidecar/listener/udp.ts), so bursts are absorbed alike.
sock.bind(port, '127.0.0.1', () => {
  try {
    sock.setRecvBufferSize(4 * 1024 * 1024);
  } catch {
    // capped by net.core.rmem_max
  }
});
process.on('SIGTERM', () => sock.close(() => process.exit(0)));
