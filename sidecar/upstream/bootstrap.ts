/**
 * Where an encrypted upstream named by host connects: the bootstrap addresses
 * from configuration, optionally re-resolved now and then through bootstrap
 * resolvers given by IP (never through the system resolver, which may be the
 * sidecar itself). Not on the hot path: dns-packet is used here.
 */
import * as packet from 'dns-packet';
import { RRType } from '../dns/constants.ts';
import { buildQuery } from '../dns/query.ts';
import { normalizeName } from '../dns/wire.ts';
import { describeError } from '../errors.ts';
import { randomId } from './message.ts';
import type { Upstream } from './upstream.ts';

/** The current IP addresses of one upstream host. */
export interface AddressSource {
  /** The addresses to try, in order; never empty. */
  addresses(): readonly string[];
  /** Stops any background work. Idempotent. */
  close(): void;
}

/** A fixed list of addresses. */
export function staticAddresses(list: readonly string[]): AddressSource {
  const frozen = Object.freeze([...list]);
  return { addresses: () => frozen, close: () => {} };
}

/** Options of {@link ReResolvingAddresses}. */
export interface ReResolveOptions {
  /** Plain DNS upstreams (by IP) asked for the host's A and AAAA records, in order. The source owns and closes them. */
  readonly resolvers: readonly Upstream[];
  /** Milliseconds between refreshes; the first runs at once. */
  readonly intervalMs: number;
  /** Milliseconds one resolver gets per query. Default 2000. */
  readonly timeoutMs?: number;
  /** Told of each failed refresh (the last good addresses stay in use). */
  readonly onError?: (host: string, message: string) => void;
}

function query(host: string, type: 'A' | 'AAAA'): Buffer {
  return buildQuery(normalizeName(host), RRType[type], randomId()).wire;
}

/**
 * The addresses of `host` in `answers`, following CNAMEs from `host` (at most 8).
 * Records for other names are ignored.
 */
export function addressesIn(host: string, answers: readonly packet.Answer[]): string[] {
  const names = new Set([host.toLowerCase().replace(/\.$/, '')]);
  for (let hop = 0; hop < 8; hop++) {
    let grew = false;
    for (const rr of answers) {
      if (rr.type === 'CNAME' && names.has(rr.name.toLowerCase()) && !names.has(String(rr.data).toLowerCase())) {
        names.add(String(rr.data).toLowerCase().replace(/\.$/, ''));
        grew = true;
      }
    }
    if (!grew) break;
  }
  const out: string[] = [];
  for (const rr of answers) {
    if ((rr.type === 'A' || rr.type === 'AAAA') && names.has(rr.name.toLowerCase()) && !out.includes(String(rr.data))) out.push(String(rr.data));
  }
  return out;
}

/**
 * Addresses that start as the configured bootstrap list and are replaced by
 * what the bootstrap resolvers answer for the host, every `intervalMs`. A
 * refresh that fails or finds nothing keeps the last good list.
 */
export class ReResolvingAddresses implements AddressSource {
  readonly #host: string;
  readonly #options: ReResolveOptions;
  #current: readonly string[];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Resolves when the refresh in progress (or the last one) is done; for tests. */
  lastRefresh: Promise<void> = Promise.resolve();

  constructor(host: string, initial: readonly string[], options: ReResolveOptions) {
    this.#host = host;
    this.#current = Object.freeze([...initial]);
    this.#options = options;
    this.lastRefresh = this.refresh();
  }

  addresses(): readonly string[] {
    return this.#current;
  }

  /** Asks the resolvers now; on success replaces the addresses. Never rejects. */
  async refresh(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    let lastError = 'no bootstrap resolver answered';
    for (const resolver of this.#options.resolvers) {
      if (this.#closed) return;
      try {
        const found: string[] = [];
        for (const type of ['A', 'AAAA'] as const) {
          const reply = await resolver.exchange(query(this.#host, type), AbortSignal.timeout(this.#options.timeoutMs ?? 2000));
          found.push(...addressesIn(this.#host, packet.decode(reply).answers ?? []));
        }
        if (found.length > 0) {
          this.#current = Object.freeze(found);
          lastError = '';
          break;
        }
        lastError = `${resolver.address} has no A or AAAA records for ${this.#host}`;
      } catch (err) {
        lastError = describeError(err);
      }
    }
    if (lastError !== '') this.#options.onError?.(this.#host, lastError);
    if (!this.#closed) {
      this.#timer = setTimeout(() => {
        this.lastRefresh = this.refresh();
      }, this.#options.intervalMs);
      this.#timer.unref();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const r of this.#options.resolvers) void r.close();
  }
}
