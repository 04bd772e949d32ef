/**
 * Micro-benchmark of the classification of a question (DESIGN §4, issue 7;
 * route/classify.ts): the policy's tries (platform, tenant, split, forward)
 * and the cluster zones, over a policy compiled by `compilePolicy` with 10,
 * 1,000 and 100,000 rules. The policy is a reversed-label trie, so a lookup
 * should cost the name's labels, not the rule count: the ns/op should stay
 * flat across the three sizes.
 *
 * Run:    node test/bench/policy-trie.bench.ts        (about 20 s; no arguments)
 * Rules:  half exact names (`host<i>.corp<i%97>.net`, allow), half subtree
 *         globs (`*.t<i>.zone<i%89>.com`, deny), and a platform policy of 10
 *         subtree rules in front.
 * Names:  query names of 2 to 6 labels, a third matching an exact rule,
 *         a third below a subtree glob, a third matching nothing (the default);
 *         each lookup gets a fresh name string. Three cases:
 *         - memo: 1,000 recurring names, which the Router's memo answers
 *           (ROUTE_MEMO_NAMES: a pod's usual traffic);
 *         - walk: the same 1,000 names through `classify`, which walks the
 *           tries every time: their own cost, and the one that must stay
 *           flat in the rule count;
 *         - new names: 20,000 names through the Router, each looked up again
 *           only after the memo has been emptied several times (a stream of
 *           names never asked before: the walk plus the memo's upkeep; with
 *           100,000 rules these names spread over most of the trie, which
 *           then no longer fits the CPU's caches).
 * Output: ns per lookup for each size and case, the walk's ratio to the
 *         10-rule case; then the in-label pattern case, which is the one that
 *         is NOT flat: the patterns of one parent zone are tried one by one;
 *         then one in-label pattern and the label it is matched against:
 *         an ordinary one, and the pathological `a*a*a*a*a*a*a*a*a*b` against
 *         labels of 45 and 63 characters, `a`s then a number, which a
 *         backtracking matcher took seconds on (issue 18), and the worst
 *         case of the linear matcher (prefix and suffix match, a middle
 *         segment is searched to the label's end and not found). Compare
 *         their ns/lookup with the ordinary rows: they should cost about the
 *         same.
 */
import { compilePolicy, type CompiledPolicy } from '../../sidecar/policy/compile.ts';
import { classify, ROUTE_MEMO_NAMES, Router } from '../../sidecar/route/classify.ts';
import type { DNSPolicy, PolicyRule } from '../../sidecar/config/policy-schema.ts';

function policy(name: string, rules: PolicyRule[]): DNSPolicy {
  return {
    apiVersion: 'tenant-dns.io/v1alpha1',
    kind: 'DNSPolicy',
    metadata: { name },
    spec: { defaultAction: 'allow', rules, splitZones: [], forwardZones: [] },
  } as unknown as DNSPolicy;
}

/** `count` rules, one glob each, in the mix the header describes. */
function tenantRules(count: number): PolicyRule[] {
  const rules: PolicyRule[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) rules.push({ name: `exact-${i}`, action: 'allow', names: [`host${i}.corp${i % 97}.net`] } as PolicyRule);
    else rules.push({ name: `sub-${i}`, action: 'deny', names: [`*.t${i}.zone${i % 89}.com`] } as PolicyRule);
  }
  return rules;
}

const PLATFORM = policy(
  'platform',
  Array.from({ length: 10 }, (_, i) => ({ name: `p${i}`, action: 'deny', names: [`*.blocked${i}.example`] }) as PolicyRule),
);

/** Names in the set that walks the tries: enough that none is still remembered when it comes again. */
const WALK_NAMES = 20_000;
if (WALK_NAMES < 4 * ROUTE_MEMO_NAMES) throw new Error('WALK_NAMES must outnumber the memo several times over');

/** `n` query names for a policy of `count` rules: matching ones drawn from its own rules. */
function queryNames(count: number, n: number): string[] {
  const names: string[] = [];
  for (let k = 0; k < n; k++) {
    const i = Math.floor((k * 7919) % count);
    if (k % 3 === 0) {
      const j = i & ~1; // an exact rule
      names.push(`host${j}.corp${j % 97}.net`);
    } else if (k % 3 === 1) {
      const j = i | 1; // a subtree rule (count is even)
      names.push(`a${k}.b.t${j}.zone${j % 89}.com`);
    } else {
      names.push(k % 2 ? `www${k}.example.com` : `api.svc${k}.eu-west-1.amazonaws.com`);
    }
  }
  return names;
}

let sink = 0;

const ZONES = ['cluster.local', 'in-addr.arpa', 'ip6.arpa'];

/** A classifier over `compiled`: the Router (memo) or `classify` itself (walk). */
type Classifier = (name: string) => { readonly evaluation: { readonly decision: { readonly action: string } } };
const viaRouter = (compiled: CompiledPolicy): Classifier => {
  const router = new Router({ current: compiled }, ZONES);
  return (name) => router.route(name);
};
const walking = (compiled: CompiledPolicy): Classifier => (name) => classify(compiled, ZONES, name);

/**
 * ns per lookup: `lookup` on a fresh copy of each name (so its hash is not
 * cached). Warm-up: 200,000 lookups or 1 s, whichever ends first; then `ms`
 * of lookups. Lookups run in chunks that start at one and double up to 20
 * passes over `names`, so a lookup that takes seconds (the backtracking
 * matcher in-label globs had before issue 18) ends a phase after one chunk.
 */
function measure(lookup: Classifier, names: readonly string[], ms: number): number {
  // Fresh strings per lookup: concatenation with a non-constant empty string defeats interning.
  const empty = String(Date.now()).slice(0, 0);
  let next = 0;
  const run = (n: number): void => {
    for (let i = 0; i < n; i++, next++) {
      const name = names[next % names.length]! + empty;
      sink ^= lookup(name).evaluation.decision.action.length;
    }
  };
  const timed = (budgetMs: number, maxOps: number): number => {
    let chunk = 1;
    let ops = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(budgetMs) * 1_000_000n;
    let now = start;
    while (now < end && ops < maxOps) {
      run(chunk);
      ops += chunk;
      chunk = Math.min(chunk * 2, names.length * 20);
      now = process.hrtime.bigint();
    }
    return Number(now - start) / ops;
  };
  timed(1000, 200_000);
  return timed(ms, Infinity);
}

const SIZES = [10, 1_000, 100_000];
console.log(`classification (route/classify.ts: platform and tenant rules, split, cluster and forward zones), node ${process.version}`);
const results: number[] = [];
for (const size of SIZES) {
  const t0 = performance.now();
  const input = { tenant: policy('tenant', tenantRules(size)), platform: PLATFORM };
  const compiled = compilePolicy(input);
  const compileMs = performance.now() - t0;
  const recurring = queryNames(size, 1000);
  const fresh = queryNames(size, WALK_NAMES);
  // Three interleaved repetitions of each case; the medians are reported.
  const memoRuns: number[] = [];
  const walkRuns: number[] = [];
  const freshRuns: number[] = [];
  for (let r = 0; r < 3; r++) {
    memoRuns.push(measure(viaRouter(compiled), recurring, 300));
    walkRuns.push(measure(walking(compiled), recurring, 500));
    freshRuns.push(measure(viaRouter(compiled), fresh, 300));
  }
  const median = (runs: number[]) => runs.sort((a, b) => a - b)[1]!;
  const ns = median(walkRuns);
  results.push(ns);
  const matched = recurring.filter((n) => classify(compiled, ZONES, n).evaluation.ruleName !== '').length;
  console.log(
    `${String(size).padStart(7)} rules  memo ${median(memoRuns).toFixed(0).padStart(4)} ns  ` +
      `walk ${ns.toFixed(0).padStart(5)} ns (${(ns / results[0]!).toFixed(2)}× the 10-rule case)  new names ${median(freshRuns).toFixed(0).padStart(5)} ns` +
      `   (per lookup; compile ${compileMs.toFixed(0)} ms, ${matched}/1000 names match a rule, walk runs ${walkRuns.map((r) => r.toFixed(0)).join('/')} ns)`,
  );
}
const flat = results[results.length - 1]! / results[0]!;
console.log(`flat in the rule count: ${flat <= 1.5 ? 'yes' : 'NO'} (the walk: 100,000 rules cost ${flat.toFixed(2)}× 10 rules)`);

// In-label patterns under one parent are tried one by one (NameTrie.walk: node.patterns); this is the exception.
for (const patterns of [10, 1_000]) {
  const rules = Array.from({ length: patterns }, (_, i) => ({ name: `ads-${i}`, action: 'deny', names: [`ads-${i}-*.example.org`] }) as PolicyRule);
  const compiled = compilePolicy({ tenant: policy('tenant', rules) });
  const names = Array.from({ length: 1000 }, (_, k) => `x${k}.example.org`);
  const ns = measure(walking(compiled), names, 500);
  console.log(`${String(patterns).padStart(7)} in-label patterns under one zone  ${ns.toFixed(0).padStart(6)} ns/lookup (walk)`);
}
// One in-label pattern and 1,000 names, each row against its first (issue 18: glob.ts matches in linear time).
/** A label of `length` characters: `a`s, then the number k (so it never ends in b). */
const digits = (k: number, length: number): string => 'a'.repeat(length - String(k).length) + String(k);
const labelRows: { what: string; glob: string; label: (k: number) => string }[] = [
  { what: 'ordinary: ads-*, labels ads-<k> (match)', glob: 'ads-*', label: (k) => `ads-${k}` },
  { what: 'ordinary: ads-*, 63-character labels (match)', glob: 'ads-*', label: (k) => `ads-${k}-`.padEnd(63, 'x') },
  { what: 'pathological: a*a*a*a*a*a*a*a*a*b, 45 chars, a…a<k> (no match)', glob: 'a*a*a*a*a*a*a*a*a*b', label: (k) => digits(k, 45) },
  { what: 'pathological: a*a*a*a*a*a*a*a*a*b, 63 chars, a…a<k> (no match)', glob: 'a*a*a*a*a*a*a*a*a*b', label: (k) => digits(k, 63) },
  // The linear matcher's own worst case: prefix and suffix match, the last middle segment is searched to the end.
  { what: 'worst case: a*a*a*a*a*a*a*a*a*ab*b, 63 chars, a…a<k>b (no match)', glob: 'a*a*a*a*a*a*a*a*a*ab*b', label: (k) => digits(k, 62) + 'b' },
];
let ordinary = 0;
for (const row of labelRows) {
  const compiled = compilePolicy({ tenant: policy('tenant', [{ name: 'in-label', action: 'deny', names: [`${row.glob}.example.org`] } as PolicyRule]) });
  const names = Array.from({ length: 1000 }, (_, k) => `${row.label(k)}.example.org`);
  const ns = measure(walking(compiled), names, 500);
  ordinary ||= ns;
  console.log(`${row.what.padEnd(66)} ${ns.toFixed(0).padStart(12)} ns/lookup (walk, ${(ns / ordinary).toFixed(2)}× the first)`);
}
if (sink === -1) console.log('');
