/**
 * The differential conformance test bed: a signed zone (test/helpers/
 * signed-zone.ts) served by nsd, a validating unbound in front of it with the
 * zone's trust anchor (plain DNS, DoT and DoH), dnsdist beside it forwarding
 * to that unbound (plain DNS and DoT), and sidecars in this process
 * forwarding to the same unbound: one over UDP (with TCP on TC), one over
 * DoT. Everything on loopback; nothing resolves a name outside the zone
 * (unbound's root is a static empty zone, dnsdist's security polling is off).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNsd, type NsdServer } from './nsd.ts';
import { startTestSidecar, type TestSidecar } from './sidecar.ts';
import { signConformanceZone, type SignedZone } from './signed-zone.ts';
import { startDnsdist, type TlsDaemon } from './tls-daemons.ts';
import { testPki } from './tls.ts';
import { startValidatingUnbound, type ValidatingUnbound } from './unbound.ts';

/** The running bed. */
export interface ConformanceBed {
  readonly zone: SignedZone;
  readonly nsd: NsdServer;
  /** The validating resolver every other server forwards to. */
  readonly unbound: ValidatingUnbound;
  /** dnsdist forwarding to `unbound`; plain DNS on `plainPort`, DoT on `tlsPort`. */
  readonly dnsdist: TlsDaemon;
  /** The sidecar forwarding to `unbound` over UDP (TCP after TC). */
  readonly sidecar: TestSidecar;
  /** The sidecar forwarding to `unbound` over DoT (its upstream leg is encrypted; clients reach it over UDP or TCP). */
  readonly sidecarDot: TestSidecar;
  /** The CA of every TLS certificate in the bed (name `dns.test`). */
  readonly ca: Buffer;
  /** Stops everything; idempotent. */
  stop(): Promise<void>;
}

/** Sidecar flags every sidecar of the bed gets, besides its upstream. */
export type SidecarFlags = Record<string, unknown>;

/**
 * Starts the bed. `flags` are added to both sidecars' flags. On failure
 * whatever started is stopped again.
 */
export async function startConformanceBed(flags: SidecarFlags = {}): Promise<ConformanceBed> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-conformance-'));
  const pki = testPki();
  const stops: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const zone = signConformanceZone(dir);
    const nsd = await startNsd([{ name: zone.name, file: zone.file }]);
    stops.push(nsd.stop);
    const unbound = await startValidatingUnbound({ stubs: [{ zone: zone.name, port: nsd.port }], trustAnchors: [zone.ds], tls: pki.good });
    stops.push(unbound.stop);
    const dnsdist = await startDnsdist(unbound.port, pki.good, `www.${zone.name}`);
    stops.push(dnsdist.stop);
    const sidecar = await startTestSidecar({ upstream: [`udp://127.0.0.1:${unbound.port}`], ...flags });
    stops.push(sidecar.stop);
    const sidecarDot = await startTestSidecar({
      upstream: [`tls://dns.test:${unbound.tlsPort}`],
      bootstrap: ['dns.test=127.0.0.1'],
      upstreamCa: [pki.caFile],
      ...flags,
    });
    stops.push(sidecarDot.stop);
    return { zone, nsd, unbound, dnsdist, sidecar, sidecarDot, ca: pki.ca, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
