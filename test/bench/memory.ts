/**
 * What one more pod costs in memory (issue 19): 10 tenant-dns sidecars as
 * the image runs them (the bundle, the image's ENV, the injector's
 * NODE_OPTIONS, the bench's policy), 10 Node ceilings and 10 of a peer, all
 * running at once, and per process its RSS, PSS and private memory (USS:
 * Private_Clean + Private_Dirty of /proc/PID/smaps_rollup), idle and after a
 * standard load. RSS counts the node binary's pages, which every sidecar on
 * a node shares through the page cache; USS is what one more adds.
 *
 * Run:    node test/bench/memory.ts [--count 10] [--peer dnsmasq|unbound] [--smoke] [--app DIR] [--node-args "--flag …"]
 *         --app: a bundle built before (deploy/scripts/bundle.sh DIR) instead of this tree's;
 *         --node-args: extra node flags for the sidecars (to try V8 flags).
 * Load:   per process, one after the other: the 100 hot names once (misses, then cached), hits at
 *         5,000 QPS for 2 s, then 2,000 unique names at 2,000 QPS (misses), dnsperf on CPU 1.
 * Output: a markdown table on stdout, median (min–max) over the processes of each system, in MiB;
 *         also in test/bench/results/memory.{md,json} (smoke: memory-smoke.*).
 * Also:   `npm run bench` runs the same section (run.ts, "Marginal memory").
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDnsperf } from '../helpers/dnsperf.ts';
import { benchPolicy, HOT_ZONE, MISS_ZONE, startAuthoritative, startCeiling, startDnsmasq, startTenantDns, startUnboundForwarder, type BenchServer, type StartOptions, type UpstreamInfo } from '../helpers/peers.ts';

/** Memory of one process from /proc/PID/smaps_rollup, in KiB. */
export interface ProcessMemory {
  readonly rss: number;
  readonly pss: number;
  /** Private_Clean + Private_Dirty: what the process alone holds. */
  readonly uss: number;
}

/** Reads /proc/PID/smaps_rollup (Linux ≥ 4.14). */
export function smapsRollup(pid: number): ProcessMemory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/smaps_rollup has no ${key}`);
    return Number(m[1]);
  };
  return { rss: field('Rss'), pss: field('Pss'), uss: field('Private_Clean') + field('Private_Dirty') };
}

/** One system of the section: how to start one of its processes. */
export interface MemorySystem {
  readonly name: string;
  start(up: UpstreamInfo, opts: StartOptions): Promise<BenchServer>;
}

/** Per system: each process's memory idle and after the load. */
export type MemoryResults = Map<string, { idle: ProcessMemory[]; endOfLoad: ProcessMemory[]; loaded: ProcessMemory[] }>;

/** Options of {@link marginalMemory}. */
export interface MarginalMemoryOptions {
  /** Processes per system, all running at once. */
  readonly count: number;
  /** CPU the servers run on, and the one dnsperf runs on (unpinned when absent). */
  readonly serverCpu?: string;
  readonly loadCpu?: string;
  /**
   * Seconds quiet after the last start before the idle reading (the sidecar compacts its heap 200 ms after
   * serving), and after the last load before the after-load reading. That reading is of a sidecar still holding
   * what its busy spell grew: it compacts again only after 5 minutes of quiet (sidecar/runtime/heap.ts).
   */
  readonly settleSeconds: number;
  /** Hit seconds of the standard load (at 5,000 QPS); 0 for none. */
  readonly hitSeconds: number;
  /** Unique miss names of the standard load (at 2,000 QPS). */
  readonly missNames: number;
  /** A directory for the query files. */
  readonly workDir: string;
  readonly log?: (msg: string) => void;
}

/**
 * Starts `count` processes of every system at once, reads their memory
 * idle, gives each the standard load one after the other, and reads it
 * again after `settleSeconds`. Every process is stopped before it returns.
 */
export async function marginalMemory(up: UpstreamInfo, systems: readonly MemorySystem[], o: MarginalMemoryOptions): Promise<MemoryResults> {
  const hot = join(o.workDir, 'memory-hot.txt');
  writeFileSync(hot, Array.from({ length: 100 }, (_, i) => `h${i}.${HOT_ZONE} A`).join('\n') + '\n');
  const running = new Map<string, BenchServer[]>();
  const results: MemoryResults = new Map();
  const settle = () => new Promise((r) => setTimeout(r, o.settleSeconds * 1000));
  try {
    for (const sys of systems) {
      const list: BenchServer[] = [];
      running.set(sys.name, list);
      for (let i = 0; i < o.count; i++) list.push(await sys.start(up, { cpu: o.serverCpu }));
      o.log?.(`memory: ${o.count} × ${sys.name} running`);
    }
    await settle();
    for (const [name, list] of running) results.set(name, { idle: list.map((s) => smapsRollup(s.pid)), endOfLoad: [], loaded: [] });
    let n = 0;
    for (const [name, list] of running) {
      for (const s of list) {
        await runDnsperf({ port: s.port, queryFile: hot, seconds: 5, maxRuns: 1, cpu: o.loadCpu });
        if (o.hitSeconds > 0) await runDnsperf({ port: s.port, queryFile: hot, seconds: o.hitSeconds, qps: 5000, cpu: o.loadCpu });
        const misses = join(o.workDir, `memory-miss-${n++}.txt`);
        writeFileSync(misses, Array.from({ length: o.missNames }, (_, i) => `m${n}-${i}.${MISS_ZONE} A`).join('\n') + '\n');
        await runDnsperf({ port: s.port, queryFile: misses, seconds: Math.ceil(o.missNames / 2000) + 1, qps: 2000, maxRuns: 1, cpu: o.loadCpu });
        results.get(name)!.endOfLoad.push(smapsRollup(s.pid));
      }
      o.log?.(`memory: ${name} loaded`);
    }
    await settle();
    for (const [name, list] of running) results.get(name)!.loaded.push(...list.map((s) => smapsRollup(s.pid)));
  } finally {
    await Promise.allSettled([...running.values()].flat().map((s) => s.stop()));
  }
  return results;
}

const mib = (kib: number): string => (kib / 1024).toFixed(1);
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cell = (xs: readonly number[]): string => `${mib(median(xs))} (${mib(Math.min(...xs))}–${mib(Math.max(...xs))})`;

/** The section's table and its two ratios (tenant-dns's USS ÷ the ceiling's, idle; tenant-dns's after-load USS ÷ its idle). */
export function memoryTable(results: MemoryResults, count: number): { lines: string[]; ussVsCeiling?: number; loadedVsIdle?: number } {
  const lines = [
    `| system (${count} running) | RSS idle | PSS idle | USS idle | USS at the end of its load | RSS after load | PSS after load | USS after load |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [name, r] of results) {
    const col = (list: readonly ProcessMemory[], k: keyof ProcessMemory) => cell(list.map((m) => m[k]));
    lines.push(`| ${name} | ${col(r.idle, 'rss')} | ${col(r.idle, 'pss')} | ${col(r.idle, 'uss')} | ${col(r.endOfLoad, 'uss')} | ${col(r.loaded, 'rss')} | ${col(r.loaded, 'pss')} | ${col(r.loaded, 'uss')} |`);
  }
  const uss = (name: string, which: 'idle' | 'loaded') => {
    const list = results.get(name)?.[which];
    return list && list.length > 0 ? median(list.map((m) => m.uss)) : undefined;
  };
  const ours = uss('tenant-dns', 'idle');
  const ceiling = uss('node-ceiling', 'idle');
  const loaded = uss('tenant-dns', 'loaded');
  const ussVsCeiling = ours !== undefined && ceiling ? ours / ceiling : undefined;
  const loadedVsIdle = ours && loaded !== undefined ? loaded / ours : undefined;
  lines.push('');
  lines.push(`Cells: MiB, median (min–max) over the ${count} processes of each system. USS = Private_Clean + Private_Dirty (smaps_rollup). ` +
    '"At the end of its load": read right after its own load; "after load": once every process has had its load and the last has been quiet for the settle time.');
  if (ussVsCeiling !== undefined) lines.push(`- private memory per sidecar, idle ÷ the Node ceiling's: **${ussVsCeiling.toFixed(2)}×** (target ≤ 1.25×)`);
  if (loadedVsIdle !== undefined) lines.push(`- private memory per sidecar, after load ÷ idle: **${loadedVsIdle.toFixed(2)}×** (target ≤ 2×)`);
  return { lines, ussVsCeiling, loadedVsIdle };
}

/** The sidecar as the bench runs it (bundle, image ENV, injector NODE_OPTIONS, bench policy), with `nodeArgs` and `app`. */
export function tenantDnsSystem(o: { nodeArgs?: readonly string[]; app?: string } = {}): MemorySystem {
  return { name: 'tenant-dns', start: (up, so) => startTenantDns(up, { ...so, nodeArgs: o.nodeArgs, app: o.app, extraArgs: ['--policy', benchPolicy()] }) };
}

/** The peers the section may run beside tenant-dns and the ceiling. */
export const MEMORY_PEERS: Readonly<Record<string, MemorySystem>> = {
  dnsmasq: { name: 'dnsmasq', start: (up, o) => startDnsmasq(up, o) },
  unbound: { name: 'unbound', start: (up, o) => startUnboundForwarder(up, o) },
};

/** The ceiling as a system of the section. */
export const CEILING_SYSTEM: MemorySystem = { name: 'node-ceiling', start: (_up, o) => startCeiling(o) };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '10' },
      peer: { type: 'string', default: 'dnsmasq' },
      smoke: { type: 'boolean', default: false },
      app: { type: 'string' },
      'node-args': { type: 'string' },
      systems: { type: 'string' },
    },
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error('--count: an integer 1..50');
  const peer = MEMORY_PEERS[values.peer!];
  if (!peer) throw new Error(`--peer: one of ${Object.keys(MEMORY_PEERS).join(', ')}`);
  const pin = availableParallelism() >= 2;
  const work = mkdtempSync(join(tmpdir(), 'tenant-dns-memory-'));
  const auth = await startAuthoritative({ cpu: pin ? '1' : undefined, names: 1000 });
  let systems = [tenantDnsSystem({ app: values.app, nodeArgs: values['node-args']?.split(/\s+/).filter(Boolean) }), CEILING_SYSTEM, peer];
  if (values.systems) systems = systems.filter((s) => values.systems!.split(',').includes(s.name));
  try {
    const results = await marginalMemory(auth.upstream, systems, {
      count,
      serverCpu: pin ? '0' : undefined,
      loadCpu: pin ? '1' : undefined,
      settleSeconds: values.smoke ? 0.5 : 5,
      hitSeconds: values.smoke ? 0 : 2,
      missNames: values.smoke ? 200 : 2000,
      workDir: work,
      log: (m) => process.stderr.write(`${m}\n`),
    });
    const { lines, ussVsCeiling, loadedVsIdle } = memoryTable(results, count);
    const md = [`# Marginal memory`, '', `${new Date().toISOString()} · node ${process.version}${values['node-args'] ? ` · sidecar node args: ${values['node-args']}` : ''}`, '', ...lines, ''].join('\n');
    process.stdout.write(md);
    const out = join(fileURLToPath(new URL('./results/', import.meta.url)));
    mkdirSync(out, { recursive: true });
    const base = values.smoke ? 'memory-smoke' : 'memory';
    writeFileSync(join(out, `${base}.md`), md);
    writeFileSync(join(out, `${base}.json`), JSON.stringify({ count, results: Object.fromEntries(results), ussVsCeiling, loadedVsIdle }, null, 2) + '\n');
  } finally {
    await auth.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
