/**
 * The injector's Prometheus metrics, declared against a registry passed in
 * (tests get a fresh one). Labels are bounded: webhook, result, reason (a
 * skip or deny reason, or an error code), source, path.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The two admission webhooks: the `webhook` label of the admission counter. */
export type Webhook = 'mutate' | 'validate';

/** The injector's metrics. */
export interface InjectorMetrics {
  /**
   * Admission decisions by webhook (mutate, validate). result: injected,
   * skipped, denied or error for mutate; allowed, denied or error for
   * validate. reason: the skip or deny reason, the error code, or `none`.
   */
  readonly admissions: Counter<'webhook' | 'result' | 'reason'>;
  /** HTTP request duration by path (`/mutate`, `/validate`, `other`) and status code. */
  readonly requestDuration: Histogram<'path' | 'code'>;
  /** Where a tenant name came from: label, namespace (no label), fallback (lookup failed or timed out). */
  readonly tenantLookups: Counter<'source'>;
  /** TLS certificate reloads by result (ok, error). */
  readonly certReloads: Counter<'result'>;
  /**
   * The serving certificate's notAfter in seconds since the epoch: set when
   * the server loads it at start and on every reload that loads a new one.
   */
  readonly certificateExpiry: Gauge;
  /**
   * Connections the server closed before answering on them, by reason:
   * per-source-cap, total-cap, evicted (sidecar/net/guard.ts), handshake-timeout,
   * tls-error, request-timeout (headers or request too slow), bad-request.
   */
  readonly connectionsClosed: Counter<'reason'>;
  /** Admission requests waiting for a slot now (injector/admission-gate.ts). */
  readonly admissionsWaiting: Gauge;
}

/** Registers the injector's metrics on `registry`. */
export function createInjectorMetrics(registry: Registry): InjectorMetrics {
  return {
    admissions: new Counter({
      name: 'tenant_dns_injector_admissions_total',
      help: 'Admission requests handled, by webhook (mutate, validate), result (injected, skipped, allowed, denied, error) and reason.',
      labelNames: ['webhook', 'result', 'reason'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'tenant_dns_injector_request_duration_seconds',
      help: 'Time to answer an HTTP request, by path and status code.',
      labelNames: ['path', 'code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    tenantLookups: new Counter({
      name: 'tenant_dns_injector_tenant_lookups_total',
      help: 'Tenant name lookups, by where the name came from (label, namespace, fallback).',
      labelNames: ['source'],
      registers: [registry],
    }),
    certReloads: new Counter({
      name: 'tenant_dns_injector_cert_reloads_total',
      help: 'TLS certificate and key reloads, by result.',
      labelNames: ['result'],
      registers: [registry],
    }),
    certificateExpiry: new Gauge({
      name: 'tenant_dns_injector_certificate_expiry_timestamp_seconds',
      help: 'When the serving TLS certificate expires (its notAfter), in seconds since the epoch; set at load and on every reload.',
      registers: [registry],
    }),
    connectionsClosed: new Counter({
      name: 'tenant_dns_injector_connections_closed_total',
      help: 'Connections closed before an answer, by reason (per-source-cap, total-cap, evicted, handshake-timeout, tls-error, request-timeout, bad-request).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    admissionsWaiting: new Gauge({
      name: 'tenant_dns_injector_admissions_waiting',
      help: 'Admission requests waiting for a slot (their bodies not read yet).',
      registers: [registry],
    }),
  };
}

/** The controller's metrics (`tenant_dns_controller_*`), declared on the injector's registry. */
export interface ControllerMetrics {
  /** 1 while this replica holds the Lease (its controller writes), else 0. */
  readonly leader: Gauge;
  /** Renders by result: ok, or error (renderAll threw; nothing was written). */
  readonly renders: Counter<'result'>;
  /** Writes by what was written (configmap, status) and result (created, updated, error). */
  readonly writes: Counter<'kind' | 'result'>;
  /** 409 Conflicts on writes, by what was written (configmap, status): another writer changed it first; retried. */
  readonly conflicts: Counter<'kind'>;
  /** Layers held by the last render: ConfigMaps not written because an object with no accepted spec would change them. */
  readonly heldLayers: Gauge;
  /** Unix time of the last render whose writes all succeeded. */
  readonly lastSuccess: Gauge;
}

/** Registers the controller's metrics on `registry`. */
export function createControllerMetrics(registry: Registry): ControllerMetrics {
  return {
    leader: new Gauge({ name: 'tenant_dns_controller_leader', help: '1 while this replica holds the leader Lease (its controller writes), else 0.', registers: [registry] }),
    renders: new Counter({ name: 'tenant_dns_controller_renders_total', help: 'Renders of the policy ConfigMaps, by result (ok, error).', labelNames: ['result'], registers: [registry] }),
    writes: new Counter({
      name: 'tenant_dns_controller_writes_total',
      help: 'Writes to the API server, by kind (configmap, status) and result (created, updated, error).',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    conflicts: new Counter({ name: 'tenant_dns_controller_conflicts_total', help: '409 Conflicts on writes (retried), by kind (configmap, status).', labelNames: ['kind'], registers: [registry] }),
    heldLayers: new Gauge({ name: 'tenant_dns_controller_held_layers', help: 'Policy layers the last render held (not written: an invalid object without an accepted spec would change them).', registers: [registry] }),
    lastSuccess: new Gauge({ name: 'tenant_dns_controller_last_success_timestamp_seconds', help: 'Unix time of the last render whose writes all succeeded.', registers: [registry] }),
  };
}
