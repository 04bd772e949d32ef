/**
 * Regression (issue 18, item 3): an in-label glob was compiled to a
 * backtracking regular expression (`a*a*…*b` → /^a.*a.*…b$/). Such a glob
 * passed `policy validate`, and one query with a 45-character label of `a`s
 * blocked the sidecar's event loop for 1.9 s (48 characters: 3.9 s; 63, the
 * longest label, far longer). A platform glob like that can be set off by any
 * pod. In-label globs are now matched without regular expressions, in time
 * linear in the label and the pattern (sidecar/policy/glob.ts).
 *
 * The sidecar runs as a child process, so a blocked event loop there cannot
 * hold up this test's timers: with the old matcher the queries below get no
 * answer within their 5 s test timeout; with the new one they take
 * milliseconds. What they are answered must be what the reference matcher
 * (test/helpers/glob-reference.ts) says.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compilePolicy } from '../../sidecar/policy/compile.ts';
import { evaluate } from '../../sidecar/policy/evaluate.ts';
import { parsePolicy } from '../../sidecar/policy/manager.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { udpSession } from '../helpers/dns-sessions.ts';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { PATHOLOGICAL_PATTERNS, referenceGlobMatch } from '../helpers/glob-reference.ts';
import { spawnServing } from '../helpers/sidecar.ts';

const ZONE = 'bad.example';

/** A platform policy denying every pathological pattern in ZONE, with `extra` globs beside them. */
function platformPolicyText(extra: readonly string[] = []): string {
  const names = [...PATHOLOGICAL_PATTERNS.map((p) => `${p}.${ZONE}`), ...extra].map((g) => `"${g}"`).join(', ');
  return `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: platform }\nspec:\n  rules:\n    - { name: pathological, action: deny, names: [${names}] }\n`;
}

test('in-label globs: compiling and matching them builds no regular expression', (t) => {
  // Parsed first: the YAML and schema libraries may build regular expressions of their own.
  const policy = parsePolicy(platformPolicyText(['ads-*.example.org', '*.c2-*-x.example.net', '*.s3.eu-*.amazonaws.com']), 'platform.yaml');
  const built: string[] = [];
  const original = globalThis.RegExp;
  const spy = new Proxy(original, {
    construct(target, args: [string | RegExp, string?]) {
      built.push(String(args[0]));
      return Reflect.construct(target, args) as object;
    },
    apply(target, self, args: [string | RegExp, string?]) {
      built.push(String(args[0]));
      return Reflect.apply(target, self, args) as unknown;
    },
  });
  globalThis.RegExp = spy;
  t.after(() => {
    globalThis.RegExp = original;
  });
  const compiled = compilePolicy({ platform: policy });
  const decisions = ['ads-1.example.org', 'eu.c2-9-x.example.net', 'b.s3.eu-west-1.amazonaws.com', 'a'.repeat(20) + 'b.' + ZONE].map(
    (n) => evaluate(compiled, n).decision.action,
  );
  globalThis.RegExp = original;
  assert.deepEqual(decisions, ['deny', 'deny', 'deny', 'deny']);
  assert.deepEqual(built, [], 'no RegExp built for a glob');
});

test('in-label globs: a sidecar answers names that make a backtracking matcher take seconds as the reference says, at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-globs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'platform.yaml'), platformPolicyText());
  const upstream = await startDnsServer();
  t.after(() => upstream.close());
  const sc = await spawnServing(['sidecar', '--upstream', upstream.url('udp'), '--platform-policy', join(dir, 'platform.yaml')]);
  t.after(() => sc.kill());
  const udp = await udpSession(sc.port);
  t.after(() => udp.close());

  // Labels of `a`s up to the longest a label can be, ending as no pattern, or as one of them, ends.
  const labels = [45, 48, 63].flatMap((n) => ['a'.repeat(n), 'a'.repeat(n - 1) + 'b', 'a'.repeat(n - 1) + 'c']);
  for (const label of labels) {
    const denied = PATHOLOGICAL_PATTERNS.some((p) => referenceGlobMatch(p, label));
    await t.test(`${label.length} characters ending in ${label.at(-1)}: ${denied ? 'denied' : 'forwarded'}`, { timeout: 5000 }, async () => {
      const before = upstream.counts.total;
      const r = readReply(await udp.query(buildQuery({ name: `${label}.${ZONE}`, type: 'A', edns: {} }), 4500));
      if (denied) {
        assert.equal(r.rcode, 3, 'NXDOMAIN');
        assert.equal(r.opt?.ede[0]?.code, 15);
        assert.match(r.opt!.ede[0]!.text, /platform:pathological/);
        assert.equal(upstream.counts.total, before, 'a denied name never reaches the upstream');
      } else {
        assert.equal(r.rcode, 0);
        assert.deepEqual(r.answer.map((a) => a.data), ['192.0.2.1']);
        assert.equal(upstream.counts.total, before + 1);
      }
    });
  }
});
