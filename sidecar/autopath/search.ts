/**
 * The pod's search list and ndots, and which questions start a search walk
 * under them. Pure: no I/O (the caller reads resolv.conf).
 */
import { encodeName } from '../dns/query.ts';
import { HEADER_LENGTH } from '../dns/constants.ts';
import type { ParsedQuery } from '../dns/wire.ts';

/** The most ndots glibc and musl accept (larger values are cut to it). */
export const MAX_NDOTS = 15;

/** The resolver default when resolv.conf sets no ndots (glibc and musl). */
export const DEFAULT_NDOTS = 1;

/** One search domain: its wire form as written (case kept) and its sidecar form (lower case, no trailing dot). */
export interface SearchDomain {
  readonly name: string;
  readonly wire: Buffer;
}

/** A pod's search list and ndots, as its stub resolvers use them. */
export interface SearchConfig {
  /** The search domains in the resolver's order; never empty. */
  readonly domains: readonly SearchDomain[];
  /** Dots a name needs to be tried as it is before the search list (1–15). */
  readonly ndots: number;
}

/** What a resolv.conf says about searching: its search list (possibly empty) and ndots when set. */
export interface ResolvSearch {
  readonly search: readonly string[];
  readonly ndots?: number;
}

/**
 * The search list and ndots of a resolv.conf text, as glibc reads them: the
 * last `search` or `domain` line wins (`domain` is a one-entry list), the
 * last `ndots:N` option wins, capped at {@link MAX_NDOTS}.
 */
export function parseResolvSearch(text: string): ResolvSearch {
  let search: string[] = [];
  let ndots: number | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'search' || key === 'domain') search = key === 'domain' ? rest.slice(0, 1) : rest;
    else if (key === 'options') {
      for (const opt of rest) {
        const m = /^ndots:(\d+)$/.exec(opt);
        if (m) ndots = Math.min(Number(m[1]), MAX_NDOTS);
      }
    }
  }
  return { search, ...(ndots === undefined ? {} : { ndots }) };
}

/**
 * The search config from a list of domains and ndots, or undefined when the
 * list holds no usable domain (no autopath then). Domains are normalized
 * (trailing dot removed); the root, empty entries, repeats and names that
 * cannot be encoded are left out.
 */
export function searchConfig(search: readonly string[], ndots: number | undefined): SearchConfig | undefined {
  const domains: SearchDomain[] = [];
  const seen = new Set<string>();
  for (const entry of search) {
    const written = entry.replace(/\.$/, '');
    const name = written.toLowerCase();
    if (name === '' || seen.has(name)) continue;
    let wire: Buffer;
    try {
      wire = encodeName(written);
    } catch {
      continue;
    }
    seen.add(name);
    domains.push({ name, wire });
  }
  if (domains.length === 0) return undefined;
  return { domains, ndots: Math.min(Math.max(ndots ?? DEFAULT_NDOTS, 0), MAX_NDOTS) };
}

/** A search walk a question starts: where the name N ends in the client's question. */
export interface Walk {
  /** N in the sidecar's form (presentation text, lower case). */
  readonly base: string;
  /** N's labels as the client wrote them (wire form, without the terminating zero). */
  readonly baseWire: Buffer;
}

/**
 * The walk `q` starts, or undefined when it starts none: its name must be
 * `N.S1` with S1 the first search domain and N (one label or more) having
 * fewer dots than ndots. Other classes, types and RD=0 are the caller's
 * to check. `wire` is the client's message.
 */
export function walkOf(config: SearchConfig, wire: Buffer, q: ParsedQuery): Walk | undefined {
  const first = config.domains[0]!;
  const qname = q.qname;
  if (qname.length <= first.name.length + 1 || !qname.endsWith(first.name) || qname.charCodeAt(qname.length - first.name.length - 1) !== 0x2e) return undefined;
  // Count the labels on the wire: a dot escaped inside a label (`\.`) is not a separator.
  const labels: number[] = [];
  for (let pos = HEADER_LENGTH; wire[pos] !== 0; pos += 1 + wire[pos]!) labels.push(pos);
  const firstLabels = first.wire.length > 1 ? countLabels(first.wire) : 0;
  const baseLabels = labels.length - firstLabels;
  if (baseLabels < 1 || baseLabels - 1 >= config.ndots) return undefined;
  const baseEnd = labels[baseLabels]!;
  const baseWire = wire.subarray(HEADER_LENGTH, baseEnd);
  // The wire's suffix must be S1 (case aside): an escaped dot could make the text match while the labels differ.
  if (!sameName(wire.subarray(baseEnd, q.questionEnd - 4), first.wire)) return undefined;
  return { base: qname.slice(0, qname.length - first.name.length - 1), baseWire };
}

function countLabels(name: Buffer): number {
  let n = 0;
  for (let pos = 0; name[pos] !== 0; pos += 1 + name[pos]!) n++;
  return n;
}

/** Whether two uncompressed wire names are equal ignoring ASCII case. */
function sameName(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if ((x | 0x20) !== (y | 0x20) || (x | 0x20) < 0x61 || (x | 0x20) > 0x7a) return false;
  }
  return true;
}

/**
 * The names a client walks for `walk`, in its order, after the asked one:
 * N under each further search domain, then N itself; each in wire form (N
 * as the client wrote it) and sidecar form. Names over 255 bytes are left
 * out, as the resolvers leave them out.
 */
export function candidates(config: SearchConfig, walk: Walk): { name: string; wire: Buffer }[] {
  const out: { name: string; wire: Buffer }[] = [];
  for (const d of config.domains.slice(1)) {
    const wire = Buffer.concat([walk.baseWire, d.wire]);
    if (wire.length <= 255) out.push({ name: `${walk.base}.${d.name}`, wire });
  }
  out.push({ name: walk.base, wire: Buffer.concat([walk.baseWire, Buffer.from([0])]) });
  return out;
}

/** Where {@link autopathSearch} found the search list: the flags, the resolv.conf file, or nowhere. */
export type SearchSource = 'flags' | 'resolv.conf' | 'none';

/**
 * The search config autopath runs with, from the sidecar config: `--search`
 * and `--ndots` when given (the injector writes them from the pod's
 * dnsConfig), else the `search` and `ndots` of the resolv.conf file (which
 * the pod's dnsConfig gives every container); undefined (no autopath) when
 * autopath is off or no search list is known. `readText` reads the file
 * and throws when it cannot.
 */
export function autopathSearch(
  config: { readonly autopath: boolean; readonly search: readonly string[]; readonly ndots?: number; readonly resolvConf: string },
  readText: (path: string) => string,
): { search: SearchConfig | undefined; source: SearchSource } {
  if (!config.autopath) return { search: undefined, source: 'none' };
  let file: ResolvSearch | undefined;
  if (config.search.length === 0 || config.ndots === undefined) {
    try {
      file = parseResolvSearch(readText(config.resolvConf));
    } catch {
      file = undefined;
    }
  }
  const fromFlags = config.search.length > 0;
  const search = searchConfig(fromFlags ? config.search : (file?.search ?? []), config.ndots ?? file?.ndots);
  return { search, source: search === undefined ? 'none' : fromFlags ? 'flags' : 'resolv.conf' };
}
