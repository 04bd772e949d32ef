/**
 * The gateway against Debian's nsd serving the same data: `tenant-dns gateway
 * --dump-zone` writes each zone, nsd serves the files, and every question of
 * a generated set (existing names, wildcard matches, empty non-terminals,
 * missing names, in- and out-of-zone CNAMEs, every relevant type, mixed case,
 * no EDNS and EDNS sizes 512, 1232 and 4096, UDP and TCP) must get the same
 * reply from both.
 *
 * Normalized: the message ID (each session writes its own), and nothing else:
 * both servers get the same zone data with the same SOA serial (the gateway
 * runs with its clock at the serial the dump wrote), TTLs are the zone's on
 * both (neither counts down), and the OPT record is compared on presence, DO
 * and EDE codes (test/helpers/differential.ts, viewDifferences), not on its
 * advertised UDP size: that is each server's own buffer setting, not part of
 * the answer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../sidecar/log.ts';
import { parseTenantDomains, zoneSettings } from '../../gateway/main.ts';
import { readObjectFiles } from '../../gateway/objects-file.ts';
import { startGateway } from '../../gateway/server.ts';
import { viewDifferences } from '../helpers/differential.ts';
import { udpSession, streamSession, type DnsSession } from '../helpers/dns-sessions.ts';
import { buildQuery, flagText, OPCODES, readReply, type QuerySpec, type ReplyView } from '../helpers/dns-wire.ts';
import { startNsd } from '../helpers/nsd.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OBJECTS = fileURLToPath(new URL('./testdata/objects.yaml', import.meta.url));
const FLAGS = {
  zone: ['tenants.example', 'other.example'],
  ns: ['ns1.tenants.example=192.0.2.53,2001:db8::53', 'ns2.dns-provider.example'],
  ttl: 300,
  tenantDomain: ['shop=shop.tenants.example', 'shop=other.example'],
};
const CLI_FLAGS = [...FLAGS.zone.flatMap((z) => ['--zone', z]), ...FLAGS.ns.flatMap((n) => ['--ns', n]), '--ttl', String(FLAGS.ttl), ...FLAGS.tenantDomain.flatMap((d) => ['--tenant-domain', d]), '--objects', OBJECTS];

/** The names asked: what each exercises. */
const NAMES: readonly string[] = [
  'tenants.example', // apex: SOA, NS
  'other.example', // apex with a tenant's addresses
  'ns1.tenants.example', // glue
  'www.shop.tenants.example', // union of two objects
  'WwW.ShOp.TeNaNtS.eXaMpLe', // mixed case
  'x.apps.shop.tenants.example', // wildcard match
  'y.z.apps.shop.tenants.example', // wildcard two labels down
  '*.apps.shop.tenants.example', // the wildcard itself
  'apps.shop.tenants.example', // empty non-terminal above a wildcard
  'a.b.shop.tenants.example', // empty non-terminal
  'b.shop.tenants.example', // empty non-terminal
  'x.a.b.shop.tenants.example', // missing below an empty non-terminal
  'deep.a.b.shop.tenants.example',
  'shop.tenants.example', // empty non-terminal: the tenant's domain
  'elb.shop.tenants.example', // CNAME out of the zone
  'q.wild-cname.shop.tenants.example', // wildcard CNAME
  'alias.shop.tenants.example', // CNAME in the zone, followed
  'alias2.shop.tenants.example',
  'dangling.shop.tenants.example', // CNAME to a missing name in the zone
  'big.shop.tenants.example', // 40 addresses: truncated without EDNS
  'portal.bank.tenants.example', // HTTPRoute on a Gateway of another namespace
  'other.bank.tenants.example', // HTTPRoute wildcard
  'missing.tenants.example', // NXDOMAIN
  'www.tenants.example', // refused claim: NXDOMAIN
  'x.www.shop.tenants.example', // below a name with data
  'ignored.shop.tenants.example', // a ClusterIP service's annotation
  'www.elsewhere.example', // outside the zones: REFUSED
  'example', // above the zones
];
const TYPES = ['A', 'AAAA', 'CNAME', 'NS', 'SOA', 'TXT', 'MX', 'ANY', 'DS'];
const EDNS: readonly (false | number)[] = [false, 512, 1232, 4096];

/**
 * Why messages that are not one standard query are not compared with nsd: the
 * gateway answers them with the sidecar's wire reader (sidecar/dns/wire.ts,
 * the same behaviour the sidecar's differential suite checks against unbound):
 * NOTIMP for an opcode other than QUERY and FORMERR for QDCOUNT other than 1,
 * echoing the question when readable. nsd has its own answers for these
 * (NOTIFY and UPDATE handling of a primary, a question-less query as a DNS
 * cookie probe, RFC 7873 §5.4), which belong to features the gateway does
 * not have.
 */
const NOT_A_QUERY = 'not one standard query';

function dumpZone(zone: string): string {
  return execFileSync(process.execPath, [join(ROOT, 'bin/tenant-dns.ts'), 'gateway', ...CLI_FLAGS, '--dump-zone', zone], { encoding: 'utf8' });
}

test('gateway: every answer equals nsd serving the zone files --dump-zone wrote', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-gateway-diff-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = FLAGS.zone.map((zone) => {
    const file = join(dir, `${zone}.zone`);
    const text = dumpZone(zone);
    writeFileSync(file, text);
    return { name: zone, file, text, serial: Number(/\sSOA\s+\S+\s+\S+\s+(\d+)\s/.exec(text)?.[1]) };
  });
  for (const f of files) assert.ok(f.serial > 0, f.text);
  assert.match(files[0]!.text, /^\*\.apps\.shop\.tenants\.example\.\s+300\s+IN\s+A\s+192\.0\.2\.10$/m);
  assert.doesNotMatch(files[0]!.text, /192\.0\.2\.66/, 'a refused claim is not in the zone');

  const nsd = await startNsd(files, { minimalResponses: true });
  t.after(() => nsd.stop());
  const gateway = await startGateway(readObjectFiles([OBJECTS]), {
    listen: [{ host: '127.0.0.1', port: 0, family: 4 }],
    zone: zoneSettings(FLAGS),
    tenantDomains: parseTenantDomains(FLAGS.tenantDomain),
    tenantLabel: 'tenant-dns.io/tenant',
    log: silentLogger,
    version: 'test',
    // The clock reads, zone after zone, the time each dump was made: both servers have the same serials.
    now: (() => {
      let i = 0;
      return () => files[i++ % files.length]!.serial * 1000;
    })(),
    processMetrics: false,
  });
  t.after(() => gateway.close());
  const sessions: Record<'udp' | 'tcp', Record<'gateway' | 'nsd', DnsSession>> = {
    udp: { gateway: await udpSession(gateway.addresses[0]!.port), nsd: await udpSession(nsd.port) },
    tcp: { gateway: streamSession({ port: gateway.addresses[0]!.port }), nsd: streamSession({ port: nsd.port }) },
  };
  t.after(() => Object.values(sessions).forEach((s) => Object.values(s).forEach((x) => x.close())));

  const unexpected: string[] = [];
  let compared = 0;
  const seen = { tc: 0, nxdomain: 0, nodata: 0, refused: 0, wildcard: 0 };
  for (const transport of ['udp', 'tcp'] as const) {
    for (const name of NAMES) {
      for (const type of TYPES) {
        for (const edns of EDNS) {
          for (const rd of transport === 'udp' ? [true, false] : [true]) {
            const wire = buildQuery({ name, type, rd, edns: edns === false ? false : { udpSize: edns } });
            const [g, n] = await Promise.all([sessions[transport].gateway.query(wire), sessions[transport].nsd.query(wire)]);
            const gv: ReplyView = readReply(g);
            const nv: ReplyView = readReply(n);
            compared++;
            if (gv.flags.TC) seen.tc++;
            if (gv.rcode === 3) seen.nxdomain++;
            if (gv.rcode === 5) seen.refused++;
            if (gv.rcode === 0 && gv.answer.length === 0) seen.nodata++;
            if (name.includes('apps') && gv.answer.length > 0) seen.wildcard++;
            const id = `${transport} ${name} ${type} ${edns === false ? 'noedns' : `edns ${edns}`}${rd ? '' : ' nord'}`;
            for (const d of viewDifferences(gv, nv, 0)) unexpected.push(`${id}: ${d.aspect}: gateway ${d.ours || '-'} [${flagText(gv)}] / nsd ${d.theirs || '-'} [${flagText(nv)}]`);
            if (transport === 'udp') assert.ok(g.length <= (edns === false ? 512 : Math.max(512, edns)), `${id}: ${g.length} bytes over the client's limit`);
          }
        }
      }
    }
  }
  // Messages that are not plain queries: EDNS version 1 (BADVERS), other opcodes (NOTIMP), no or two
  // questions (FORMERR), a class other than IN, a zone transfer; with and without EDNS, both transports.
  const specials: (QuerySpec & { accepted?: string })[] = [
    { name: 'www.shop.tenants.example', type: 'A', edns: { version: 1 } },
    { name: 'www.shop.tenants.example', type: 'A', opcode: OPCODES.UPDATE, accepted: NOT_A_QUERY },
    { name: 'www.shop.tenants.example', type: 'A', opcode: OPCODES.NOTIFY, edns: {}, accepted: NOT_A_QUERY },
    { name: 'www.shop.tenants.example', type: 'A', qdcount: 0, edns: {}, accepted: NOT_A_QUERY },
    { name: 'www.shop.tenants.example', type: 'A', qdcount: 2, accepted: NOT_A_QUERY },
    { name: 'www.shop.tenants.example', type: 'A', class: 'CH' },
    { name: 'tenants.example', type: 252, edns: {} },
  ];
  for (const transport of ['udp', 'tcp'] as const) {
    for (const spec of specials) {
      const wire = buildQuery(spec);
      const [g, n] = await Promise.all([sessions[transport].gateway.query(wire), sessions[transport].nsd.query(wire)]);
      compared++;
      const id = `${transport} special ${JSON.stringify(spec)}`;
      if (spec.accepted) {
        // Not compared with nsd (see NOT_A_QUERY); what the sidecar's reader answers is checked instead.
        const v = readReply(g);
        assert.ok([1, 4].includes(v.rcode) && !v.flags.AA && !v.flags.RA, `${id}: ${v.rcode} ${flagText(v)}`);
        continue;
      }
      for (const d of viewDifferences(readReply(g), readReply(n), 0)) unexpected.push(`${id}: ${d.aspect}: gateway ${d.ours || '-'} [${flagText(readReply(g))}] / nsd ${d.theirs || '-'} [${flagText(readReply(n))}]`);
    }
  }
  const firstPerAspect = [...new Map(unexpected.map((u) => [u.replace(/^(\S+) (\S+) (\S+) .*?: ([^:]+):.*$/, '$1 $2 $3 $4'), u])).values()];
  assert.deepEqual(firstPerAspect.slice(0, 60), [], `${unexpected.length} differences in ${compared} questions`);
  // The generated set did exercise each behaviour.
  for (const [what, n] of Object.entries(seen)) assert.ok(n > 0, `no question produced ${what}`);
});
