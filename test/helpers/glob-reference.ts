/**
 * The reference semantics of an in-label glob, for tests of the matcher in
 * sidecar/policy/glob.ts: a dynamic-programming matcher, too slow for the hot
 * path (O(label × pattern) memory) and too plain to be wrong.
 */

/** Whether `label` matches `pattern`, where `*` matches any characters (none included) and every other character itself. */
export function referenceGlobMatch(pattern: string, label: string): boolean {
  // row[j]: pattern[0, i) matches label[0, j), for the i of the current row.
  let row: boolean[] = Array.from({ length: label.length + 1 }, (_, j) => j === 0);
  for (let i = 1; i <= pattern.length; i++) {
    const p = pattern[i - 1];
    const next: boolean[] = new Array<boolean>(label.length + 1).fill(false);
    next[0] = p === '*' && row[0]!;
    for (let j = 1; j <= label.length; j++) {
      next[j] = p === '*' ? row[j]! || next[j - 1]! : row[j - 1]! && p === label[j - 1];
    }
    row = next;
  }
  return row[label.length]!;
}

/**
 * Patterns that take a backtracking matcher seconds or longer on a label of
 * 48 to 63 `a`s, with or without a last character of their own (V8's
 * irregexp: 2.5 s to 4 s at 48 for the first and last, minutes at 63, more
 * for the two with more stars); the last is also
 * the worst case of the linear matcher (its prefix and suffix match, `ab` is
 * searched to the end).
 */
export const PATHOLOGICAL_PATTERNS: readonly string[] = ['a*a*a*a*a*a*a*a*a*b', '*a*a*a*a*a*a*a*a*a*a*c', 'a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b', 'a*a*a*a*a*a*a*a*a*ab*b'];
