/**
 * Free loopback ports for servers the tests start as separate processes.
 */
import dgram from 'node:dgram';
import net from 'node:net';

/**
 * A port free for both UDP and TCP on `host` right now (the kernel picks it;
 * a tiny race with other processes remains, as with any pre-picked port).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, host, () => resolve((tcp.address() as net.AddressInfo).port));
    });
    const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    await new Promise<void>((r) => tcp.close(() => r()));
    if (ok) {
      await new Promise<void>((r) => udp.close(() => r()));
      return port;
    }
    udp.close();
  }
  throw new Error(`no free UDP+TCP port on ${host} after 20 attempts`);
}
