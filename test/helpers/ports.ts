/**
 * Free loopback ports for servers the tests start as separate processes.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * Where pre-picked ports come from: below the kernel's ephemeral range.
 * A port the kernel hands out for port 0 (every client socket, every
 * per-query upstream socket of a sidecar under load in a neighbouring test)
 * can be taken again by such a socket between the pick and the daemon's
 * bind; a port below the range is never handed out that way.
 */
function pickRange(): { low: number; high: number } | undefined {
  try {
    const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (ephemeralLow !== undefined && ephemeralLow > 12_000) return { low: 10_000, high: ephemeralLow - 1 };
  } catch {
    // Not Linux: fall back to kernel-chosen ports.
  }
  return undefined;
}
const RANGE = pickRange();

/** Binds TCP then UDP on `port` (0: kernel-chosen); the port if both bound, else undefined. */
async function tryPort(host: string, port: number): Promise<number | undefined> {
  const tcp = net.createServer();
  const bound = await new Promise<number | undefined>((resolve) => {
    tcp.once('error', () => resolve(undefined));
    tcp.listen({ port, host, exclusive: true }, () => resolve((tcp.address() as net.AddressInfo).port));
  });
  if (bound === undefined) return undefined;
  const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const ok = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(bound, host, () => resolve(true));
  });
  await new Promise<void>((r) => tcp.close(() => r()));
  if (ok) await new Promise<void>((r) => udp.close(() => r()));
  else udp.close();
  return ok ? bound : undefined;
}

/**
 * A port free for both UDP and TCP on `host` right now, chosen at random
 * below the ephemeral range (see pickRange), or by the kernel where that
 * range is unknown. Only another pre-picking process can race for it.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = RANGE ? RANGE.low + Math.floor(Math.random() * (RANGE.high - RANGE.low + 1)) : 0;
    const port = await tryPort(host, candidate);
    if (port !== undefined) return port;
  }
  throw new Error(`no free UDP+TCP port on ${host} after 50 attempts`);
}

/** Starts `server` listening on `host`:`port` (0: kernel-chosen); the port bound, or the listen error. */
export async function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * Binds `udp` and `tcp` on one port of `host`, as a DNS server listens (a
 * reply with TC sends the client to TCP on the same port). With `port` 0
 * the port is pre-picked by {@link freePort}, below the ephemeral range, so
 * that a server restarted on it later does not find it taken by a client
 * socket of a neighbouring test; if another pre-picking process wins the
 * race for it, both sockets are closed and another port is tried. On
 * failure nothing stays bound, so a failed start cannot keep the test
 * process alive.
 */
export async function listenUdpAndTcp(host: string, port: number, make: () => { udp: dgram.Socket; tcp: net.Server }): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const at = port === 0 ? await freePort(host) : port;
    const { udp, tcp } = make();
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(at, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      await listenOn(tcp, host, at);
      return { udp, tcp, port: at };
    } catch (err) {
      await new Promise<void>((r) => {
        try {
          udp.close(() => r());
        } catch {
          r(); // never bound
        }
      });
      if (port !== 0 || attempt >= 20) throw err;
    }
  }
}
