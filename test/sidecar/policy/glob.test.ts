import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LabelGlob } from '../../../sidecar/policy/glob.ts';
import { fuzzSeed, pick, prng } from '../../helpers/fuzz.ts';
import { PATHOLOGICAL_PATTERNS, referenceGlobMatch } from '../../helpers/glob-reference.ts';

test('label glob: * matches any characters within the label, none included', () => {
  const cases: [string, string, boolean][] = [
    ['ads-*', 'ads-1', true],
    ['ads-*', 'ads-', true],
    ['ads-*', 'ads', false],
    ['ads-*', 'xads-1', false],
    ['*-prod', 'shop-prod', true],
    ['*-prod', '-prod', true],
    ['*-prod', 'shop-prod1', false],
    ['c2-*-x', 'c2--x', true],
    ['c2-*-x', 'c2-x', false],
    ['ab*ba', 'aba', false], // prefix and suffix may not overlap
    ['ab*ba', 'abba', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false],
    ['a*b*c', 'axxbyybc', true],
    ['*aab*', 'aaab', true], // the segment's second try starts inside the first (KMP failure link)
    ['*abab*', 'abaabab', true],
    ['*abab*', 'ababa', true],
    ['*abab*', 'abaab', false],
    ['x*abab*y', 'xabababy', true],
    ['*', '', true],
    ['*', 'anything', true],
    ['a**b', 'ab', true],
    ['plain', 'plain', true],
    ['plain', 'plainer', false],
  ];
  for (const [pattern, label, want] of cases) {
    assert.equal(new LabelGlob(pattern).matches(label), want, `${pattern} on ${label}`);
    assert.equal(referenceGlobMatch(pattern, label), want, `reference: ${pattern} on ${label}`);
  }
});

test('label glob: agrees with the reference matcher and the regular expression it replaces on generated cases', () => {
  const seed = fuzzSeed(0x61d5);
  const rnd = prng(seed);
  // A small alphabet, so segments recur, overlap themselves and match often.
  const word = (chars: string, max: number) => Array.from({ length: pick(rnd, max + 1) }, () => chars[pick(rnd, chars.length)]!).join('');
  const outcomes = { true: 0, false: 0 };
  for (let n = 0; n < 20_000; n++) {
    const pattern = word('ab-*', 10);
    const label = pick(rnd, 4) === 0 ? pattern.replaceAll('*', () => word('ab-', 3)) : word('ab-', 14);
    const got = new LabelGlob(pattern).matches(label);
    const want = referenceGlobMatch(pattern, label);
    // The replaced compilation (before issue 18): `*` as `.*`, which matches none or more characters too.
    // Small sizes: backtracking costs nothing here. The alphabet has no character a RegExp would need escaped.
    const regex = new RegExp('^' + pattern.split('*').join('.*') + '$').test(label);
    assert.equal(want, regex, `reference and regex disagree on ${pattern} / ${label} (seed ${seed})`);
    assert.equal(got, want, `${pattern} on "${label}" (seed ${seed})`);
    outcomes[String(got) as 'true' | 'false']++;
  }
  // Both answers come up often: the comparison is not all one way.
  assert.ok(outcomes.true > 2_000 && outcomes.false > 2_000, JSON.stringify(outcomes));
});

test('label glob: the patterns that make a backtracking matcher take seconds answer as the reference does', () => {
  for (const pattern of PATHOLOGICAL_PATTERNS) {
    const glob = new LabelGlob(pattern);
    const tail = pattern.at(-1)!;
    for (let length = 1; length <= 63; length++) {
      for (const label of ['a'.repeat(length), 'a'.repeat(length - 1) + tail, 'a'.repeat(length - 1) + 'x']) {
        assert.equal(glob.matches(label), referenceGlobMatch(pattern, label), `${pattern} on ${label}`);
      }
    }
  }
});
