/**
 * A UDP relay on a loopback port in front of a DNS server, that a test can
 * cut (datagrams are dropped, as in an outage between a forwarder and its
 * upstream) and restore.
 */
import dgram from 'node:dgram';

/** A running relay. */
export interface UdpRelay {
  /** The port clients send to on 127.0.0.1. */
  readonly port: number;
  /** Drops every datagram from now on, both ways. */
  cut(): void;
  /** Relays again. */
  restore(): void;
  /** Closes every socket. Idempotent. */
  close(): Promise<void>;
}

/** Starts a relay from a kernel-chosen port on 127.0.0.1 to 127.0.0.1:`targetPort`. */
export async function startUdpRelay(targetPort: number): Promise<UdpRelay> {
  const front = dgram.createSocket('udp4');
  /** One socket towards the target per client address, so replies find their way back. */
  const back = new Map<string, dgram.Socket>();
  let cut = false;
  front.on('message', (msg, from) => {
    if (cut) return;
    const key = `${from.address}:${from.port}`;
    let out = back.get(key);
    if (!out) {
      const s = dgram.createSocket('udp4');
      s.on('message', (reply) => {
        if (!cut) front.send(reply, from.port, from.address);
      });
      s.on('error', () => {});
      back.set(key, s);
      out = s;
    }
    out.send(msg, targetPort, '127.0.0.1');
  });
  front.on('error', () => {});
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  let closed: Promise<void> | undefined;
  return {
    port: front.address().port,
    cut: () => void (cut = true),
    restore: () => void (cut = false),
    close: () =>
      (closed ??= (async () => {
        for (const s of back.values()) s.close();
        await new Promise<void>((resolve) => front.close(() => resolve()));
      })()),
  };
}
