/**
 * Regression (DNS correctness #7): synthesized answers. Policy and
 * split-zone answers to a query of another class than IN carried IN-class
 * records: the sidecar must answer in the query's class or refuse the
 * query. And a split zone's CNAME whose target has no data of the type must
 * carry the target zone's SOA, so the NODATA can be cached (RFC 2308 §2.2).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as packet from 'dns-packet';
import { defaultAnswer } from '../helpers/dns-server.ts';
import { buildQuery, readReply, type ReplyView } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';


const POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: synth }
spec:
  rules:
    - { name: no-ads, action: deny, names: ["ads.example"] }
    - { name: sink, action: deny, names: ["sink.example"], response: { type: sinkhole, addresses: ["0.0.0.0"] } }
  splitZones:
    - { name: static, names: ["db.internal.example"], addresses: ["10.1.2.3"] }
    - { name: link, names: ["*.kafka.example"], cname: vpce.aws.example }
    - { name: chain, names: ["*.chain.example"], cname: alias.aws.example }
`;

const SOA = { name: 'aws.example', type: 'SOA', class: 'IN', ttl: 300, data: { mname: 'ns.aws.example', rname: 'hostmaster.aws.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 } };

/** The upstream: vpce.aws.example has A only (NODATA + SOA for other types); alias.aws.example is a CNAME to it. */
function upstream(q: packet.Packet): packet.Packet {
  const question = q.questions![0]!;
  const reply = defaultAnswer(q);
  const name = question.name.toLowerCase();
  if (name === 'alias.aws.example') {
    const cname = { name: question.name, type: 'CNAME', class: 'IN', ttl: 300, data: 'vpce.aws.example' } as packet.Answer;
    return question.type === 'A'
      ? { ...reply, answers: [cname, { name: 'vpce.aws.example', type: 'A', class: 'IN', ttl: 300, data: '192.0.2.80' }] }
      : { ...reply, answers: [cname], authorities: [SOA as packet.Answer] };
  }
  if (question.type !== 'A') return { ...reply, answers: [], authorities: [SOA as packet.Answer] };
  return reply;
}

async function setup(t: test.TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-synth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  return sidecarBehind(t, upstream, { policy: join(dir, 'policy.yaml') });
}

/** A reply to a class-CH query is either a refusal or made of CH records only. */
function assertInQueryClass(r: ReplyView, what: string): void {
  if (r.rcode === 5 || r.rcode === 4) return; // REFUSED, NOTIMP
  for (const rr of [...r.answer, ...r.authority, ...r.additional]) assert.equal(rr.class, 'CH', `${what}: ${rr.key}`);
}

test('policy and split-zone answers to a CH-class query are in class CH or refused', async (t) => {
  const { udp } = await setup(t);
  for (const name of ['ads.example', 'sink.example', 'db.internal.example', 'x.kafka.example']) {
    const r = readReply(await udp.query(buildQuery({ name, type: 'A', class: 'CH', edns: {} })));
    assert.deepEqual(r.questions, [`${name} A CH`], `${name}: the question echoed`);
    assertInQueryClass(r, name);
  }
});

test('a split CNAME whose target has no data of the type carries the target zone\'s SOA', async (t) => {
  const { udp } = await setup(t);
  for (const name of ['x.kafka.example', 'y.chain.example']) {
    const r = readReply(await udp.query(buildQuery({ name, type: 'AAAA', edns: {} })));
    assert.equal(r.rcode, 0, `${name}: NODATA`);
    assert.ok(r.answer.length > 0 && r.answer.every((x) => x.type === 'CNAME'), `${name}: the CNAME chain only`);
    assert.deepEqual(r.authority.filter((x) => x.type === 'SOA').map((x) => x.owner), ['aws.example'], `${name}: the target zone's SOA (RFC 2308 §2.2)`);
  }
});
