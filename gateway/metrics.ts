/**
 * The gateway's metrics: queries answered by zone, rcode and tenant, records
 * published per tenant, claims rejected per tenant and reason, and
 * build_info. Unlike the sidecar's, `tenant` is a label of the series here (one
 * gateway serves every tenant); the gateway's pods carry no tenant label, so
 * a scrape adds none to clash with it.
 */
import type { Registry } from 'prom-client';
import { collectProcessMetrics } from '../sidecar/metrics/metrics.ts';
import { Gauge, rcodeLabel, SlotCounter } from '../sidecar/metrics/registry.ts';
import type { RejectReason } from '../injector/gateway-ownership.ts';

/** Options of {@link GatewayMetrics}. */
export interface GatewayMetricsOptions {
  readonly version: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
}

/** Declares and updates the gateway's metrics in a registry. */
export class GatewayMetrics {
  readonly requests: SlotCounter;
  readonly rejected: SlotCounter;
  readonly records: Gauge;
  /** `zone\0rcode\0tenant` → slot of {@link requests}. */
  readonly #requestSlots = new Map<string, number>();
  readonly #rejectedSlots = new Map<string, number>();
  #recordTenants = new Set<string>();

  constructor(registry: Registry, options: GatewayMetricsOptions) {
    this.requests = new SlotCounter(
      registry,
      'tenant_dns_gateway_requests_total',
      'Queries the gateway answered, by zone (empty: outside every zone, or unreadable), rcode and tenant (the tenant whose name or wildcard answered; empty when none did).',
      ['zone', 'rcode', 'tenant'],
    );
    this.rejected = new SlotCounter(
      registry,
      'tenant_dns_gateway_rejected_total',
      'Claims of a host name the gateway refused to publish, by tenant and reason (outside-domains, owned-by-other, contested, …); counted once each time a claim becomes rejected.',
      ['tenant', 'reason'],
    );
    this.records = new Gauge({
      name: 'tenant_dns_gateway_records',
      help: 'Records (A, AAAA, CNAME) the gateway publishes, by tenant.',
      labelNames: ['tenant'],
      registers: [registry],
    });
    new Gauge({ name: 'tenant_dns_gateway_build_info', help: 'Always 1; the gateway version.', labelNames: ['version'], registers: [registry] }).set({ version: options.version }, 1);
    // 'basic' registers them all before it returns.
    if (options.processMetrics ?? true) void collectProcessMetrics(registry, 'basic');
  }

  /** Counts one answer. */
  request(zone: string, rcode: number, tenant: string): void {
    const label = rcodeLabel(rcode);
    const key = `${zone}\0${label}\0${tenant}`;
    let slot = this.#requestSlots.get(key);
    if (slot === undefined) {
      slot = this.requests.slot({ zone, rcode: label, tenant });
      this.#requestSlots.set(key, slot);
    }
    this.requests.add(slot);
  }

  /** Counts a claim that became rejected. */
  rejection(tenant: string, reason: RejectReason): void {
    const key = `${tenant}\0${reason}`;
    let slot = this.#rejectedSlots.get(key);
    if (slot === undefined) {
      slot = this.rejected.slot({ tenant, reason });
      this.#rejectedSlots.set(key, slot);
    }
    this.rejected.add(slot);
  }

  /** Sets the records published per tenant; tenants no longer publishing lose their series. */
  setRecords(perTenant: ReadonlyMap<string, number>): void {
    for (const t of this.#recordTenants) if (!perTenant.has(t)) this.records.remove({ tenant: t });
    for (const [tenant, n] of perTenant) this.records.set({ tenant }, n);
    this.#recordTenants = new Set(perTenant.keys());
  }
}

