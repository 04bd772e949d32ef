import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { chainNames } from '../../../sidecar/dns/chain.ts';
import { scanReply } from '../../../sidecar/dns/records.ts';

function names(answers: packet.Answer[], qname = 'www.example.com'): readonly string[] | undefined {
  const wire = packet.encode({ id: 1, type: 'response', flags: 0, questions: [{ name: qname, type: 'A', class: 'IN' }], answers });
  const scan = scanReply(wire);
  return chainNames(wire, scan.questionEnd, scan.answerCount, qname.toLowerCase());
}

test('chainNames: records owned by the question name no other name', () => {
  assert.equal(names([{ name: 'www.example.com', type: 'A', class: 'IN', ttl: 1, data: '192.0.2.1' }, { name: 'www.example.com', type: 'A', class: 'IN', ttl: 1, data: '192.0.2.2' }]), undefined);
  assert.equal(names([]), undefined);
});

test('chainNames: owners and CNAME and DNAME targets, lower case, once each, compressed or not', () => {
  const got = names(
    [
      { name: 'WWW.example.com', type: 'CNAME', class: 'IN', ttl: 1, data: 'Edge.CDN.example.net' },
      { name: 'edge.cdn.example.net', type: 'CNAME', class: 'IN', ttl: 1, data: 'a.b.example.org' },
      { name: 'example.org', type: 'DNAME', class: 'IN', ttl: 1, data: 'other.example' },
      { name: 'a.b.example.org', type: 'A', class: 'IN', ttl: 1, data: '192.0.2.1' },
    ],
    'WWW.example.com',
  );
  assert.deepEqual(got, ['edge.cdn.example.net', 'a.b.example.org', 'example.org', 'other.example']);
});
