/**
 * The nftables rules of `tenant-dns capture`, built as text for `nft -f`, and
 * the check that a listing (`nft -j list table …`) holds them. Pure: no I/O;
 * cli.ts runs nft.
 *
 * What the rules do in the pod's network namespace (one `inet` table, so IPv4
 * and IPv6 alike):
 *
 * - nat output: UDP and TCP to port 53 on any address, from every uid but the
 *   sidecar's, are DNATed to the sidecar's listen address (one per family);
 * - filter output: new TCP connections to port 853 (DNS over TLS) from every
 *   uid but the sidecar's are rejected with a TCP reset;
 * - raw output and prerouting: conntrack zones keep the sidecar's own UDP/53
 *   flows (zone 1) apart from the apps' redirected ones (zone 2). Without
 *   them, a sidecar upstream query that happens to leave from the source port
 *   of a recent app query to the same server matches that query's conntrack
 *   entry and is DNATed back to the sidecar (the same separation Istio's DNS
 *   capture makes).
 *
 * The sidecar's own traffic is told apart by `meta skuid`, the uid of the
 * socket that sent it. The script replaces the whole table in one transaction,
 * so running it again changes nothing.
 */
import { cryptoModule } from '../runtime/builtins.ts';
import { formatHostPort, parseHostPort, type HostPort } from '../listener/address.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';

/** The nftables family and table the rules live in; nothing else in the namespace is touched. */
export const CAPTURE_TABLE = { family: 'inet', name: 'tenant-dns-capture' } as const;

/** The sidecar's uid in the image (`USER 65532:65532`) and in the injected securityContext. */
export const DEFAULT_SIDECAR_UID = 65532;

/** The sidecar's default listen addresses, one per family: where captured queries go. */
export const DEFAULT_REDIRECT = { ipv4: '127.0.0.1:53', ipv6: '[::1]:53' } as const;

/** The flags of `tenant-dns capture`; the injector writes the capture container's args with these. */
export const CAPTURE_FLAGS = {
  sidecarUid: '--sidecar-uid',
  redirectTo: '--redirect-to',
  dryRun: '--dry-run',
  check: '--check',
} as const;

/** Plain DNS (RFC 1035) and DNS over TLS (RFC 7858). */
const DNS_PORT = 53;
const DOT_PORT = 853;

/** Conntrack zones: the sidecar's own upstream flows, and the apps' flows to the sidecar. */
const ZONE_SIDECAR_UPSTREAM = 1;
const ZONE_APP = 2;

/** Where captured queries go, one address per family. */
export interface RedirectTargets {
  readonly ipv4: HostPort;
  readonly ipv6: HostPort;
}

/** What the rules depend on. */
export interface CaptureOptions {
  /** The uid the sidecar runs as: its traffic is never captured. */
  readonly sidecarUid: number;
  readonly redirect: RedirectTargets;
}

/**
 * Parses `--redirect-to` values: at most one per address family. A family
 * not given is sent to its loopback address on the port of the one given
 * (`127.0.0.1:5353` alone also sends IPv6 to `[::1]:5353`); none given: the
 * defaults, 127.0.0.1:53 and [::1]:53. IPv6 queries cannot be translated to
 * an IPv4 listener, so where the sidecar does not listen on its IPv6 target,
 * they fail (connection refused) rather than leave the pod.
 *
 * @throws SidecarError CONFIG_INVALID for a value that is not ADDR:PORT, port 0, or two of one family.
 */
export function redirectTargets(values: readonly string[]): RedirectTargets {
  const given: { 4?: HostPort; 6?: HostPort } = {};
  for (const value of values) {
    const hp = parseHostPort(value, CAPTURE_FLAGS.redirectTo);
    if (hp.port === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${CAPTURE_FLAGS.redirectTo}: port 0 is not a listen address`);
    if (given[hp.family]) {
      throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${CAPTURE_FLAGS.redirectTo}: two IPv${hp.family} targets (${formatHostPort(given[hp.family]!)}, ${value}); give at most one per family`);
    }
    given[hp.family] = hp;
  }
  const port = (given[4] ?? given[6])?.port;
  const fallback = (text: string) => {
    const hp = parseHostPort(text, 'default');
    return port === undefined ? hp : { ...hp, port };
  };
  return { ipv4: given[4] ?? fallback(DEFAULT_REDIRECT.ipv4), ipv6: given[6] ?? fallback(DEFAULT_REDIRECT.ipv6) };
}

/**
 * Validates a uid for `meta skuid`.
 *
 * @throws SidecarError CONFIG_INVALID unless an integer 0–4294967294.
 */
export function sidecarUid(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 4_294_967_294) {
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${CAPTURE_FLAGS.sidecarUid}: "${value}" is not a uid (an integer 0-4294967294)`);
  }
  return n;
}

/** One base chain of the table, as a check expects to find it. */
export interface CaptureChain {
  readonly name: string;
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'output';
  /** Netfilter priority: raw -300, dstnat -100, filter 0. */
  readonly priority: number;
  /** Rule statements in order, each ending in its comment. */
  readonly rules: readonly string[];
  /** The comment of each rule, in order: what the check compares. */
  readonly comments: readonly string[];
}

/** The rules for one set of options. */
export interface CaptureRuleset {
  readonly chains: readonly CaptureChain[];
  /** 12 hex digits of SHA-256 over the rules: in every rule's comment, so a check sees the options too. */
  readonly digest: string;
  /** Input for `nft -f -`: creates the table if missing, deletes it, and defines it anew, in one transaction. */
  readonly script: string;
}

interface RuleSpec {
  readonly statement: string;
  readonly what: string;
}

function chainSpecs(opts: CaptureOptions): { name: string; type: CaptureChain['type']; hook: CaptureChain['hook']; priority: number; rules: RuleSpec[] }[] {
  const uid = opts.sidecarUid;
  const { ipv4, ipv6 } = opts.redirect;
  const ports = [...new Set([ipv4.port, ipv6.port])];
  const portMatch = ports.length === 1 ? String(ports[0]) : `{ ${ports.join(', ')} }`;
  const dnat = (family: 'ipv4' | 'ipv6', proto: 'udp' | 'tcp', to: HostPort): RuleSpec => ({
    statement: `meta nfproto ${family} ${proto} dport ${DNS_PORT} dnat ${family === 'ipv4' ? 'ip' : 'ip6'} to ${formatHostPort(to)}`,
    what: `${family} ${proto}/${DNS_PORT} to ${formatHostPort(to)}`,
  });
  return [
    {
      name: 'raw_prerouting',
      type: 'filter',
      hook: 'prerouting',
      priority: -300,
      rules: [{ statement: `udp sport ${DNS_PORT} ct zone set ${ZONE_SIDECAR_UPSTREAM}`, what: 'replies from DNS servers: zone of the sidecar upstream queries' }],
    },
    {
      name: 'raw_output',
      type: 'filter',
      hook: 'output',
      priority: -300,
      rules: [
        { statement: `meta skuid ${uid} udp dport ${DNS_PORT} ct zone set ${ZONE_SIDECAR_UPSTREAM}`, what: 'sidecar upstream queries' },
        { statement: `meta skuid ${uid} udp sport ${portMatch} ct zone set ${ZONE_APP}`, what: 'sidecar answers to apps' },
        { statement: `meta skuid != ${uid} udp dport ${DNS_PORT} ct zone set ${ZONE_APP}`, what: 'app queries' },
      ],
    },
    {
      name: 'nat_output',
      type: 'nat',
      hook: 'output',
      priority: -100,
      rules: [
        { statement: `meta skuid ${uid} return`, what: `sidecar uid ${uid} not captured` },
        dnat('ipv4', 'udp', ipv4),
        dnat('ipv4', 'tcp', ipv4),
        dnat('ipv6', 'udp', ipv6),
        dnat('ipv6', 'tcp', ipv6),
      ],
    },
    {
      name: 'filter_output',
      type: 'filter',
      hook: 'output',
      priority: 0,
      rules: [
        { statement: `meta skuid ${uid} return`, what: `sidecar uid ${uid} may use DoT` },
        { statement: `tcp dport ${DOT_PORT} ct state new reject with tcp reset`, what: `app DoT (tcp/${DOT_PORT}) refused` },
      ],
    },
  ];
}

/** The comment nft keeps with a rule: the ruleset's digest, then what the rule does. */
function ruleComment(digest: string, what: string): string {
  return `tenant-dns ${digest}: ${what}`;
}

/** The digest part of a {@link ruleComment}. */
const DIGEST_OF_COMMENT = /^tenant-dns ([0-9a-f]{12}): /;

/**
 * Builds the capture rules for `opts`: the `nft -f` script and what a check
 * expects to find. Pure; the same options always give the same text.
 */
export function buildCaptureRules(opts: CaptureOptions): CaptureRuleset {
  const specs = chainSpecs(opts);
  const digest = cryptoModule()
    .createHash('sha256')
    .update(JSON.stringify(specs))
    .digest('hex')
    .slice(0, 12);
  const chains: CaptureChain[] = specs.map((c) => {
    const comments = c.rules.map((r) => ruleComment(digest, r.what));
    return { name: c.name, type: c.type, hook: c.hook, priority: c.priority, comments, rules: c.rules.map((r, i) => `${r.statement} comment "${comments[i]}"`) };
  });
  const { family, name } = CAPTURE_TABLE;
  const lines = [
    `# tenant-dns capture: sidecar uid ${opts.sidecarUid}, DNS to ${formatHostPort(opts.redirect.ipv4)} and ${formatHostPort(opts.redirect.ipv6)}`,
    '# (re)creates the table in one transaction: running it again replaces it, never duplicates it',
    `table ${family} ${name}`,
    `delete table ${family} ${name}`,
    `table ${family} ${name} {`,
  ];
  for (const c of chains) {
    lines.push(`\tchain ${c.name} {`, `\t\ttype ${c.type} hook ${c.hook} priority ${c.priority}; policy accept;`);
    for (const r of c.rules) lines.push(`\t\t${r}`);
    lines.push('\t}');
  }
  lines.push('}', '');
  return { chains, digest, script: lines.join('\n') };
}

/** Reads one object of an `nft -j` listing's `nftables` array. */
function entries(listing: unknown, kind: 'chain' | 'rule'): Record<string, unknown>[] {
  const list = (listing as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(list)) return [];
  return list
    .map((e) => (e && typeof e === 'object' ? (e as Record<string, unknown>)[kind] : undefined))
    .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object');
}

/**
 * Compares an `nft -j list table inet tenant-dns-capture` listing with the
 * rules `expected` describes: every base chain with its type, hook and
 * priority, and in each chain exactly the expected rules in order, by their
 * comments (which carry the digest of the options). Returns the problems,
 * none when the rules are in place. A rule's statement is not re-parsed: only
 * a process with CAP_NET_ADMIN in the pod could have changed one, and the app
 * containers have none.
 */
export function checkListing(listing: unknown, expected: CaptureRuleset): string[] {
  const problems: string[] = [];
  const ours = (e: Record<string, unknown>) => e.family === CAPTURE_TABLE.family && e.table === CAPTURE_TABLE.name;
  const chains = entries(listing, 'chain').filter(ours);
  const rules = entries(listing, 'rule').filter(ours);
  // Rules installed for other options carry another digest: say that once, then compare what the rules do.
  const digests = new Set(rules.map((r) => DIGEST_OF_COMMENT.exec(String(r.comment ?? ''))?.[1]).filter((d) => d !== undefined));
  const others = [...digests].filter((d) => d !== expected.digest);
  if (others.length > 0) problems.push(`rules installed for other options (digest ${others.join(', ')}; these options give ${expected.digest})`);
  const what = (comment: string) => comment.replace(DIGEST_OF_COMMENT, '');
  for (const want of expected.chains) {
    const have = chains.find((c) => c.name === want.name);
    if (!have) {
      problems.push(`chain ${want.name} is missing`);
      continue;
    }
    if (have.type !== want.type || have.hook !== want.hook || have.prio !== want.priority) {
      problems.push(`chain ${want.name} is type ${String(have.type)} hook ${String(have.hook)} priority ${String(have.prio)}, expected type ${want.type} hook ${want.hook} priority ${want.priority}`);
    }
    const comments = rules.filter((r) => r.chain === want.name).map((r) => (typeof r.comment === 'string' ? r.comment : '(no comment)'));
    if (comments.map(what).join('\n') !== want.comments.map(what).join('\n')) {
      problems.push(`chain ${want.name} holds [${comments.map(what).join('; ')}], expected [${want.comments.map(what).join('; ')}]`);
    }
  }
  const extra = chains.filter((c) => !expected.chains.some((w) => w.name === c.name)).map((c) => String(c.name));
  if (extra.length > 0) problems.push(`unexpected chains: ${extra.join(', ')}`);
  return problems;
}
