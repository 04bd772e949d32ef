/**
 * The machinery of the differential conformance suite
 * (test/interop/differential.test.ts): the question set (names × types ×
 * header and EDNS bits × transports, generated in one fixed order), the
 * comparison of the sidecar's reply with each reference's, and the sorting
 * of the differences found into accepted ones (each with a written reason),
 * known deviations (an issue item each, reported as todo) and unexpected ones.
 */
import type { DnsSession } from './dns-sessions.ts';
import { buildQuery, flagText, readReply, FLAG_BITS, type FlagName, type QuerySpec, type RecordView, type ReplyView } from './dns-wire.ts';

/** How a question reaches a server: plain UDP, plain TCP, or DNS over TLS (for the sidecar: TCP to it, DoT on its upstream leg). */
export type Transport = 'udp' | 'tcp' | 'dot';

/** The servers every question goes to. */
export type Who = 'sidecar' | 'unbound' | 'dnsdist';

/** What the sidecar's reply is compared against: a reference server, or the RFCs alone (bounds no reference is needed for). */
export type Against = 'unbound' | 'dnsdist' | 'rfc';

/** The header and EDNS bits of a query. */
export interface QueryBits {
  readonly edns: boolean;
  /** DO; only with EDNS. */
  readonly do: boolean;
  readonly ad: boolean;
  readonly cd: boolean;
  readonly rd: boolean;
}

/** A question of the suite: a name, a type, and what it exercises. */
export interface Question {
  readonly name: string;
  readonly type: string;
  readonly what: string;
}

/** One query of the suite. */
export interface Case {
  /** `transport name TYPE bits`, e.g. `udp www.conformance.test A edns do rd`. */
  readonly id: string;
  readonly question: Question;
  readonly bits: QueryBits;
  readonly transport: Transport;
  /** The query (the session writes its own ID). */
  readonly query: QuerySpec;
  /** The largest reply the client accepts over this transport: its UDP size, or 65 535 on a stream. */
  readonly limit: number;
}

/**
 * Every combination of the bits: without EDNS AD × CD × RD (8), with EDNS
 * DO × AD × CD × RD (16). RD=1 first, so that the servers' caches hold a
 * name before the RD=0 queries for it come (a recursive server answers RD=0
 * from its cache only).
 */
export function bitCombinations(): QueryBits[] {
  const out: QueryBits[] = [];
  for (const rd of [true, false]) {
    for (const edns of [false, true]) {
      for (const dnssecOk of edns ? [false, true] : [false]) {
        for (const ad of [false, true]) for (const cd of [false, true]) out.push({ edns, do: dnssecOk, ad, cd, rd });
      }
    }
  }
  return out;
}

/** The bits as text: `edns do ad cd rd` with the ones set, `-` for none. */
export function bitsText(b: QueryBits): string {
  const parts = [b.edns ? 'edns' : 'noedns', b.do ? 'do' : '', b.ad ? 'ad' : '', b.cd ? 'cd' : '', b.rd ? 'rd' : 'nord'].filter(Boolean);
  return parts.join(' ');
}

/** The query for a question with `bits`: an EDNS UDP size of 1232 when EDNS is on. */
export function querySpec(q: Question, bits: QueryBits): QuerySpec {
  return { name: q.name, type: q.type, rd: bits.rd, ad: bits.ad, cd: bits.cd, edns: bits.edns ? { udpSize: 1232, do: bits.do } : false };
}

/** The cases for `questions` × every bit combination × `transports`, in that nesting order (transport outermost). */
export function generateCases(questions: readonly Question[], transports: readonly Transport[]): Case[] {
  const out: Case[] = [];
  for (const transport of transports) {
    for (const question of questions) {
      for (const bits of bitCombinations()) {
        const query = querySpec(question, bits);
        out.push({
          id: caseKey({ transport, question, bits }),
          question,
          bits,
          transport,
          query,
          limit: transport === 'udp' ? (bits.edns ? 1232 : 512) : 65_535,
        });
      }
    }
  }
  return out;
}

/** The replies to one case, read, or the error text when a server gave none. */
export interface Observation {
  readonly c: Case;
  readonly replies: Readonly<Record<Who, ReplyView | string>>;
  /** Seconds since the suite started, when the case was asked. */
  readonly atSec: number;
}

/** The sessions to ask each server over each transport. */
export type Sessions = Readonly<Record<Transport, Readonly<Record<Who, DnsSession>>>>;

/**
 * Asks each case of `cases` of unbound, then dnsdist, then the sidecar, one
 * case at a time (so the caches of all three see the questions in the same
 * order), and reads the replies.
 */
export async function observe(cases: readonly Case[], sessions: Sessions, startedAt: number): Promise<Observation[]> {
  const out: Observation[] = [];
  for (const c of cases) {
    const wire = buildQuery(c.query);
    const replies = {} as Record<Who, ReplyView | string>;
    const atSec = (performance.now() - startedAt) / 1000;
    for (const who of ['unbound', 'dnsdist', 'sidecar'] as const) {
      try {
        replies[who] = readReply(await sessions[c.transport][who].query(wire, 3000));
      } catch (err) {
        replies[who] = `no reply: ${(err as Error).message}`;
      }
    }
    out.push({ c, replies, atSec });
  }
  return out;
}

/** One way the sidecar's reply to a case differs from a reference's (or breaks a bound). */
export interface Difference {
  readonly obs: Observation;
  readonly against: Against;
  /** What differs: `reply`, `rcode`, `opcode`, `flag AD`, `question`, `answer`, `authority`, `additional`, `opt`, `opt DO`, `ede`, `ttl`, `ttl bound`, `size`. */
  readonly aspect: string;
  readonly sidecar: string;
  readonly reference: string;
  /** The reference reply the sidecar's was compared with (a twin's for {@link RD0_FROM_CACHE}); none for `rfc` and `reply`. */
  readonly compared?: ReplyView;
}

/** What the comparison knows besides the replies. */
export interface CompareContext {
  /** The largest TTL the zone gives a record (its RRset's TTL in the zone file). */
  ttlBound(r: RecordView): number;
  /** Seconds two servers' TTLs for one record may differ by (each server counts down from when it cached it). */
  readonly ttlSlackSec: number;
  /** The observation of the same question with the same bits but RD=1, over the same transport (see {@link differences}). */
  twin?(obs: Observation): Observation | undefined;
}

const keys = (records: readonly RecordView[]) => new Set(records.map((r) => r.key));

function setDiff(a: Set<string>, b: Set<string>): { extra: string[]; missing: string[] } {
  return { extra: [...a].filter((k) => !b.has(k)).sort(), missing: [...b].filter((k) => !a.has(k)).sort() };
}

/** Short text of a set difference for a table: what the sidecar has more, and less. */
function setText(d: { extra: string[]; missing: string[] }): { sidecar: string; reference: string } {
  const cut = (l: string[]) => (l.length > 3 ? `${l.slice(0, 3).join(' | ')} | …(${l.length})` : l.join(' | '));
  return { sidecar: d.extra.length ? `+ ${cut(d.extra)}` : '', reference: d.missing.length ? `+ ${cut(d.missing)}` : '' };
}

const edeText = (v: ReplyView) => (v.opt ? v.opt.ede.map((e) => e.code).sort((a, b) => a - b).join(',') : '');

/** One aspect in which two replies differ: what it is, and each reply's side of it. */
export interface ViewDifference {
  /** `rcode`, `opcode`, `flag AD`, `question`, `answer`, `authority`, `additional`, `ttl`, `opt`, `opt DO`, `ede`. */
  readonly aspect: string;
  readonly ours: string;
  readonly theirs: string;
}

/**
 * The differences between two replies read for comparison: rcode, opcode,
 * each header flag, the question, the record sets of each section (order
 * and name case aside), TTLs apart by more than `ttlSlackSec`, the OPT
 * record's presence and DO bit, and the Extended DNS Error codes.
 */
export function viewDifferences(s: ReplyView, r: ReplyView, ttlSlackSec: number): ViewDifference[] {
  const out: ViewDifference[] = [];
  const add = (aspect: string, ours: string, theirs: string) => out.push({ aspect, ours, theirs });
  if (s.rcode !== r.rcode) add('rcode', String(s.rcode), String(r.rcode));
  if (s.opcode !== r.opcode) add('opcode', String(s.opcode), String(r.opcode));
  for (const f of Object.keys(FLAG_BITS) as FlagName[]) if (s.flags[f] !== r.flags[f]) add(`flag ${f}`, String(s.flags[f]), String(r.flags[f]));
  if (s.questions.join(' | ') !== r.questions.join(' | ')) add('question', s.questions.join(' | '), r.questions.join(' | '));
  for (const section of ['answer', 'authority', 'additional'] as const) {
    const d = setDiff(keys(s[section]), keys(r[section]));
    if (d.extra.length || d.missing.length) {
      const text = setText(d);
      add(section, text.sidecar, text.reference);
    }
  }
  const theirs = new Map([...r.answer, ...r.authority, ...r.additional].map((x) => [x.key, x.ttl]));
  for (const x of [...s.answer, ...s.authority, ...s.additional]) {
    const t = theirs.get(x.key);
    if (t !== undefined && Math.abs(t - x.ttl) > ttlSlackSec) add('ttl', `${x.key} ttl ${x.ttl}`, `ttl ${t}`);
  }
  if (!!s.opt !== !!r.opt) add('opt', s.opt ? 'OPT' : 'no OPT', r.opt ? 'OPT' : 'no OPT');
  else if (s.opt && r.opt && s.opt.do !== r.opt.do) add('opt DO', String(s.opt.do), String(r.opt.do));
  if (edeText(s) !== edeText(r)) add('ede', edeText(s) || 'none', edeText(r) || 'none');
  return out;
}

/** The differences between the sidecar's reply `s` and a reference's reply `r` to one case. */
function compareReplies(obs: Observation, against: Against, s: ReplyView, r: ReplyView, ctx: CompareContext): Difference[] {
  return viewDifferences(s, r, ctx.ttlSlackSec).map((d) => ({ obs, against, aspect: d.aspect, sidecar: d.ours, reference: d.theirs, compared: r }));
}

/** The aspect of the difference that says an RD=0 query was compared with the reference's RD=1 answer. */
export const RD0_FROM_CACHE = 'RD=0 answered from cache';

/**
 * The differences of one observation: the sidecar against each reference,
 * and against the RFC bounds (UDP size, TTL at most the zone's).
 *
 * An RD=0 query the reference refused and the sidecar answered (from its
 * cache: it forwards RD=0 as it came) is one difference, aspect
 * {@link RD0_FROM_CACHE}; the sidecar's answer is then compared with the
 * reference's answer to the same query with RD=1 (`ctx.twin`), RD cleared,
 * so that what the cache gave (AD, records, TTLs) is still checked.
 */
export function differences(obs: Observation, ctx: CompareContext): Difference[] {
  const out: Difference[] = [];
  const s = obs.replies.sidecar;
  const add = (against: Against, aspect: string, sidecar: string, reference: string) => out.push({ obs, against, aspect, sidecar, reference });
  if (typeof s !== 'string') {
    if (obs.c.transport === 'udp' && s.size > obs.c.limit) add('rfc', 'size', `${s.size} bytes`, `at most ${obs.c.limit}`);
    for (const r of [...s.answer, ...s.authority, ...s.additional]) {
      const bound = ctx.ttlBound(r);
      if (r.ttl > bound) add('rfc', 'ttl bound', `${r.key} ttl ${r.ttl}`, `at most ${bound}`);
    }
  }
  for (const against of ['unbound', 'dnsdist'] as const) {
    let r = obs.replies[against];
    if (typeof s === 'string' || typeof r === 'string') {
      if (typeof s !== typeof r) add(against, 'reply', typeof s === 'string' ? s : 'a reply', typeof r === 'string' ? r : 'a reply');
      continue;
    }
    if (!obs.c.bits.rd && r.rcode === 5 && s.rcode !== 5) {
      const twin = ctx.twin?.(obs)?.replies[against];
      if (twin !== undefined && typeof twin !== 'string') {
        add(against, RD0_FROM_CACHE, `rcode ${s.rcode}`, 'rcode 5, compared with its RD=1 answer');
        r = { ...twin, flags: { ...twin.flags, RD: false } };
      }
    }
    out.push(...compareReplies(obs, against, s, r, ctx));
  }
  return out;
}

/** A case's key in an index of observations: transport, question and bits. */
export function caseKey(c: Pick<Case, 'transport' | 'question' | 'bits'>): string {
  return `${c.transport} ${c.question.name} ${c.question.type} ${bitsText(c.bits)}`;
}

/** The key of a case's RD=1 twin: the same transport, question and bits, but RD. */
export function twinKey(c: Case): string {
  return caseKey({ ...c, bits: { ...c.bits, rd: true } });
}

/**
 * The largest TTL the zone gives `r`: its RRset's TTL in `ttls` (see
 * SignedZone), a wildcard's for a name it expands to, else the largest TTL
 * of the zone (records a resolver synthesizes, such as a DNAME's CNAME).
 */
export function zoneTtlBound(ttls: ReadonlyMap<string, number>): (r: RecordView) => number {
  const largest = Math.max(...ttls.values());
  return (r) => {
    const type = r.type === 'RRSIG' ? `RRSIG ${r.covers}` : r.type;
    const direct = ttls.get(`${r.owner}/${type}`);
    if (direct !== undefined) return direct;
    const labels = r.owner.split('.');
    for (let i = 1; i < labels.length; i++) {
      const wild = ttls.get(`*.${labels.slice(i).join('.')}/${type}`);
      if (wild !== undefined) return wild;
    }
    return largest;
  };
}

/** A rule that matches differences: an accepted difference with its reason, or a known deviation. */
export interface Rule {
  /** Short name, unique in its table. */
  readonly name: string;
  /** Why the difference is right, or what the deviation is (and where it is tracked). */
  readonly reason: string;
  matches(d: Difference): boolean;
}

/** A deviation the suite finds that is not fixed yet: its test is marked todo with `todo`. */
export interface KnownDeviation extends Rule {
  /** node:test's todo text, naming the issue item. */
  readonly todo: string;
}

/** The differences sorted by the rule that explains them; known deviations are matched first. */
export interface Classified {
  readonly known: ReadonlyMap<KnownDeviation, Difference[]>;
  readonly accepted: ReadonlyMap<Rule, Difference[]>;
  readonly unexpected: readonly Difference[];
}

/** Sorts `diffs` by the first rule of `known`, then of `accepted`, that matches each. */
export function classify(diffs: readonly Difference[], accepted: readonly Rule[], known: readonly KnownDeviation[]): Classified {
  const k = new Map<KnownDeviation, Difference[]>(known.map((r) => [r, []]));
  const a = new Map<Rule, Difference[]>(accepted.map((r) => [r, []]));
  const unexpected: Difference[] = [];
  for (const d of diffs) {
    const kr = known.find((r) => r.matches(d));
    if (kr) {
      k.get(kr)!.push(d);
      continue;
    }
    const ar = accepted.find((r) => r.matches(d));
    if (ar) a.get(ar)!.push(d);
    else unexpected.push(d);
  }
  return { known: k, accepted: a, unexpected };
}

/** One line per difference (at most `limit`, then a count), for assertion messages. */
export function table(diffs: readonly Difference[], limit = 40): string {
  const lines = diffs.slice(0, limit).map((d) => {
    const s = d.obs.replies.sidecar;
    const flags = typeof s === 'string' ? '' : ` [${flagText(s)} rcode ${s.rcode}]`;
    return `${d.obs.c.id} vs ${d.against}: ${d.aspect}: sidecar ${d.sidecar || '-'}${flags} / ${d.against} ${d.reference || '-'}`;
  });
  if (diffs.length > limit) lines.push(`… and ${diffs.length - limit} more`);
  return lines.join('\n');
}
