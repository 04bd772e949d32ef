/**
 * The listener's metrics: client messages refused before the pipeline
 * (unreadable, or not a standard query), which therefore never reach the
 * `metrics` stage's request count.
 */
import type { Registry } from 'prom-client';
import { PROTOS, RCODE_VALUES, SlotCounter, protoSlot, rcodeSlot } from '../metrics/registry.ts';
import type { Proto } from '../pipeline/stage.ts';

/** Rcodes whose rejected series exist (at 0) before the first such message. */
const RCODE_DECLARED = ['FORMERR', 'none'] as const;

/** The listener's metrics, declared in `registry`. */
export class ListenerMetrics {
  readonly rejected: SlotCounter;
  /** proto × rcode → slot (-1: not created yet). */
  readonly #rejectedSlots: Int32Array;

  constructor(registry: Registry) {
    this.rejected = new SlotCounter(registry, 'tenant_dns_rejected_requests_total', 'Client messages refused before the pipeline (not in requests_total): unreadable or not a query, by transport and the rcode answered (FORMERR, BADVERS, …; none: dropped without an answer).', ['proto', 'rcode']);
    this.#rejectedSlots = new Int32Array(PROTOS.length * RCODE_VALUES.length).fill(-1);
    PROTOS.forEach((proto, p) =>
      RCODE_DECLARED.forEach((rcode) => (this.#rejectedSlots[p * RCODE_VALUES.length + RCODE_VALUES.indexOf(rcode)] = this.rejected.slot({ proto, rcode }))),
    );
  }

  /** Counts a client message the listener refused before the pipeline (HandlerDeps.onRejected): `rcode` answered, -1 when dropped. */
  rejectedRequest(proto: Proto, rcode: number): void {
    const i = protoSlot(proto) * RCODE_VALUES.length + rcodeSlot(rcode);
    let slot = this.#rejectedSlots[i]!;
    if (slot < 0) slot = this.#rejectedSlots[i] = this.rejected.slot({ proto, rcode: RCODE_VALUES[i % RCODE_VALUES.length]! });
    this.rejected.add(slot);
  }
}
