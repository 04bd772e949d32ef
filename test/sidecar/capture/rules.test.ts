/**
 * The capture rule builder (sidecar/capture/rules.ts) without nft: what the
 * script says, the flag parsing, and the check of an `nft -j` listing (built
 * here in the shape nft 1.0 prints). The rules in a kernel: test/pod/capture.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SidecarError } from '../../../sidecar/errors.ts';
import {
  buildCaptureRules,
  CAPTURE_TABLE,
  checkListing,
  redirectTargets,
  sidecarUid,
  type CaptureOptions,
  type CaptureRuleset,
} from '../../../sidecar/capture/rules.ts';

const DEFAULTS: CaptureOptions = { sidecarUid: 65532, redirect: redirectTargets([]) };

/** The statements of one chain, comments cut off. */
function statements(rules: CaptureRuleset, chain: string): string[] {
  const c = rules.chains.find((x) => x.name === chain);
  assert.ok(c, `chain ${chain}`);
  return c.rules.map((r) => r.replace(/ comment ".*"$/, ''));
}

/** An `nft -j list table` listing of `rules` as nft prints it (handles, metainfo, the table entry). */
function listingOf(rules: CaptureRuleset): { nftables: Record<string, unknown>[] } {
  const { family, name: table } = CAPTURE_TABLE;
  let handle = 1;
  return {
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { table: { family, name: table, handle: handle++ } },
      ...rules.chains.map((c) => ({ chain: { family, table, name: c.name, handle: handle++, type: c.type, hook: c.hook, prio: c.priority, policy: 'accept' } })),
      ...rules.chains.flatMap((c) => c.comments.map((comment) => ({ rule: { family, table, chain: c.name, handle: handle++, comment, expr: [] } }))),
    ],
  };
}

test('capture rules: UDP and TCP to port 53 from other uids go to the sidecar, per family; the sidecar uid returns first', () => {
  assert.deepEqual(statements(buildCaptureRules(DEFAULTS), 'nat_output'), [
    'meta skuid 65532 return',
    'meta nfproto ipv4 udp dport 53 dnat ip to 127.0.0.1:53',
    'meta nfproto ipv4 tcp dport 53 dnat ip to 127.0.0.1:53',
    'meta nfproto ipv6 udp dport 53 dnat ip6 to [::1]:53',
    'meta nfproto ipv6 tcp dport 53 dnat ip6 to [::1]:53',
  ]);
});

test('capture rules: new TCP connections to port 853 from other uids are reset; the sidecar keeps its DoT upstreams', () => {
  assert.deepEqual(statements(buildCaptureRules(DEFAULTS), 'filter_output'), [
    'meta skuid 65532 return',
    'tcp dport 853 ct state new reject with tcp reset',
  ]);
});

test('capture rules: conntrack zones keep the sidecar upstream flows (1) apart from the app flows (2), before conntrack', () => {
  const rules = buildCaptureRules(DEFAULTS);
  assert.deepEqual(statements(rules, 'raw_output'), [
    'meta skuid 65532 udp dport 53 ct zone set 1',
    'meta skuid 65532 udp sport 53 ct zone set 2',
    'meta skuid != 65532 udp dport 53 ct zone set 2',
  ]);
  assert.deepEqual(statements(rules, 'raw_prerouting'), ['udp sport 53 ct zone set 1']);
  // Zones only act before conntrack has seen the packet: priority raw (-300), ahead of conntrack (-200).
  for (const c of rules.chains.filter((x) => x.name.startsWith('raw_'))) assert.equal(c.priority, -300);
  assert.equal(rules.chains.find((c) => c.name === 'nat_output')?.priority, -100);
});

test('capture rules: the script replaces its own table in one transaction, so running it twice leaves one table', () => {
  const lines = buildCaptureRules(DEFAULTS).script.split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(lines.slice(0, 3), ['table inet tenant-dns-capture', 'delete table inet tenant-dns-capture', 'table inet tenant-dns-capture {']);
  assert.equal(lines.filter((l) => l.startsWith('table ')).length, 2, 'one create-if-missing, one definition');
  assert.ok(!/\b(flush ruleset|delete table (?!inet tenant-dns-capture))/.test(lines.join('\n')), 'nothing else in the namespace is touched');
});

test('capture rules: every rule carries the digest of the options; the same options give the same text', () => {
  const a = buildCaptureRules(DEFAULTS);
  assert.equal(a.script, buildCaptureRules({ sidecarUid: 65532, redirect: redirectTargets(['127.0.0.1:53']) }).script);
  assert.match(a.digest, /^[0-9a-f]{12}$/);
  for (const c of a.chains) for (const r of c.rules) assert.ok(r.includes(`comment "tenant-dns ${a.digest}: `), r);
  const other = buildCaptureRules({ sidecarUid: 1337, redirect: redirectTargets([]) });
  assert.notEqual(other.digest, a.digest);
  assert.ok(statements(other, 'nat_output').includes('meta skuid 1337 return'));
});

test('capture rules: a redirect port other than 53 is where the sidecar answers from (zone 2)', () => {
  const rules = buildCaptureRules({ sidecarUid: 65532, redirect: redirectTargets(['127.0.0.1:5353', '[::1]:5354']) });
  assert.ok(statements(rules, 'raw_output').includes('meta skuid 65532 udp sport { 5353, 5354 } ct zone set 2'));
  assert.ok(statements(rules, 'nat_output').includes('meta nfproto ipv6 tcp dport 53 dnat ip6 to [::1]:5354'));
});

test('capture --redirect-to: defaults per family; one given sets the other family to its loopback on the same port', () => {
  const show = (t: ReturnType<typeof redirectTargets>) => `${t.ipv4.host}:${t.ipv4.port} [${t.ipv6.host}]:${t.ipv6.port}`;
  assert.equal(show(redirectTargets([])), '127.0.0.1:53 [::1]:53');
  assert.equal(show(redirectTargets(['127.0.0.2:5353'])), '127.0.0.2:5353 [::1]:5353');
  assert.equal(show(redirectTargets(['[::1]:54'])), '127.0.0.1:54 [::1]:54');
  assert.equal(show(redirectTargets(['[fd00::1]:53', '10.0.0.1:53'])), '10.0.0.1:53 [fd00::1]:53');
});

test('capture --redirect-to and --sidecar-uid: bad values fail with CONFIG_INVALID naming the flag', () => {
  const rejects = (fn: () => unknown, re: RegExp) =>
    assert.throws(fn, (err: unknown) => err instanceof SidecarError && err.code === 'CONFIG_INVALID' && re.test(err.message));
  rejects(() => redirectTargets(['localhost:53']), /--redirect-to: "localhost" is not an IP address/);
  rejects(() => redirectTargets(['127.0.0.1']), /--redirect-to/);
  rejects(() => redirectTargets(['127.0.0.1:0']), /port 0/);
  rejects(() => redirectTargets(['127.0.0.1:53', '127.0.0.2:53']), /two IPv4 targets/);
  rejects(() => sidecarUid('-1'), /--sidecar-uid/);
  rejects(() => sidecarUid('root'), /--sidecar-uid/);
  rejects(() => sidecarUid('4294967295'), /--sidecar-uid/);
  assert.equal(sidecarUid('0'), 0);
  assert.equal(sidecarUid(' 65532 '), 65532);
});

test('capture check: a listing of exactly these rules is in place', () => {
  const rules = buildCaptureRules(DEFAULTS);
  assert.deepEqual(checkListing(listingOf(rules), rules), []);
});

test('capture check: a missing table, a flushed chain, a changed hook and a foreign chain are reported', () => {
  const rules = buildCaptureRules(DEFAULTS);
  assert.deepEqual(checkListing({ nftables: [] }, rules), rules.chains.map((c) => `chain ${c.name} is missing`));
  assert.deepEqual(checkListing(null, rules).length, rules.chains.length);

  const flushed = listingOf(rules);
  flushed.nftables = flushed.nftables.filter((e) => (e.rule as { chain?: string } | undefined)?.chain !== 'nat_output');
  const problems = checkListing(flushed, rules);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^chain nat_output holds \[\], expected \[sidecar uid 65532 not captured; ipv4 udp\/53 to 127\.0\.0\.1:53/);

  const moved = listingOf(rules);
  for (const e of moved.nftables) if ((e.chain as { name?: string } | undefined)?.name === 'filter_output') (e.chain as Record<string, unknown>).prio = 10;
  assert.match(checkListing(moved, rules).join('\n'), /chain filter_output is type filter hook output priority 10, expected type filter hook output priority 0/);

  const extra = listingOf(rules);
  extra.nftables.push({ chain: { family: 'inet', table: CAPTURE_TABLE.name, name: 'sneaky', type: 'filter', hook: 'output', prio: -400 } });
  assert.deepEqual(checkListing(extra, rules), ['unexpected chains: sneaky']);
});

test('capture check: rules installed for other options (another sidecar uid) are not in place', () => {
  const installed = buildCaptureRules({ sidecarUid: 1000, redirect: redirectTargets([]) });
  const wanted = buildCaptureRules(DEFAULTS);
  const problems = checkListing(listingOf(installed), wanted);
  assert.equal(problems[0], `rules installed for other options (digest ${installed.digest}; these options give ${wanted.digest})`);
  assert.ok(problems.some((p) => p.startsWith('chain nat_output holds [sidecar uid 1000 not captured')));
});

test('capture check: other tables in the namespace (a CNI, a service mesh) are ignored', () => {
  const rules = buildCaptureRules(DEFAULTS);
  const listing = listingOf(rules);
  listing.nftables.push({ chain: { family: 'inet', table: 'istio-proxy-nat', name: 'output', type: 'nat', hook: 'output', prio: -100 } });
  listing.nftables.push({ rule: { family: 'ip', table: CAPTURE_TABLE.name, chain: 'nat_output', comment: 'same name, other family' } });
  assert.deepEqual(checkListing(listing, rules), []);
});
