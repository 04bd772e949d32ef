/**
 * The one owner of the upstream groups: the default group, the cluster group
 * (kube-dns) and one group per forward zone of the policy. It follows policy
 * reloads: a forward zone whose upstreams change gets a new group at once,
 * and the replaced group is closed as soon as the queries already sent
 * through it are answered (never while one still waits on it).
 */
import { EDECode } from '../dns/constants.ts';
import { ErrorCodes, SidecarError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CompiledPolicy } from '../policy/compile.ts';
import { CLUSTER_GROUP, DEFAULT_GROUP } from '../route/classify.ts';
import type { UpstreamGroup } from './group.ts';
import type { ResolvingGroup } from './stage.ts';

/** Makes a group named `name` over the upstream URLs `urls`; throws when a URL cannot be used. */
export type GroupFactory = (name: string, urls: readonly string[]) => UpstreamGroup;

/** What {@link UpstreamGroups} takes. */
export interface UpstreamGroupsOptions {
  /** Builds each group (server wiring: fromUrl + createGroup). */
  readonly create: GroupFactory;
  /** The default upstream URLs, in failover order. */
  readonly defaultUrls: readonly string[];
  /** kube-dns as HOST:PORT; without it there is no cluster group. */
  readonly clusterDns?: string;
  /** Operational log (unusable forward zones). */
  readonly log: Logger;
}

/** What the policy manager offers the owner: the compiled policy and reload notices. */
export interface PolicySource {
  readonly current: CompiledPolicy;
  onReload(cb: (result: 'success' | 'failure') => void): () => void;
}

/** A group the owner holds; a retired one closes once the group says no query is in flight (whenIdle). */
interface Held {
  readonly group: UpstreamGroup;
  /** The forward zone's upstream URLs joined, to see whether a reload changed them. */
  readonly key: string;
  retired: boolean;
}

/**
 * A stand-in group for a forward zone whose upstreams cannot be used (a
 * `tls://` host without a bootstrap address, a port out of range): its names
 * are answered SERVFAIL with an Extended DNS Error naming the zone, never
 * sent to another group (DESIGN §5). Never healthy, so readiness says so.
 */
function unusableGroup(name: string, why: string): UpstreamGroup {
  const error = () =>
    new SidecarError(ErrorCodes.FORWARD_ZONE_UNUSABLE, `forward zone ${name} has no usable upstream: ${why}`, {
      ede: { code: EDECode.OTHER, text: `forward zone ${name} is unusable: ${why}` },
    });
  return {
    name,
    resolve: () => Promise.reject(error()),
    start: (_query, _signal, to) => to.onError(error()),
    whenIdle: (cb) => cb(),
    healthy: () => false,
    members: () => [],
    close: async () => {},
    unusable: why,
  };
}

/** Owns every upstream group of one sidecar. */
export class UpstreamGroups {
  readonly #opts: UpstreamGroupsOptions;
  /** The groups serving now, by key: `default`, `cluster`, forward zone names. */
  readonly #current = new Map<string, Held>();
  /** Every group not closed yet: the current ones and retired ones still answering. */
  readonly #open = new Set<Held>();
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  /**
   * Builds the default and cluster groups.
   *
   * @throws SidecarError when a default upstream URL cannot be used (nothing is left open).
   */
  constructor(opts: UpstreamGroupsOptions) {
    this.#opts = opts;
    try {
      this.#install(DEFAULT_GROUP, opts.defaultUrls);
      // Plain DNS to kube-dns, TCP preferred (one pipelined connection), UDP as the fallback.
      if (opts.clusterDns) this.#install(CLUSTER_GROUP, [`tcp://${opts.clusterDns}`, `udp://${opts.clusterDns}`]);
    } catch (err) {
      void this.close();
      throw err;
    }
  }

  /** The group for a route's group key, or undefined when there is none (no cluster DNS configured). */
  get(name: string): ResolvingGroup | undefined {
    return this.#current.get(name)?.group;
  }

  /** The groups serving now, by key (readiness, metrics, tests). */
  all(): ReadonlyMap<string, UpstreamGroup> {
    const out = new Map<string, UpstreamGroup>();
    for (const [name, h] of this.#current) out.set(name, h.group);
    return out;
  }

  /** Groups replaced by a reload that still have queries in flight. */
  get retiring(): number {
    let n = 0;
    for (const h of this.#open) if (h.retired) n++;
    return n;
  }

  /**
   * Makes the forward-zone groups those of `policy`: new zones and zones
   * whose upstreams changed get a new group, removed and replaced ones are
   * retired. A zone whose upstreams cannot be used gets a group that answers
   * SERVFAIL naming it, and one error line.
   */
  sync(policy: CompiledPolicy): void {
    const seen = new Set<string>([DEFAULT_GROUP, CLUSTER_GROUP]);
    for (const fz of policy.forwardZoneList) {
      seen.add(fz.group);
      const key = fz.upstreams.join(' ');
      const old = this.#current.get(fz.group);
      if (old?.key === key) continue;
      try {
        this.#install(fz.group, fz.upstreams);
      } catch (err) {
        const why = describeError(err);
        this.#opts.log('error', 'forward zone upstreams are unusable; its names are answered SERVFAIL', { zone: fz.group, error: why });
        this.#hold(fz.group, key, unusableGroup(fz.group, why));
      }
      if (old) this.#retire(old);
    }
    for (const [name, held] of [...this.#current]) {
      if (seen.has(name)) continue;
      this.#current.delete(name);
      this.#retire(held);
    }
  }

  /** Syncs with `policy` now and after every good reload, until {@link close}. */
  follow(policy: PolicySource): void {
    this.sync(policy.current);
    this.#unsubscribe = policy.onReload((result) => {
      if (result === 'success' && !this.#closed) this.sync(policy.current);
    });
  }

  /** Closes every group, retired ones included, and stops following the policy. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    const all = [...this.#open];
    this.#open.clear();
    this.#current.clear();
    await Promise.all(all.map((h) => h.group.close()));
  }

  #install(name: string, urls: readonly string[]): void {
    this.#hold(name, urls.join(' '), this.#opts.create(name, urls));
  }

  #hold(name: string, key: string, group: UpstreamGroup): void {
    const held: Held = { group, key, retired: false };
    this.#current.set(name, held);
    this.#open.add(held);
  }

  #retire(held: Held): void {
    held.retired = true;
    held.group.whenIdle(() => this.#closeHeld(held));
  }

  #closeHeld(held: Held): void {
    if (!this.#open.delete(held)) return;
    void held.group.close();
  }
}
