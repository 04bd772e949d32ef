/**
 * The pipeline's metrics: the errors that ended client queries, counted by
 * the one failure path (failures.ts) before they become SERVFAIL.
 */
import type { Registry } from 'prom-client';
import { ErrorCodes, type ErrorCode } from '../errors.ts';
import { SlotCounter } from '../metrics/registry.ts';

/** The pipeline's metrics, declared in `registry`. */
export class PipelineMetrics {
  readonly failures: SlotCounter;
  /** Slot by error code; a code's series appears with its first error (the codes are a closed set). */
  readonly #slots = new Map<ErrorCode, number>();

  constructor(registry: Registry) {
    this.failures = new SlotCounter(
      registry,
      'tenant_dns_query_failures_total',
      `Client queries that ended in an error answered SERVFAIL, by error code (${Object.keys(ErrorCodes).length} stable codes: UPSTREAM_GROUP_FAILED, UPSTREAM_SERVFAIL, FORWARD_ZONE_UNUSABLE, FORWARDING_LOOP, INTERNAL, …).`,
      ['code'],
    );
  }

  /** Counts one failed query. */
  failed(code: ErrorCode): void {
    let slot = this.#slots.get(code);
    if (slot === undefined) this.#slots.set(code, (slot = this.failures.slot({ code })));
    this.failures.add(slot);
  }
}
