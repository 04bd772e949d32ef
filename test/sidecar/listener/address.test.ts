/**
 * ADDR:PORT parsing and formatting, shared by listeners, config and upstreams.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, parseHostPort } from '../../../sidecar/listener/address.ts';

test('formatHostPort: IPv6 hosts in brackets', () => {
  assert.equal(formatHostPort({ host: '10.0.0.10', port: 53 }), '10.0.0.10:53');
  assert.equal(formatHostPort({ host: '::1', port: 853 }), '[::1]:853');
  assert.equal(formatHostPort({ host: 'dns.example', port: 443 }), 'dns.example:443');
});

test('parseHostPort: IP literals only, IPv6 in brackets, the flag named in errors', () => {
  assert.deepEqual(parseHostPort('[::1]:53', '--listen'), { host: '::1', port: 53, family: 6 });
  assert.deepEqual(parseHostPort('127.0.0.1:5353', '--listen'), { host: '127.0.0.1', port: 5353, family: 4 });
  assert.throws(() => parseHostPort('localhost:53', '--listen'), /--listen: "localhost" is not an IP address/);
  assert.throws(() => parseHostPort('127.0.0.1', '--cluster-dns'), /--cluster-dns: .* is not ADDR:PORT/);
  assert.throws(() => parseHostPort('127.0.0.1:70000', '--listen'), /port 70000 is out of range/);
});
