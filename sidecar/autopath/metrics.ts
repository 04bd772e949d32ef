/**
 * The autopath stage's metrics: the answers it gave to questions that start
 * a search walk, by result, and the client queries they saved.
 */
import type { Registry } from 'prom-client';
import { SlotCounter } from '../metrics/registry.ts';

/**
 * How a walk ended (the `result` label):
 * - `first`: the asked name (`N.S1`) had an answer of its own, given as it is;
 * - `found`: a later candidate answered; the client got a CNAME to it and its records;
 * - `denied`: as found, the candidate answered by a deny rule (a sinkhole's addresses);
 * - `nxdomain`: every candidate was NXDOMAIN; the client got the asked name's NXDOMAIN;
 * - `passthrough`: the walk stopped at a candidate the libcs treat differently (NODATA for
 *   both address families, REFUSED, an error); the client got the asked name's own answer and
 *   walks on itself, its next queries answered from the cache.
 */
export const AUTOPATH_RESULTS = ['first', 'found', 'denied', 'nxdomain', 'passthrough'] as const;

/** One of {@link AUTOPATH_RESULTS}. */
export type AutopathResult = (typeof AUTOPATH_RESULTS)[number];

/** The autopath metrics, declared in `registry`. */
export class AutopathMetrics {
  readonly #answers: SlotCounter;
  readonly #slots: Record<AutopathResult, number>;
  readonly #saved: SlotCounter;
  readonly #savedSlot: number;

  constructor(registry: Registry) {
    this.#answers = new SlotCounter(registry, 'tenant_dns_autopath_answers_total', 'Queries that started a search walk (N.S1, N with fewer dots than ndots), by how the sidecar answered: first, found, denied, nxdomain, passthrough.', ['result']);
    this.#slots = Object.fromEntries(AUTOPATH_RESULTS.map((r) => [r, this.#answers.slot({ result: r }, false)])) as Record<AutopathResult, number>;
    this.#saved = new SlotCounter(
      registry,
      'tenant_dns_autopath_queries_saved_total',
      'Client queries autopath made unnecessary: for an answer found at the k-th name after the asked one in the search walk, k (the client would have asked each of them).',
      [],
    );
    this.#savedSlot = this.#saved.slot({}, false);
  }

  /** Counts one answer; `saved` client queries it made unnecessary. */
  answered(result: AutopathResult, saved: number): void {
    this.#answers.add(this.#slots[result]);
    if (saved > 0) this.#saved.add(this.#savedSlot, saved);
  }
}
