/**
 * ipFamily (sidecar/net/ip.ts) says what node:net's isIP says, on addresses, near misses, host names and
 * random strings of the characters addresses are made of.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { ipFamily } from '../../../sidecar/net/ip.ts';
import { fuzzSeed, pick, prng } from '../../helpers/fuzz.ts';

test('ipFamily agrees with node:net isIP on addresses, near misses and host names', () => {
  const cases = [
    '127.0.0.1', '0.0.0.0', '255.255.255.255', '256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1..2.3', '.1.2.3', '1.2.3.4.',
    ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4\n', '१.२.३.४', '1.2.3.4%eth0', '::', '::1', '::ffff:1.2.3.4', '2001:db8::10', 'fe80::1%eth0', 'fe80::1%',
    '2001:db8::1::2', ':::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '[::1]', '::1:53', 'dns.example', 'localhost', '', '12', '1e3', 'abc:def',
    'g::1', '::g', '10.in-addr.arpa', '198.51.100.10', '0x7f.0.0.1', '1.2.3.4:53',
  ];
  for (const s of cases) assert.equal(ipFamily(s), isIP(s), JSON.stringify(s));
});

test('ipFamily agrees with node:net isIP on random strings of address characters', () => {
  const alphabet = '0123456789abcdefABCDEFg.:%[] x';
  const rnd = prng(fuzzSeed(5));
  const rand = (n: number) => pick(rnd, n);
  let ips = 0;
  for (let i = 0; i < 20_000; i++) {
    let s = '';
    // Mostly near-addresses: dotted quads and colon groups with a character changed here and there.
    const shape = rand(3);
    if (shape === 0) s = Array.from({ length: 1 + rand(5) }, () => String(rand(300))).join('.');
    else if (shape === 1) s = Array.from({ length: 1 + rand(9) }, () => (rand(4) === 0 ? '' : rand(65536).toString(16))).join(':');
    for (let k = rand(4); k > 0 || s === ''; k--) {
      const at = rand(s.length + 1);
      s = s.slice(0, at) + alphabet[rand(alphabet.length)]! + s.slice(at + (rand(2) ? 1 : 0));
      if (s !== '' && k <= 0) break;
    }
    const want = isIP(s);
    if (want !== 0) ips++;
    assert.equal(ipFamily(s), want, JSON.stringify(s));
  }
  assert.ok(ips > 300, `only ${ips} of the random strings were addresses: the comparison says little`);
});
