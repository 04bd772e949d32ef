/**
 * A DNSSEC-signed test zone made with Debian's ldnsutils (`ldns-keygen`,
 * `ldns-signzone`): the zone the differential conformance suite serves from
 * nsd. It holds every shape the suite asks about: an MX and an SRV whose
 * glue overflows 512 bytes, a long CNAME chain, a DNAME, wildcards, a 5 KB
 * TXT set, an empty non-terminal, and names whose signature is broken
 * (a validator answers them SERVFAIL with EDE 6, DNSSEC Bogus).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The zone's apex. */
export const CONFORMANCE_ZONE = 'conformance.test';

/** Owner names whose A record no longer matches its signature after signing. */
export const BOGUS_NAMES = [`bogus.${CONFORMANCE_ZONE}`, `bogus-burst.${CONFORMANCE_ZONE}`] as const;

/** Names of the MX targets (`mx01` …) and the SRV targets (`sip01` …) with their glue. */
const MX_TARGETS = 12;
const SRV_TARGETS = 10;
/** Links in the CNAME chain `chain1` → … → `chain<N>` → `www`. */
export const CNAME_CHAIN = 8;
/** Records of the big TXT set, 200 bytes of text each: about 5 KB. */
const BIG_TXT_RECORDS = 25;

/** A signed zone on disk. */
export interface SignedZone {
  /** The apex, `conformance.test`. */
  readonly name: string;
  /** The signed zone file (ldns-signzone's output, one record per line). */
  readonly file: string;
  /** The DS record of the zone's key, presentation format: a validator's trust anchor. */
  readonly ds: string;
  /**
   * The TTL of every RRset in the zone, keyed `owner/TYPE` (owner lower case
   * without the trailing dot; signatures as `owner/RRSIG TYPE`, by the type
   * they cover): the upper bound of any TTL a resolver hands out.
   */
  readonly ttls: ReadonlyMap<string, number>;
}

/** The unsigned zone text: the records the suite's questions reach. */
export function conformanceZoneText(): string {
  const z = CONFORMANCE_ZONE;
  const lines = [
    `$ORIGIN ${z}.`,
    '$TTL 3600',
    '@ IN SOA ns1 hostmaster 2026010101 3600 600 86400 300',
    '@ IN NS ns1',
    '@ IN NS ns2',
    'ns1 IN A 192.0.2.1',
    'ns2 IN A 192.0.2.2',
    'www 300 IN A 192.0.2.10',
    'www 300 IN AAAA 2001:db8::10',
    // An MX set that fits 512 bytes alone, whose glue (A and AAAA per target) does not.
    ...Array.from({ length: MX_TARGETS }, (_, i) => `mail IN MX ${10 + i} mx${String(i + 1).padStart(2, '0')}`),
    ...Array.from({ length: MX_TARGETS }, (_, i) => `mx${String(i + 1).padStart(2, '0')} IN A 192.0.2.${101 + i}`),
    ...Array.from({ length: MX_TARGETS }, (_, i) => `mx${String(i + 1).padStart(2, '0')} IN AAAA 2001:db8::${(0x101 + i).toString(16)}`),
    ...Array.from({ length: SRV_TARGETS }, (_, i) => `_sip._tcp IN SRV 10 ${i} 5060 sip${String(i + 1).padStart(2, '0')}`),
    ...Array.from({ length: SRV_TARGETS }, (_, i) => `sip${String(i + 1).padStart(2, '0')} IN A 192.0.2.${151 + i}`),
    ...Array.from({ length: SRV_TARGETS }, (_, i) => `sip${String(i + 1).padStart(2, '0')} IN AAAA 2001:db8::${(0x151 + i).toString(16)}`),
    ...Array.from({ length: CNAME_CHAIN }, (_, i) => `chain${i + 1} 600 IN CNAME ${i + 1 === CNAME_CHAIN ? 'www' : `chain${i + 2}`}`),
    'dname 1800 IN DNAME target',
    'www.target 300 IN A 192.0.2.20',
    '*.wild 120 IN A 192.0.2.30',
    '*.wild 120 IN TXT "wildcard"',
    ...Array.from({ length: BIG_TXT_RECORDS }, (_, i) => `big 900 IN TXT "${String(i).padStart(4, '0')}${'x'.repeat(196)}"`),
    // ent and sub.ent exist only as the parents of leaf.sub.ent: empty non-terminals.
    'leaf.sub.ent IN A 192.0.2.40',
    'bogus IN A 192.0.2.66',
    'bogus-burst IN A 192.0.2.66',
    '',
  ];
  return lines.join('\n');
}

/**
 * Generates a key (ECDSA P-256, one combined signing key), signs the zone
 * into `dir` with NSEC, and changes the A record of each of
 * {@link BOGUS_NAMES} after signing so that its signature no longer verifies.
 */
export function signConformanceZone(dir: string): SignedZone {
  const unsigned = join(dir, `${CONFORMANCE_ZONE}.zone`);
  writeFileSync(unsigned, conformanceZoneText());
  const run = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (err) {
      throw new Error(`${cmd} failed (is Debian's ldnsutils installed?): ${(err as Error).message}`, { cause: err });
    }
  };
  const key = run('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', CONFORMANCE_ZONE]);
  const now = Math.floor(Date.now() / 1000);
  const file = join(dir, `${CONFORMANCE_ZONE}.signed`);
  // Valid from a day ago for 30 days: no validator's clock is that far off.
  run('ldns-signzone', ['-o', CONFORMANCE_ZONE, '-i', String(now - 86_400), '-e', String(now + 30 * 86_400), '-f', file, unsigned, key]);
  let signed = readFileSync(file, 'utf8');
  for (const name of BOGUS_NAMES) {
    const line = new RegExp(`^(${name.replace(/\./g, '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+)192\\.0\\.2\\.66$`, 'm');
    if (!line.test(signed)) throw new Error(`signed zone has no A record for ${name} to break`);
    signed = signed.replace(line, '$1192.0.2.67');
  }
  writeFileSync(file, signed);
  const ds = readFileSync(join(dir, `${key}.ds`), 'utf8').trim().replace(/\s+/g, ' ');
  return { name: CONFORMANCE_ZONE, file, ds, ttls: rrsetTtls(readFileSync(file, 'utf8')) };
}

/** `owner/TYPE` (`owner/RRSIG TYPE` for signatures) → TTL of every record line of a zone file in ldns's one-record-per-line form. */
function rrsetTtls(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const owner = m[1]!.toLowerCase().replace(/\.$/, '');
    const type = m[3]!.toUpperCase();
    out.set(`${owner}/${type === 'RRSIG' ? `RRSIG ${m[4]!.toUpperCase()}` : type}`, Number(m[2]));
  }
  return out;
}
