/**
 * `npm run bench`: tenant-dns against the Node ceiling and real DNS servers
 * (unbound, dnsdist, knot-resolver, dnsmasq) as caching forwarders, in one
 * run, on this machine (issue 7); and `tenant-dns gateway` against nsd serving
 * the same zone (issue 20). See test/bench/README.md for how to read it.
 *
 * Run:   node test/bench/run.ts [--smoke] [--rounds N] [--seconds S] [--systems a,b] [--no-tls] [--no-memory] [--out DIR] [--app DIR]
 *        --app: tenant-dns from a bundle built before (deploy/scripts/bundle.sh DIR, e.g. of an older commit).
 * Output: a markdown table on stdout and in DIR/latest.md (smoke: smoke.md),
 *         the figures and ratios in DIR/latest.json (smoke: smoke.json).
 *         DIR defaults to test/bench/results (git-ignored).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDnsperf, type DnsperfResult } from '../helpers/dnsperf.ts';
import { extendedError, queryUdp } from '../helpers/dns-client.ts';
import {
  BENCH_POLICY_DENIED,
  benchPolicy,
  cpuSeconds,
  HOT_ZONE,
  memoryKiB,
  MISS_ZONE,
  sidecarFlags,
  startAuthoritative,
  startCeiling,
  startForwarder,
  startDnsdist,
  startDnsmasq,
  startKresd,
  startTenantDns,
  startUnboundForwarder,
  GATEWAY_ZONE,
  gatewayBenchData,
  startGatewayServer,
  startNsdServer,
  type Authoritative,
  type BenchServer,
  type StartOptions,
  type Transport,
  type UpstreamInfo,
} from '../helpers/peers.ts';
import { testPki } from '../helpers/tls.ts';
import { rotate } from '../helpers/variants.ts';
import { CEILING_SYSTEM, marginalMemory, MEMORY_PEERS, memoryTable, tenantDnsSystem, type MemoryResults } from './memory.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// ---------------------------------------------------------------- options

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    systems: { type: 'string' },
    'no-tls': { type: 'boolean', default: false },
    out: { type: 'string' },
    app: { type: 'string' },
    'no-memory': { type: 'boolean', default: false },
  },
});
const SMOKE = flags.smoke!;
const ROUNDS = Number(flags.rounds ?? (SMOKE ? 1 : 3));
/** Seconds of each load run. */
const SECONDS = Number(flags.seconds ?? (SMOKE ? 1 : 4));
/** The fixed rate of the latency and CPU runs. */
const FIXED_QPS = SMOKE ? 1000 : 5000;
const HOT_NAMES = 100;
const ZONE_NAMES = 5000;
const OUT_DIR = flags.out ?? join(ROOT, 'test/bench/results');
const OUT_BASE = SMOKE ? 'smoke' : 'latest';
/** The CPUs this process may use, read before it pins itself to one (pinSelf). */
const CPUS = availableParallelism();
/** The server on one core; the load generator, the authoritative and this process on the other. */
const PIN = CPUS >= 2;
const SERVER_CPU = PIN ? '0' : undefined;
const LOAD_CPU = PIN ? '1' : undefined;

/**
 * This process on the load CPU too, every thread of it: it reads dnsperf's per-query lines (5,000 a second in
 * the latency runs) and samples memory and CPU, and left to the scheduler it ran on the server's CPU as often as
 * not, where each of its turns delayed the queries the server had waiting. The servers are started under
 * `taskset -c 0` and dnsperf and the authoritative under `taskset -c 1`; what it starts without taskset
 * inherits CPU 1. Returns whether it is pinned.
 */
function pinSelf(): boolean {
  if (LOAD_CPU === undefined) return false;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false; // no taskset: measured unpinned, and the report's header says so
  }
}
const SELF_PINNED = pinSelf();
/** Wall-clock cap of the whole run; past it, remaining runs are skipped and reported. */
const BUDGET_MS = (SMOKE ? 4 : 14) * 60_000;
const started = Date.now();

// ---------------------------------------------------------------- systems

/**
 * ceiling: the Node limit of the hot path (hits); floor: the least a Node forwarder does per miss
 * (test/bench/forwarder.ts), run for the miss workloads only (over UDP, and over DoT in the
 * forwarding-over-TLS workload); reference: the upstream itself.
 */
type Kind = 'ceiling' | 'floor' | 'ours' | 'peer' | 'reference';

interface SystemDef {
  readonly name: string;
  readonly kind: Kind;
  start(up: UpstreamInfo, opts: StartOptions): Promise<BenchServer>;
}

/** tenant-dns as the bench runs it: with the bench's tenant policy (benchPolicy). */
function startOurs(up: UpstreamInfo, o: StartOptions & { transport?: Transport }): Promise<BenchServer> {
  return startTenantDns(up, { ...o, app: flags.app, extraArgs: ['--policy', benchPolicy()] });
}

const ALL_SYSTEMS: readonly SystemDef[] = [
  { name: 'node-ceiling', kind: 'ceiling', start: (_up, o) => startCeiling(o) },
  { name: 'node-forwarder', kind: 'floor', start: (up, o) => startForwarder(up, o) },
  { name: 'tenant-dns', kind: 'ours', start: (up, o) => startOurs(up, o) },
  { name: 'unbound', kind: 'peer', start: (up, o) => startUnboundForwarder(up, o) },
  { name: 'dnsdist', kind: 'peer', start: (up, o) => startDnsdist(up, o) },
  { name: 'kresd', kind: 'peer', start: (up, o) => startKresd(up, o) },
  { name: 'dnsmasq', kind: 'peer', start: (up, o) => startDnsmasq(up, o) },
];
const SYSTEMS = flags.systems ? ALL_SYSTEMS.filter((s) => flags.systems!.split(',').includes(s.name)) : ALL_SYSTEMS;

/** Forwarding over TLS: which systems can, per transport. */
const TLS_SYSTEMS: readonly { name: string; kind: Kind; transport: Transport; start(up: UpstreamInfo, o: StartOptions): Promise<BenchServer> }[] = [
  { name: 'tenant-dns', kind: 'ours', transport: 'dot', start: (up, o) => startOurs(up, { ...o, transport: 'dot' }) },
  { name: 'node-forwarder', kind: 'floor', transport: 'dot', start: (up, o) => startForwarder(up, { ...o, transport: 'dot' }) },
  { name: 'unbound', kind: 'peer', transport: 'dot', start: (up, o) => startUnboundForwarder(up, { ...o, transport: 'dot' }) },
  { name: 'dnsdist', kind: 'peer', transport: 'dot', start: (up, o) => startDnsdist(up, { ...o, transport: 'dot' }) },
  { name: 'kresd', kind: 'peer', transport: 'dot', start: (up, o) => startKresd(up, { ...o, transport: 'dot' }) },
  { name: 'tenant-dns', kind: 'ours', transport: 'doh', start: (up, o) => startOurs(up, { ...o, transport: 'doh' }) },
  { name: 'dnsdist', kind: 'peer', transport: 'doh', start: (up, o) => startDnsdist(up, { ...o, transport: 'doh' }) },
];

// ---------------------------------------------------------------- metrics

type Better = 'higher' | 'lower';

interface MetricDef {
  readonly id: string;
  readonly label: string;
  /** Column header in the markdown tables. */
  readonly column: string;
  readonly unit: string;
  readonly better: Better;
  /** Digits after the point in the table. */
  readonly digits: number;
}

const METRICS: readonly MetricDef[] = [
  { id: 'hit_sat_qps', column: 'hits QPS', label: 'cache hits at saturation (100 names), QPS', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'hit_sat_cpu', column: 'hits CPU %', label: 'cache hits at saturation, server CPU % of a core', unit: '%', better: 'lower', digits: 0 },
  { id: 'hit_sat_per_core', column: 'hits QPS per core', label: 'cache hits at saturation, QPS per core-second of server CPU', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'hit_sat_lost', column: 'hits lost %', label: 'cache hits at saturation, lost %', unit: '%', better: 'lower', digits: 2 },
  { id: 'hit_fixed_p50', column: 'p50 ms', label: `hits at ${FIXED_QPS} QPS, p50 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'hit_fixed_p99', column: 'p99 ms', label: `hits at ${FIXED_QPS} QPS, p99 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'hit_fixed_p999', column: 'p99.9 ms', label: `hits at ${FIXED_QPS} QPS, p99.9 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'hit_fixed_cpu', column: 'CPU % of a core', label: `hits at ${FIXED_QPS} QPS, server CPU % of a core`, unit: '%', better: 'lower', digits: 1 },
  { id: 'miss_fixed_p50', column: 'p50 ms', label: `misses at ${FIXED_QPS} QPS, p50 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'miss_fixed_p99', column: 'p99 ms', label: `misses at ${FIXED_QPS} QPS, p99 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'miss_fixed_p999', column: 'p99.9 ms', label: `misses at ${FIXED_QPS} QPS, p99.9 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'miss_fixed_cpu', column: 'CPU % of a core', label: `misses at ${FIXED_QPS} QPS, server CPU % of a core`, unit: '%', better: 'lower', digits: 1 },
  { id: 'miss_added_p50', column: 'added p50 ms vs upstream', label: 'misses: added p50 ms vs the upstream direct', unit: 'ms', better: 'lower', digits: 3 },
  { id: 'miss_added_p99', column: 'added p99 ms vs upstream', label: 'misses: added p99 ms vs the upstream direct', unit: 'ms', better: 'lower', digits: 3 },
  { id: 'miss_sat_qps', column: 'misses QPS', label: 'misses at saturation (unique names), QPS', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'miss_sat_cpu', column: 'misses CPU %', label: 'misses at saturation, server CPU % of a core', unit: '%', better: 'lower', digits: 0 },
  { id: 'miss_sat_per_core', column: 'misses QPS per core', label: 'misses at saturation, QPS per core-second of server CPU', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'miss_sat_lost', column: 'misses lost %', label: 'misses at saturation, lost %', unit: '%', better: 'lower', digits: 2 },
  { id: 'start_ms', column: 'start to first answer ms', label: 'start to first answer, ms', unit: 'ms', better: 'lower', digits: 0 },
  { id: 'idle_rss_mib', column: 'idle RSS MiB', label: 'idle RSS, MiB', unit: 'MiB', better: 'lower', digits: 1 },
  { id: 'peak_rss_mib', column: 'peak RSS MiB', label: 'peak RSS (VmHWM) after the saturation runs, MiB', unit: 'MiB', better: 'lower', digits: 1 },
  { id: 'dot_miss_sat_qps', column: 'DoT misses QPS', label: 'DoT forwarding, misses at saturation, QPS', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'doh_miss_sat_qps', column: 'DoH misses QPS', label: 'DoH forwarding, misses at saturation, QPS', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'gw_sat_qps', column: 'QPS at saturation', label: 'authoritative answers at saturation, QPS', unit: 'qps', better: 'higher', digits: 0 },
  { id: 'gw_sat_lost', column: 'lost %', label: 'authoritative answers at saturation, lost %', unit: '%', better: 'lower', digits: 2 },
  { id: 'gw_fixed_p50', column: `p50 ms at ${FIXED_QPS} QPS`, label: `authoritative answers at ${FIXED_QPS} QPS, p50 ms`, unit: 'ms', better: 'lower', digits: 3 },
  { id: 'gw_fixed_p99', column: `p99 ms at ${FIXED_QPS} QPS`, label: `authoritative answers at ${FIXED_QPS} QPS, p99 ms`, unit: 'ms', better: 'lower', digits: 3 },
];

/** The authoritative comparison: tenant-dns gateway and nsd, serving the same zone (gatewayWorkloads). */
const GATEWAY = 'tenant-dns gateway';
const NSD = 'nsd';
const RUN_GATEWAY = !flags.systems || flags.systems.split(',').includes('gateway');

/** samples[metric][system] */
const samples = new Map<string, Map<string, number[]>>();
const notes: string[] = [];
const errors = new Map<string, string>();

function record(metric: string, system: string, value: number): void {
  if (!Number.isFinite(value)) return;
  let bySystem = samples.get(metric);
  if (!bySystem) samples.set(metric, (bySystem = new Map()));
  let list = bySystem.get(system);
  if (!list) bySystem.set(system, (list = []));
  list.push(value);
}

function log(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${msg}\n`);
}

function overBudget(): boolean {
  return Date.now() - started > BUDGET_MS;
}

// ---------------------------------------------------------------- query files

const work = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-'));
process.once('exit', () => rmSync(work, { recursive: true, force: true }));

function writeQueries(file: string, names: Iterable<string>): string {
  const path = join(work, file);
  const lines: string[] = [];
  for (const n of names) lines.push(`${n} A`);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

function* hotNames(): Generator<string> {
  for (let i = 0; i < HOT_NAMES; i++) yield `h${i}.${HOT_ZONE}`;
}

/** Unique names under the miss zone, `count` of them, prefixed so no two files share one. */
function* uniqueNames(prefix: string, count: number): Generator<string> {
  for (let i = 0; i < count; i++) yield `${prefix}${i}.${MISS_ZONE}`;
}

const HOT_FILE = writeQueries('hot.txt', hotNames());
/** Enough unique names that even the ceiling does not run out before the time limit. */
const SAT_NAMES = SECONDS * (SMOKE ? 150_000 : 130_000);
const FIXED_NAMES = Math.ceil(SECONDS * FIXED_QPS * 1.2);

// ---------------------------------------------------------------- workloads

async function dnsperf(port: number, o: { file: string; qps?: number; latencies?: boolean; once?: boolean; seconds?: number }): Promise<DnsperfResult> {
  return runDnsperf({
    port,
    queryFile: o.file,
    seconds: o.seconds ?? SECONDS,
    qps: o.qps,
    latencies: o.latencies,
    maxRuns: o.once ? 1 : undefined,
    cpu: LOAD_CPU,
  });
}

/** Runs `fn` while measuring the server's CPU; returns its result and the CPU as % of one core over the run. */
async function withCpu<T extends { runSeconds: number }>(pid: number, fn: () => Promise<T>): Promise<[T, number]> {
  const before = cpuSeconds(pid);
  const r = await fn();
  const used = cpuSeconds(pid) - before;
  return [r, (used / r.runSeconds) * 100];
}

/** Answers every hot name once so the hit runs measure hits. */
async function warm(port: number): Promise<void> {
  await dnsperf(port, { file: HOT_FILE, once: true, seconds: 5 });
}

interface RoundFiles {
  readonly missFixed: string;
  readonly missSat: string;
}

/** Notes a run whose answers are not (almost) all NOERROR: the system would be measured doing something else. */
function checkAnswers(system: string, what: string, r: DnsperfResult): void {
  const ok = r.rcodes['NOERROR'] ?? 0;
  if (r.completed > 0 && ok < r.completed * 0.99) notes.push(`${system}, ${what}: only ${ok} of ${r.completed} answers NOERROR (${JSON.stringify(r.rcodes)})`);
}

/**
 * Throws unless the sidecar denies a name of the bench's policy (benchPolicy) by that policy's rule: the
 * run must measure a sidecar with it. NXDOMAIN alone could come from the upstream; EDE 15 naming the rule
 * comes from the policy only.
 */
async function checkPolicyApplied(server: BenchServer): Promise<void> {
  const { name, rule } = BENCH_POLICY_DENIED;
  const reply = await queryUdp('127.0.0.1', server.port, { name, type: 'A' });
  const ede = extendedError(reply);
  if (reply.rcode !== 'NXDOMAIN' || ede?.code !== 15 || !ede.text.includes(rule)) {
    throw new Error(`the bench policy is not applied: ${name} got ${reply.rcode}${ede ? ` (EDE ${ede.code} "${ede.text}")` : ''}, not NXDOMAIN with EDE 15 naming ${rule}`);
  }
}

/** Load at saturation: QPS, CPU, QPS per core and losses under `<kind>_sat_*`. */
async function saturation(name: string, server: BenchServer, kind: 'hit' | 'miss', opts: Parameters<typeof dnsperf>[1]): Promise<void> {
  const what = `${kind === 'hit' ? 'hits' : 'misses'} at saturation`;
  const [sat, cpu] = await withCpu(server.pid, () => dnsperf(server.port, opts));
  checkAnswers(name, what, sat);
  record(`${kind}_sat_qps`, name, sat.okQps);
  record(`${kind}_sat_cpu`, name, cpu);
  record(`${kind}_sat_per_core`, name, sat.okQps / (cpu / 100));
  record(`${kind}_sat_lost`, name, (sat.lost / Math.max(1, sat.sent)) * 100);
  log(`${name} ${what}: ${sat.qps.toFixed(0)} QPS, lost ${sat.lost}, CPU ${cpu.toFixed(0)}%`);
}

/** Load at FIXED_QPS: latency percentiles under `<kind>_fixed_*`, and CPU unless the system is a reference. */
async function fixedRate(sys: SystemDef, server: BenchServer, kind: 'hit' | 'miss', opts: Parameters<typeof dnsperf>[1]): Promise<void> {
  const name = sys.name;
  const what = `${kind === 'hit' ? 'hits' : 'misses'} at ${FIXED_QPS} QPS`;
  const [r, cpu] = await withCpu(server.pid, () => dnsperf(server.port, { ...opts, qps: FIXED_QPS, latencies: true }));
  checkAnswers(name, what, r);
  record(`${kind}_fixed_p50`, name, r.p50Ms!);
  record(`${kind}_fixed_p99`, name, r.p99Ms!);
  record(`${kind}_fixed_p999`, name, r.p999Ms!);
  if (sys.kind !== 'reference') record(`${kind}_fixed_cpu`, name, cpu);
  log(`${name} ${what}: p50 ${r.p50Ms!.toFixed(3)} p99 ${r.p99Ms!.toFixed(3)} ms, CPU ${cpu.toFixed(1)}%`);
}

async function udpWorkloads(sys: SystemDef, server: BenchServer, files: RoundFiles): Promise<void> {
  if (sys.kind === 'floor') {
    // No cache: every query is a miss, so only the miss workloads say anything of it.
    await fixedRate(sys, server, 'miss', { file: files.missFixed, once: true });
    await saturation(sys.name, server, 'miss', { file: files.missSat, once: true });
    return;
  }
  if (sys.kind !== 'reference') {
    await warm(server.port);
    await saturation(sys.name, server, 'hit', { file: HOT_FILE });
  }
  await warm(server.port);
  await fixedRate(sys, server, 'hit', { file: HOT_FILE });
  await fixedRate(sys, server, 'miss', { file: files.missFixed, once: true });
  if (sys.kind !== 'reference') await saturation(sys.name, server, 'miss', { file: files.missSat, once: true });
}

/** A fresh process per sample: start to first answer, then its RSS after a second of idling. */
async function startupSample(sys: SystemDef, up: UpstreamInfo): Promise<void> {
  const server = await tracked(sys.start(up, { cpu: SERVER_CPU }));
  try {
    record('start_ms', sys.name, server.startMs);
    await new Promise((r) => setTimeout(r, SMOKE ? 300 : 1000));
    record('idle_rss_mib', sys.name, memoryKiB(server.pid).rss / 1024);
  } finally {
    await server.stop();
  }
}

/** Busy CPUs (in cores) over `ms` from /proc/stat: with nothing of ours running, the load of other processes. */
async function busyCores(ms: number): Promise<number> {
  const read = (): [number, number] => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return [f.reduce((a, b) => a + b, 0) - idle, idle];
  };
  const [b0] = read();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const [b1] = read();
  return (b1 - b0) / 100 / ((performance.now() - t0) / 1000);
}

/** Processes per system in the marginal memory section. */
const MEMORY_COUNT = SMOKE ? 2 : 10;
/** The marginal memory section's readings, once run. */
let memory: MemoryResults | undefined;

/** Background load sampled before each round and before the start-up samples, in cores. */
const background: number[] = [];

/** Every server process alive, so an interrupted run stops them all. */
const live = new Set<BenchServer>();

async function tracked(p: Promise<BenchServer>): Promise<BenchServer> {
  const server = await p;
  live.add(server);
  const stop = server.stop;
  return { ...server, stop: async () => { live.delete(server); await stop(); } };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping ${live.size} server(s)`);
    void Promise.allSettled([...live].map((s) => s.stop())).then(() => process.exit(130));
  });
}

function sidecarHasTlsFlags(): boolean {
  try {
    const flags = sidecarFlags();
    return flags.has('--upstream-ca') && flags.has('--bootstrap');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  log(`tenant-dns bench: ${SMOKE ? 'SMOKE ' : ''}${ROUNDS} round(s), ${SECONDS} s per load run, systems ${SYSTEMS.map((s) => s.name).join(', ')}; ` +
    (PIN ? `servers on CPU 0, dnsperf, the authoritative and ${SELF_PINNED ? 'this process' : 'not this process (taskset failed)'} on CPU 1` : 'unpinned (fewer than 2 CPUs)'));
  const pki = testPki();
  const auth = (await tracked(startAuthoritative({
    cpu: LOAD_CPU,
    names: ZONE_NAMES,
    tls: { certFile: pki.good.certFile, keyFile: pki.good.keyFile, caFile: pki.caFile, name: 'dns.test' },
  }))) as Authoritative;
  const up = auth.upstream;
  const reference: SystemDef = { name: 'upstream (direct)', kind: 'reference', start: async () => auth };
  const running = new Map<string, BenchServer>();
  try {
    // Start-up and idle memory: fresh processes, one system at a time, nothing else under load.
    background.push(await busyCores(SMOKE ? 200 : 1000));
    for (let r = 0; r < ROUNDS && !overBudget(); r++) {
      for (const sys of rotate(SYSTEMS, r)) {
        if (sys.kind === 'floor') continue;
        try {
          await startupSample(sys, up);
        } catch (err) {
          errors.set(sys.name, (err as Error).message.slice(0, 300));
          log(`${sys.name} failed to start: ${(err as Error).message.slice(0, 300)}`);
        }
      }
    }
    log('start-up samples done');

    for (const sys of SYSTEMS) {
      try {
        const server = await tracked(sys.start(up, { cpu: SERVER_CPU }));
        if (sys.kind === 'ours') {
          // Not measured without its policy: stopped, and left out of the rounds.
          await checkPolicyApplied(server).catch(async (err: unknown) => {
            await server.stop();
            throw err;
          });
        }
        running.set(sys.name, server);
      } catch (err) {
        errors.set(sys.name, (err as Error).message.slice(0, 300));
      }
    }
    for (let r = 0; r < ROUNDS; r++) {
      background.push(await busyCores(SMOKE ? 200 : 1000));
      log(`round ${r + 1}: background load ${background.at(-1)!.toFixed(2)} cores`);
      const files: RoundFiles = {
        missFixed: writeQueries(`miss-fixed-${r}.txt`, uniqueNames(`f${r}-`, FIXED_NAMES)),
        missSat: writeQueries(`miss-sat-${r}.txt`, uniqueNames(`s${r}-`, SAT_NAMES)),
      };
      for (const sys of [...rotate(SYSTEMS, r), reference]) {
        const server = sys.kind === 'reference' ? auth : running.get(sys.name);
        if (!server) continue;
        if (overBudget()) {
          notes.push(`round ${r + 1}: ${sys.name} skipped, over the time budget`);
          continue;
        }
        try {
          await udpWorkloads(sys, server, files);
        } catch (err) {
          errors.set(sys.name, (err as Error).message.slice(0, 300));
          log(`${sys.name} round ${r + 1} failed: ${(err as Error).message.slice(0, 300)}`);
        }
      }
      for (const sys of SYSTEMS) {
        const server = running.get(sys.name);
        if (server) record('peak_rss_mib', sys.name, memoryKiB(server.pid).hwm / 1024);
      }
      // Added latency against the upstream itself, within the same round.
      for (const metric of ['p50', 'p99'] as const) {
        const direct = samples.get(`miss_fixed_${metric}`)?.get(reference.name)?.[r];
        if (direct === undefined) continue;
        for (const sys of SYSTEMS) {
          const v = samples.get(`miss_fixed_${metric}`)?.get(sys.name)?.[r];
          if (v !== undefined) record(`miss_added_${metric}`, sys.name, v - direct);
        }
      }
      log(`round ${r + 1} done`);
    }
    for (const s of running.values()) await s.stop();
    running.clear();

    if (RUN_GATEWAY && !overBudget()) await gatewayWorkloads();

    // Forwarding over TLS: fresh forwarders towards the authoritative's DoT and DoH ports.
    if (flags['no-tls'] || SMOKE) notes.push('DoT/DoH workloads not run (--no-tls or --smoke).');
    else await tlsWorkloads(up);

    // Marginal memory: many processes of each system side by side (memory.ts).
    const memorySystems = [
      ...(SYSTEMS.some((s) => s.name === 'tenant-dns') ? [tenantDnsSystem({ app: flags.app })] : []),
      ...(SYSTEMS.some((s) => s.name === 'node-ceiling') ? [CEILING_SYSTEM] : []),
      ...Object.values(MEMORY_PEERS).filter((p) => SYSTEMS.some((s) => s.name === p.name)).slice(0, 1),
    ];
    if (flags['no-memory']) notes.push('marginal memory not run (--no-memory).');
    else if (overBudget()) notes.push('marginal memory skipped, over the time budget');
    else if (memorySystems.length > 0) {
      log(`marginal memory: ${MEMORY_COUNT} × ${memorySystems.map((m) => m.name).join(', ')}`);
      memory = await marginalMemory(up, memorySystems, {
        count: MEMORY_COUNT,
        serverCpu: SERVER_CPU,
        loadCpu: LOAD_CPU,
        settleSeconds: SMOKE ? 0.5 : 5,
        hitSeconds: SMOKE ? 0 : 2,
        missNames: SMOKE ? 200 : 2000,
        workDir: work,
        log,
      });
    }
  } finally {
    for (const s of running.values()) await s.stop();
    await auth.stop();
  }
  report();
}

/**
 * tenant-dns gateway against nsd serving the zone the gateway's `--dump-zone` wrote from the same
 * objects (1000 names and a wildcard), both pinned like the forwarders: each round, per server,
 * the published names at saturation, then at FIXED_QPS for latency.
 */
async function gatewayWorkloads(): Promise<void> {
  const data = gatewayBenchData(work);
  const zoneFile = join(work, 'gateway.zone');
  writeFileSync(zoneFile, execFileSync(process.execPath, [join(ROOT, 'bin/tenant-dns.ts'), 'gateway', ...data.flags, '--dump-zone', GATEWAY_ZONE], { encoding: 'utf8' }));
  const file = writeQueries('gateway.txt', data.names);
  const servers: BenchServer[] = [];
  try {
    for (const [name, start] of [
      [GATEWAY, () => startGatewayServer(data, { cpu: SERVER_CPU })],
      [NSD, () => startNsdServer(GATEWAY_ZONE, zoneFile, { cpu: SERVER_CPU })],
    ] as const) {
      try {
        servers.push(await tracked(start()));
      } catch (err) {
        errors.set(name, (err as Error).message.slice(0, 300));
        log(`${name} failed to start: ${(err as Error).message.slice(0, 300)}`);
      }
    }
    for (let r = 0; r < ROUNDS && !overBudget(); r++) {
      for (const server of rotate(servers, r)) {
        try {
          const sat = await dnsperf(server.port, { file });
          checkAnswers(server.name, 'authoritative answers at saturation', sat);
          record('gw_sat_qps', server.name, sat.okQps);
          record('gw_sat_lost', server.name, (sat.lost / Math.max(1, sat.sent)) * 100);
          const fixed = await dnsperf(server.port, { file, qps: FIXED_QPS, latencies: true });
          checkAnswers(server.name, `authoritative answers at ${FIXED_QPS} QPS`, fixed);
          record('gw_fixed_p50', server.name, fixed.p50Ms!);
          record('gw_fixed_p99', server.name, fixed.p99Ms!);
          log(`${server.name}: ${sat.qps.toFixed(0)} QPS at saturation, lost ${sat.lost}; at ${FIXED_QPS} QPS p50 ${fixed.p50Ms!.toFixed(3)} p99 ${fixed.p99Ms!.toFixed(3)} ms`);
        } catch (err) {
          errors.set(server.name, (err as Error).message.slice(0, 300));
          log(`${server.name} round ${r + 1} failed: ${(err as Error).message.slice(0, 300)}`);
        }
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
}

async function tlsWorkloads(up: UpstreamInfo): Promise<void> {
  const sidecarTls = sidecarHasTlsFlags();
  if (!sidecarTls) notes.push('tenant-dns DoT/DoH skipped: flag not available (`--upstream-ca`/`--bootstrap` are not in `tenant-dns sidecar --help`).');
  const systems = TLS_SYSTEMS.filter((s) => SYSTEMS.some((x) => x.name === s.name) && (s.kind !== 'ours' || sidecarTls));
  const tlsRunning = new Map<string, BenchServer>();
  const key = (s: { name: string; transport: Transport }): string => `${s.name}/${s.transport}`;
  try {
    for (const s of systems) {
      try {
        tlsRunning.set(key(s), await tracked(s.start(up, { cpu: SERVER_CPU })));
      } catch (err) {
        notes.push(`${s.name} over ${s.transport}: failed to start: ${(err as Error).message.slice(0, 200)}`);
      }
    }
    for (let r = 0; r < ROUNDS && !overBudget(); r++) {
      const file = writeQueries(`tls-${r}.txt`, uniqueNames(`t${r}-`, SAT_NAMES));
      for (const s of rotate(systems, r)) {
        const server = tlsRunning.get(key(s));
        if (!server) continue;
        try {
          const sat = await dnsperf(server.port, { file, once: true });
          checkAnswers(`${s.name} over ${s.transport}`, 'misses at saturation', sat);
          record(`${s.transport}_miss_sat_qps`, s.name, sat.okQps);
          log(`${s.name} over ${s.transport}, misses at saturation: ${sat.qps.toFixed(0)} QPS, lost ${sat.lost}`);
        } catch (err) {
          notes.push(`${s.name} over ${s.transport} round ${r + 1}: ${(err as Error).message.slice(0, 200)}`);
        }
      }
    }
  } finally {
    for (const s of tlsRunning.values()) await s.stop();
  }
}

// ---------------------------------------------------------------- report

interface Summary {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly samples: readonly number[];
  /** value ÷ the ceiling's median (throughput: the fraction of the ceiling reached). */
  readonly vsCeiling?: number;
  /** value ÷ the best peer's median. */
  readonly vsBestPeer?: number;
}

function summarize(values: readonly number[]): Pick<Summary, 'min' | 'median' | 'max' | 'samples'> {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, samples: values };
}

function kindOf(name: string): Kind {
  if (name === 'upstream (direct)') return 'reference';
  if (name === GATEWAY) return 'ours';
  if (name === NSD) return 'peer';
  return ALL_SYSTEMS.find((s) => s.name === name)!.kind;
}

interface MetricResult {
  readonly def: MetricDef;
  readonly bySystem: Record<string, Summary>;
  readonly bestPeer?: string;
}

function analyse(): MetricResult[] {
  const out: MetricResult[] = [];
  for (const def of METRICS) {
    const raw = samples.get(def.id);
    if (!raw) continue;
    const base: Record<string, ReturnType<typeof summarize>> = {};
    for (const [sys, vals] of raw) base[sys] = summarize(vals);
    const peers = Object.entries(base).filter(([s]) => kindOf(s) === 'peer');
    let bestPeer: string | undefined;
    for (const [s, v] of peers) {
      if (bestPeer === undefined) bestPeer = s;
      else if (def.better === 'higher' ? v.median > base[bestPeer]!.median : v.median < base[bestPeer]!.median) bestPeer = s;
    }
    const ceiling = base['node-ceiling']?.median;
    const best = bestPeer !== undefined ? base[bestPeer]!.median : undefined;
    const bySystem: Record<string, Summary> = {};
    for (const [s, v] of Object.entries(base)) {
      bySystem[s] = {
        ...v,
        vsCeiling: ceiling ? v.median / ceiling : undefined,
        vsBestPeer: best ? v.median / best : undefined,
      };
    }
    out.push({ def, bySystem, bestPeer });
  }
  return out;
}

/** How the markdown groups the metrics: one table each, a row per system. */
const GROUPS: readonly { title: string; metrics: readonly string[]; systems?: readonly string[] }[] = [
  { title: 'Throughput at saturation (UDP clients)', metrics: ['hit_sat_qps', 'hit_sat_cpu', 'hit_sat_per_core', 'hit_sat_lost', 'miss_sat_qps', 'miss_sat_cpu', 'miss_sat_per_core', 'miss_sat_lost'] },
  { title: 'Forwarding over TLS (UDP clients, unique names at saturation)', metrics: ['dot_miss_sat_qps', 'doh_miss_sat_qps'] },
  { title: `Cache hits at a fixed ${FIXED_QPS} QPS`, metrics: ['hit_fixed_p50', 'hit_fixed_p99', 'hit_fixed_p999', 'hit_fixed_cpu'] },
  { title: `Cache misses at a fixed ${FIXED_QPS} QPS (unique names, forwarded)`, metrics: ['miss_fixed_p50', 'miss_fixed_p99', 'miss_fixed_p999', 'miss_fixed_cpu', 'miss_added_p50', 'miss_added_p99'] },
  { title: 'Footprint', metrics: ['start_ms', 'idle_rss_mib', 'peak_rss_mib'] },
  { title: 'Authoritative: tenant-dns gateway against nsd, the same zone (UDP, 1100 names)', metrics: ['gw_sat_qps', 'gw_sat_lost', 'gw_fixed_p50', 'gw_fixed_p99'], systems: [GATEWAY, NSD] },
];

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`;
}

interface Target {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

function targets(results: MetricResult[]): Target[] {
  const get = (id: string) => results.find((m) => m.def.id === id);
  const ours = (id: string) => get(id)?.bySystem['tenant-dns'];
  const out: Target[] = [];
  const push = (target: string, value: number | undefined, ok: (v: number) => boolean, measured: (v: number) => string): void => {
    out.push(value === undefined || !Number.isFinite(value) ? { target, measured: 'not measured', met: undefined } : { target, measured: measured(value), met: ok(value) });
  };
  push('cache-hit throughput ≥ 85% of the Node ceiling', ours('hit_sat_qps')?.vsCeiling, (v) => v >= 0.85, (v) => `${(v * 100).toFixed(0)}%`);
  push(`CPU at ${FIXED_QPS} cached QPS ≤ 1.3× the Node ceiling's`, ours('hit_fixed_cpu')?.vsCeiling, (v) => v <= 1.3, ratio);
  for (const [id, what] of [['hit_fixed_p50', 'hits p50'], ['hit_fixed_p99', 'hits p99'], ['miss_fixed_p50', 'misses p50'], ['miss_fixed_p99', 'misses p99']] as const) {
    push(`${what} at ${FIXED_QPS} QPS within 1.2× of the best peer (${get(id)?.bestPeer ?? '—'})`, ours(id)?.vsBestPeer, (v) => v <= 1.2, ratio);
  }
  const missOurs = ours('miss_sat_qps')?.median;
  for (const peer of ['unbound', 'kresd', 'dnsmasq']) {
    const theirs = get('miss_sat_qps')?.bySystem[peer]?.median;
    push(`miss throughput ahead of ${peer}`, missOurs !== undefined && theirs ? missOurs / theirs : undefined, (v) => v > 1, ratio);
  }
  for (const t of ['dot', 'doh'] as const) {
    const m = get(`${t}_miss_sat_qps`);
    const best = m?.bestPeer;
    push(`${t === 'dot' ? 'DoT' : 'DoH'} forwarding throughput ahead of every TLS peer (best: ${best ?? '—'})`, m?.bySystem['tenant-dns']?.vsBestPeer, (v) => v > 1, ratio);
  }
  push("idle RSS ≤ 1.25× the Node ceiling's", ours('idle_rss_mib')?.vsCeiling, (v) => v <= 1.25, ratio);
  push('peak RSS under the saturation runs ≤ 100 MB (default cache)', ours('peak_rss_mib') ? (ours('peak_rss_mib')!.max * 1024 * 1024) / 1e6 : undefined, (v) => v <= 100, (v) => `${v.toFixed(0)} MB`);
  push("start to first answer ≤ 1.3× the Node ceiling's", ours('start_ms')?.vsCeiling, (v) => v <= 1.3, ratio);
  return out;
}

/**
 * Issue 19's targets ("Cost at scale"), each a ratio of medians in this run:
 * what one more pod costs next to the Node ceiling and the peers. The series
 * budget (≤ 80 on an idle pod's /metrics) is a test, not a bench figure
 * (test/integration/series-budget.test.ts).
 */
function costTargets(results: MetricResult[]): Target[] {
  const get = (id: string) => results.find((m) => m.def.id === id);
  const ours = (id: string) => get(id)?.bySystem['tenant-dns'];
  const vsPeer = (id: string, peer: string): number | undefined => {
    const a = ours(id)?.median;
    const b = get(id)?.bySystem[peer]?.median;
    return a !== undefined && b ? a / b : undefined;
  };
  const out: Target[] = [];
  const push = (target: string, value: number | undefined, ok: (v: number) => boolean): void => {
    out.push(value === undefined || !Number.isFinite(value) ? { target, measured: 'not measured', met: undefined } : { target, measured: ratio(value), met: ok(value) });
  };
  const mem = memory ? memoryTable(memory, MEMORY_COUNT) : undefined;
  push(`private memory (USS) per sidecar, ${MEMORY_COUNT} running, idle ≤ 1.25× the Node ceiling's`, mem?.ussVsCeiling, (v) => v <= 1.25);
  push('private memory after the standard load ≤ 2× idle', mem?.loadedVsIdle, (v) => v <= 2);
  push('miss throughput ≥ 1.0× unbound\'s', vsPeer('miss_sat_qps', 'unbound'), (v) => v >= 1);
  push(`miss p99 at ${FIXED_QPS} QPS ≤ 2× the best peer's (${get('miss_fixed_p99')?.bestPeer ?? '—'})`, ours('miss_fixed_p99')?.vsBestPeer, (v) => v <= 2);
  push(`CPU at ${FIXED_QPS} misses/s ≤ 1.5× unbound's`, vsPeer('miss_fixed_cpu', 'unbound'), (v) => v <= 1.5);
  push('DoT forwarding throughput ≥ 1.0× kresd\'s', vsPeer('dot_miss_sat_qps', 'kresd'), (v) => v >= 1);
  push("cache-hit throughput ≥ 0.85× the Node ceiling's", ours('hit_sat_qps')?.vsCeiling, (v) => v >= 0.85);
  push("start to first answer ≤ 1.5× the Node ceiling's", ours('start_ms')?.vsCeiling, (v) => v <= 1.5);
  return out;
}

/**
 * Issue 19's miss targets (DoT forwarding's too) split in two: the Node forwarding floor
 * (node-forwarder: no DNS work at all) against the same peer, which no Node forwarder can beat on
 * this machine, and tenant-dns against the floor, which is the sidecar's own work. Empty without
 * the floor.
 */
function floorLines(results: MetricResult[]): string[] {
  const get = (id: string) => results.find((m) => m.def.id === id);
  const of = (id: string, system: string) => get(id)?.bySystem[system]?.median;
  const div = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? a / b : undefined);
  const rows: [string, string, string | undefined][] = [
    [`miss p99 at ${FIXED_QPS} QPS`, 'miss_fixed_p99', get('miss_fixed_p99')?.bestPeer],
    ['miss throughput at saturation', 'miss_sat_qps', 'unbound'],
    [`CPU at ${FIXED_QPS} misses/s`, 'miss_fixed_cpu', 'unbound'],
    ['DoT forwarding throughput', 'dot_miss_sat_qps', 'kresd'],
  ];
  if (!rows.some(([, id]) => of(id, 'node-forwarder') !== undefined)) return [];
  const lines = ['', '### Misses: the Node floor and the sidecar\'s own work', '', '| | node-forwarder ÷ peer | tenant-dns ÷ node-forwarder | tenant-dns ÷ peer |', '| --- | ---: | ---: | ---: |'];
  for (const [what, id, peer] of rows) {
    const floor = of(id, 'node-forwarder');
    const ours = of(id, 'tenant-dns');
    const theirs = peer ? of(id, peer) : undefined;
    lines.push(`| ${what} (peer: ${peer ?? '—'}) | ${ratio(div(floor, theirs))} | ${ratio(div(ours, floor))} | ${ratio(div(ours, theirs))} |`);
  }
  return lines;
}

function report(): void {
  const results = analyse();
  const systems = [...SYSTEMS.map((s) => s.name), 'upstream (direct)'];
  const lines: string[] = [];
  const cpuModel = /model name\s*:\s*(.*)/.exec(safeRead('/proc/cpuinfo'))?.[1] ?? 'unknown CPU';
  lines.push(`# tenant-dns benchmark${SMOKE ? ' (smoke: timings meaningless)' : ''}`);
  lines.push('');
  lines.push(
    `${new Date().toISOString()} · node ${process.version} · ${CPUS} × ${cpuModel} · ${ROUNDS} round(s) interleaved, ` +
      `${SECONDS} s per load run · ${PIN ? `server pinned to CPU 0, dnsperf, the authoritative and ${SELF_PINNED ? 'the bench itself' : 'not the bench itself (taskset failed)'} to CPU 1` : 'unpinned'} · ` +
      'cells: median (min–max) over rounds',
  );
  lines.push('');
  lines.push(
    `Background load of other processes, sampled for 1 s before the start-up runs and before each round: ` +
      `${background.map((b) => b.toFixed(2)).join(', ')} of ${CPUS} cores` +
      (Math.max(...background) > 0.2 ? ' — **the machine was shared: treat the figures as noisy**.' : '.'),
  );
  lines.push('');
  for (const group of GROUPS) {
    const cols = group.metrics.map((id) => results.find((m) => m.def.id === id)).filter((m): m is MetricResult => m !== undefined);
    if (cols.length === 0) continue;
    lines.push(`### ${group.title}`, '');
    lines.push(`| system | ${cols.map((m) => m.def.column).join(' | ')} |`);
    lines.push(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
    for (const s of group.systems ?? systems) {
      if (!cols.some((m) => m.bySystem[s]) && s === 'upstream (direct)') continue;
      const cells = cols.map((m) => {
        const v = m.bySystem[s];
        if (!v) return errors.has(s) ? 'error' : '—';
        const range = v.samples.length > 1 ? ` (${fmt(v.min, m.def.digits)}–${fmt(v.max, m.def.digits)})` : '';
        const best = m.bestPeer === s ? '**' : '';
        return `${best}${fmt(v.median, m.def.digits)}${best}${range}`;
      });
      lines.push(`| ${s} | ${cells.join(' | ')} |`);
    }
    if (group.systems) {
      // Ours against its one peer: the gateway's median ÷ nsd's.
      lines.push(`| *${group.systems[0]} ÷ ${group.systems[1]}* | ${cols.map((m) => ratio(m.bySystem[group.systems![0]!]?.vsBestPeer)).join(' | ')} |`, '');
      continue;
    }
    lines.push(`| *tenant-dns ÷ node-ceiling* | ${cols.map((m) => ratio(m.bySystem['tenant-dns']?.vsCeiling)).join(' | ')} |`);
    lines.push(`| *tenant-dns ÷ best peer* | ${cols.map((m) => `${ratio(m.bySystem['tenant-dns']?.vsBestPeer)}${m.bestPeer ? ` (${m.bestPeer})` : ''}`).join(' | ')} |`);
    lines.push('');
  }
  lines.push('Cells: median (min–max) over rounds; bold: the best peer in that column. Ratios are of medians: for QPS above 1 is better, for everything else below 1.');
  lines.push('');
  if (memory) lines.push('### Marginal memory', '', ...memoryTable(memory, MEMORY_COUNT).lines, '');
  lines.push('## Issue 7 targets');
  lines.push('');
  lines.push('| target | measured | met |');
  lines.push('| --- | ---: | :---: |');
  const tgs = targets(results);
  for (const t of tgs) lines.push(`| ${t.target} | ${t.measured} | ${t.met === undefined ? '—' : t.met ? 'yes' : '**no**'} |`);
  const cost = costTargets(results);
  lines.push('', '## Issue 19 targets (cost at scale)', '', '| target | measured | met |', '| --- | ---: | :---: |');
  for (const t of cost) lines.push(`| ${t.target} | ${t.measured} | ${t.met === undefined ? '—' : t.met ? 'yes' : '**no**'} |`);
  lines.push(...floorLines(results));
  if (errors.size || notes.length) {
    lines.push('', '## Notes', '');
    for (const [s, e] of errors) lines.push(`- ${s}: error: ${e.replace(/\s+/g, ' ')}`);
    for (const n of notes) lines.push(`- ${n}`);
  }
  lines.push('');
  const md = lines.join('\n');
  process.stdout.write(md);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, `${OUT_BASE}.md`), md);
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: CPUS,
    smoke: SMOKE,
    rounds: ROUNDS,
    secondsPerRun: SECONDS,
    fixedQps: FIXED_QPS,
    pinned: PIN,
    backgroundCores: background,
    systems: [...systems, ...(RUN_GATEWAY ? [GATEWAY, NSD] : [])],
    metrics: Object.fromEntries(results.map((m) => [m.def.id, { ...m.def, bestPeer: m.bestPeer, bySystem: m.bySystem }])),
    targets: tgs,
    costTargets: cost,
    memory: memory ? Object.fromEntries(memory) : undefined,
    errors: Object.fromEntries(errors),
    notes,
  };
  writeFileSync(join(OUT_DIR, `${OUT_BASE}.json`), JSON.stringify(json, null, 2) + '\n');
  log(`wrote ${join(OUT_DIR, OUT_BASE)}.{md,json} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

await main();
