/**
 * In-label globs (`ads-*`, `c2-*-x`, `a*b*c`) matched without regular
 * expressions, in time linear in the label and the pattern (issue 18: a
 * backtracking RegExp for `a*a*a*a*a*a*a*a*a*b` blocked the event loop for
 * 1.9 s on one 45-character label).
 *
 * A pattern splits at its stars into literal segments `s0 * s1 * … * sk`. A
 * label matches when it starts with `s0`, ends with `sk` (the two not
 * overlapping), and `s1 … s(k-1)` occur in that order, without overlapping,
 * between them. Taking each middle segment at its leftmost occurrence after
 * the previous one is enough: a leftmost occurrence ends no later than any
 * other, so it leaves the most room for the segments after it, and any match
 * can be moved onto those placements.
 *
 * Each middle segment is searched with Knuth–Morris–Pratt from where the
 * previous one ended, so the searches read disjoint stretches of the label
 * and together compare at most 2 × label characters; the prefix and suffix
 * checks compare at most their own length. One match therefore costs at
 * most 2 × label + pattern character comparisons, O(label + pattern),
 * whatever the number of stars; the failure tables are built once per
 * pattern, in O(pattern). Labels are at most 63 bytes on the wire (252
 * characters of presentation text when every byte is escaped) and patterns
 * at most 63 characters (config/policy-schema.ts, globProblem), so one match
 * compares at most 567 characters.
 */

/** The KMP failure table of `s`: entry i is the length of the longest proper border of s[0..i]. */
function failureTable(s: string): Int32Array {
  const table = new Int32Array(s.length);
  let k = 0;
  for (let i = 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    while (k > 0 && s.charCodeAt(k) !== c) k = table[k - 1]!;
    if (s.charCodeAt(k) === c) k++;
    table[i] = k;
  }
  return table;
}

/** A middle segment with its failure table. */
interface Segment {
  readonly text: string;
  readonly failure: Int32Array;
}

/**
 * Where `seg` first occurs in `text` at or after `from`, ending at or before
 * `to`; -1 when it does not. Knuth–Morris–Pratt with one comparison per step:
 * each step advances either `i` or `i - k`, both of which stay within
 * [from, to], so it compares at most 2 × (to − from) characters.
 */
function search(text: string, seg: Segment, from: number, to: number): number {
  const s = seg.text;
  const m = s.length;
  let k = 0;
  for (let i = from; i < to; ) {
    if (s.charCodeAt(k) === text.charCodeAt(i)) {
      i++;
      if (++k === m) return i - m;
    } else if (k > 0) k = seg.failure[k - 1]!;
    else i++;
  }
  return -1;
}

/**
 * One label of a name glob with `*` in it, compiled for {@link LabelGlob.matches}:
 * `*` matches any characters within the label, none included. Comparison is
 * by character code: the trie gives it lower-cased patterns and labels.
 */
export class LabelGlob {
  /** The pattern as given. */
  readonly source: string;
  readonly #prefix: string;
  readonly #suffix: string;
  readonly #middle: readonly Segment[];
  /** Characters a label needs at least: the segments' lengths summed. */
  readonly #minLength: number;
  /** Whether the pattern has no `*` (then it matches itself only). */
  readonly #literal: boolean;

  constructor(source: string) {
    this.source = source;
    const parts = source.split('*');
    this.#literal = parts.length === 1;
    this.#prefix = parts[0]!;
    this.#suffix = parts.length === 1 ? '' : parts[parts.length - 1]!;
    // Empty middle segments (from `**`) match anywhere: `**` is `*`.
    this.#middle = parts
      .slice(1, -1)
      .filter((p) => p !== '')
      .map((text) => Object.freeze({ text, failure: failureTable(text) }));
    this.#minLength = parts.reduce((n, p) => n + p.length, 0);
  }

  /** Whether `label` (one label, no dots) matches; O(label + pattern) (see the module comment). */
  matches(label: string): boolean {
    if (this.#literal) return label === this.source;
    if (label.length < this.#minLength) return false;
    if (!label.startsWith(this.#prefix) || !label.endsWith(this.#suffix)) return false;
    let pos = this.#prefix.length;
    const end = label.length - this.#suffix.length;
    for (const seg of this.#middle) {
      const at = search(label, seg, pos, end);
      if (at < 0) return false;
      pos = at + seg.text.length;
    }
    return true;
  }
}
