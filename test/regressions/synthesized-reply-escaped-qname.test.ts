/**
 * Regression (issue 6, found by test/reliability/fuzz-wire.test.ts with a
 * policy): a synthesized reply (a deny's NXDOMAIN + SOA, a sinkhole, a split
 * zone's addresses or CNAME) to a query whose name held a byte that
 * presentation format escapes — a dot or backslash inside a label, a space,
 * a control or non-ASCII byte — was malformed. dns-packet wrote the escaped
 * text (`a\000b`) byte for byte as the owner name and the question, and the
 * client's question bytes were then copied over a region of another length.
 * Now the question is the client's bytes and records owned by the query name
 * point at it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { synthesize } from '../../sidecar/dns/reply.ts';
import { readQuery } from '../../sidecar/dns/wire.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { checkMessage, startRawUpstream, udpAsk } from '../reliability/lib.ts';

/** A query for the name made of `labels` (raw bytes), type A. */
function query(labels: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) parts.push(Buffer.from([l.length]), l);
  parts.push(Buffer.from([0]));
  const name = Buffer.concat(parts);
  const out = Buffer.alloc(12 + name.length + 4);
  out.writeUInt16BE(0x1234, 0);
  out.writeUInt16BE(0x0100, 2);
  out.writeUInt16BE(1, 4);
  name.copy(out, 12);
  out.writeUInt16BE(1, 12 + name.length);
  out.writeUInt16BE(1, 14 + name.length);
  return out;
}

const WEIRD = [Buffer.from([0x61, 0x00, 0x62]), Buffer.from('a.b'), Buffer.from('a\\b'), Buffer.from('A B'), Buffer.alloc(63, 0xff), Buffer.from('ünï')];

test('synthesize: a query name with escaped bytes gives a well-formed reply whose records are owned by the question name', () => {
  for (const weird of WEIRD) {
    const wire = query([weird, Buffer.from('example')]);
    const q = readQuery(wire).query!;
    const body = synthesize(wire, q, {
      rcode: 0,
      answers: [{ name: q.qname, type: 'A', class: 'IN', ttl: 60, data: '10.0.0.1' }],
      authorities: [{ name: 'example', type: 'SOA', class: 'IN', ttl: 60, data: { mname: 'ns.x', rname: 'h.x', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } } as packet.Answer],
    });
    const layout = checkMessage(body);
    assert.equal(typeof layout, 'object', `${JSON.stringify(weird.toString('latin1'))}: ${String(layout)}`);
    assert.deepEqual(body.subarray(12, q.questionEnd), wire.subarray(12, q.questionEnd), 'the question is the client\'s bytes');
    assert.equal(body.readUInt16BE(q.questionEnd), 0xc00c, 'the answer is owned by the question name');
    assert.equal(body.readUInt16BE(0), 0x1234);
  }
});

test('sidecar: deny, sinkhole and split-zone answers to such names are well-formed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-regression-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: escaped }
spec:
  rules:
    - { name: no-com, action: deny, names: ["*.com"] }
    - { name: sink, action: deny, names: ["*.sink.example"], response: { type: sinkhole, addresses: ["0.0.0.0"] } }
  splitZones:
    - { name: static, names: ["*.split.example"], addresses: ["10.0.0.1"] }
    - { name: cname, names: ["*.cn.example"], cname: target.example }
`);
  const upstream = await startRawUpstream();
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`], policy });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const zone of [['com'], ['sink', 'example'], ['split', 'example'], ['cn', 'example']]) {
    for (const weird of WEIRD) {
      const r = await udpAsk(sc.port, query([weird, ...zone.map((z) => Buffer.from(z))]), 2000);
      assert.ok(r, 'answered');
      const layout = checkMessage(r);
      assert.equal(typeof layout, 'object', `${zone.join('.')} ${JSON.stringify(weird.toString('latin1'))}: ${String(layout)}`);
      assert.equal(r[3]! & 0x0f, zone[0] === 'com' ? 3 : 0);
    }
  }
});
