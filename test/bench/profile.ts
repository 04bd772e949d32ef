/**
 * Profiles tenant-dns under load with `node --cpu-prof` and summarizes where
 * its CPU goes: the top functions by self time, and the same time by file.
 * With --heap, it samples allocations instead and lists who allocates most.
 *
 * Run:    node test/bench/profile.ts [--workload hit|miss] [--transport udp|dot|doh] [--heap [--survivors]] [--seconds 10] [--qps N] [--policy FILE|none] [--top 25] [--summarize FILE.cpuprofile]
 *         hit: 100 hot names at saturation (the cache-hit hot path, DESIGN §4);
 *         miss: unique names at saturation (policy, cache miss, forward, store);
 *         --transport: how misses are forwarded (default udp; dot and doh go to the
 *         authoritative's TLS ports, as in run.ts's forwarding-over-TLS workload);
 *         --heap: sample allocations instead of CPU time (test/bench/heap-sampler.ts),
 *         short-lived ones included, and list the functions that allocate most;
 *         --survivors (with --heap): only what outlived a young collection (what V8
 *         promotes to the old generation), and who allocated it;
 *         --qps: at that fixed rate instead (e.g. 5000, the rate of the CPU target),
 *         where every query wakes the event loop on its own;
 *         --policy: the tenant policy the sidecar runs with (`sidecar --policy FILE`);
 *         default: the bench's (benchPolicy in test/helpers/peers.ts), as run.ts runs it;
 *         `none`: no policy. The hot names are under bench.test and the misses under
 *         miss.test, so a policy that denies them measures denials instead.
 * Output: the tables on stdout; the profile in test/bench/results/tenant-dns-<workload>[-<transport>].cpuprofile
 *         (.heapprofile with --heap)
 *         (open it in Chrome DevTools › Performance, or VS Code).
 * The sidecar runs on CPU 0 and dnsperf with the authoritative on CPU 1, as in run.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDnsperf } from '../helpers/dnsperf.ts';
import { benchPolicy, HOT_ZONE, MISS_ZONE, startAuthoritative, startTenantDns, type Transport } from '../helpers/peers.ts';
import { testPki } from '../helpers/tls.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A V8 CPU profile (the subset read here). */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number }[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary: a function (or file) and its self time. */
export interface ProfileRow {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly percent: number;
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith(ROOT) ? relative(ROOT, path) : path;
}

/** Self time per function and per file of a .cpuprofile, idle time left out of the percentages. */
export function summarizeProfile(profile: CpuProfile): { functions: ProfileRow[]; files: ProfileRow[]; totalMs: number; idleMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const url = shortUrl(f.url);
    const where = url ? `${url}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName}@${where}`;
    const row = fns.get(key) ?? { name: f.functionName || '(anonymous)', where, us: 0 };
    row.us += us;
    fns.set(key, row);
    const file = url || f.functionName;
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const rows = (entries: { name: string; where: string; us: number }[]): ProfileRow[] =>
    entries.sort((a, b) => b.us - a.us).map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, percent: (e.us / total) * 100 }));
  return {
    functions: rows([...fns.values()]),
    files: rows([...files].map(([name, us]) => ({ name, where: '', us }))),
    totalMs: total / 1000,
    idleMs: idle / 1000,
  };
}

function printSummary(file: string, top: number): string {
  const s = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const lines: string[] = [];
  lines.push(`profile ${relative(ROOT, file)}: ${s.totalMs.toFixed(0)} ms busy, ${s.idleMs.toFixed(0)} ms idle; self time as % of busy`);
  lines.push('', '| self % | self ms | function | where |', '| ---: | ---: | --- | --- |');
  for (const r of s.functions.slice(0, top)) lines.push(`| ${r.percent.toFixed(1)} | ${r.selfMs.toFixed(0)} | ${r.name} | ${r.where} |`);
  lines.push('', '| self % | file or category |', '| ---: | --- |');
  for (const r of s.files.slice(0, top)) lines.push(`| ${r.percent.toFixed(1)} | ${r.name} |`);
  return lines.join('\n') + '\n';
}

/** A V8 sampling heap profile (the subset read here). */
interface HeapProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  children: HeapProfileNode[];
}

/** Sampled bytes allocated per function (self), largest first, from a .heapprofile. */
function printHeapSummary(file: string, top: number, survivors = false): string {
  const head = (JSON.parse(readFileSync(file, 'utf8')) as { head: HeapProfileNode }).head;
  const fns = new Map<string, { name: string; where: string; bytes: number }>();
  let total = 0;
  const walk = (n: HeapProfileNode, parent: string): void => {
    const f = n.callFrame;
    const url = shortUrl(f.url);
    // Allocations V8 makes on behalf of a function (no frame of their own) count for the caller.
    const name = f.functionName || (url ? '(anonymous)' : parent);
    // With the column: the bundle is whitespace-minified, so one line holds most functions.
    const where = url ? `${url}:${f.lineNumber + 1}:${f.columnNumber + 1}` : '';
    if (n.selfSize > 0) {
      const key = `${name}@${where}`;
      const row = fns.get(key) ?? { name, where, bytes: 0 };
      row.bytes += n.selfSize;
      fns.set(key, row);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, name);
  };
  walk(head, '(root)');
  const lines = [`heap profile ${relative(ROOT, file)}: ${(total / 1048576).toFixed(0)} MiB sampled (${survivors ? 'only what outlived a young collection' : 'short-lived allocations included'})`, '', '| % | MiB | function | where |', '| ---: | ---: | --- | --- |'];
  for (const r of [...fns.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top)) {
    lines.push(`| ${((r.bytes / total) * 100).toFixed(1)} | ${(r.bytes / 1048576).toFixed(1)} | ${r.name} | ${r.where} |`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      workload: { type: 'string', default: 'hit' },
      transport: { type: 'string', default: 'udp' },
      seconds: { type: 'string', default: '10' },
      top: { type: 'string', default: '25' },
      qps: { type: 'string' },
      heap: { type: 'boolean', default: false },
      survivors: { type: 'boolean', default: false },
      summarize: { type: 'string' },
      policy: { type: 'string' },
    },
  });
  const top = Number(values.top);
  if (values.summarize) {
    process.stdout.write(printSummary(values.summarize, top));
    return;
  }
  const workload = values.workload === 'miss' ? 'miss' : 'hit';
  const transport = values.transport as Transport;
  if (!['udp', 'dot', 'doh'].includes(transport)) throw new Error('--transport: udp, dot or doh');
  const seconds = Math.min(60, Number(values.seconds));
  const qps = values.qps === undefined ? undefined : Number(values.qps);
  if (qps !== undefined && !(Number.isInteger(qps) && qps > 0)) throw new Error('--qps: a positive integer');
  const how = qps === undefined ? 'at saturation' : `at ${qps} QPS`;
  const pin = availableParallelism() >= 2;
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-profile-'));
  try {
    const hot = join(dir, 'hot.txt');
    writeFileSync(hot, Array.from({ length: 100 }, (_, i) => `h${i}.${HOT_ZONE} A`).join('\n') + '\n');
    const unique = join(dir, 'unique.txt');
    if (workload === 'miss') writeFileSync(unique, Array.from({ length: seconds * 60_000 }, (_, i) => `p${i}.${MISS_ZONE} A`).join('\n') + '\n');
    const profDir = join(dir, 'prof');
    const heapFile = join(dir, 'sidecar.heapprofile');
    const pki = transport === 'udp' ? undefined : testPki();
    const auth = await startAuthoritative({
      cpu: pin ? '1' : undefined,
      names: 5000,
      ...(pki ? { tls: { certFile: pki.good.certFile, keyFile: pki.good.keyFile, caFile: pki.caFile, name: 'dns.test' } } : {}),
    });
    try {
      const sidecar = await startTenantDns(auth.upstream, {
        cpu: pin ? '0' : undefined,
        transport,
        nodeArgs: values.heap ? ['--import', join(ROOT, 'test/bench/heap-sampler.ts')] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
        env: values.heap ? { TENANT_DNS_HEAP_PROFILE: heapFile, TENANT_DNS_HEAP_SURVIVORS: values.survivors ? '1' : '0' } : undefined,
        extraArgs: values.policy === 'none' ? [] : ['--policy', values.policy ?? benchPolicy()],
      });
      try {
        await runDnsperf({ port: sidecar.port, queryFile: hot, seconds: 5, maxRuns: 1, cpu: pin ? '1' : undefined });
        const r = await runDnsperf({
          port: sidecar.port,
          queryFile: workload === 'hit' ? hot : unique,
          seconds,
          maxRuns: workload === 'hit' ? undefined : 1,
          cpu: pin ? '1' : undefined,
          ...(qps !== undefined ? { qps } : {}),
        });
        process.stdout.write(`tenant-dns, ${workload === 'hit' ? 'cache hits' : `misses over ${transport}`} ${how} under ${values.heap ? 'the heap sampler' : '--cpu-prof'}: ${r.qps.toFixed(0)} QPS over ${r.runSeconds.toFixed(1)} s, lost ${r.lost}\n`);
      } finally {
        await sidecar.stop();
      }
    } finally {
      await auth.stop();
    }
    const outDir = join(ROOT, 'test/bench/results');
    mkdirSync(outDir, { recursive: true });
    const base = join(outDir, `tenant-dns-${workload}${transport === 'udp' ? '' : `-${transport}`}`);
    if (values.heap) {
      if (!existsSync(heapFile)) throw new Error('no heap profile written: did the sidecar exit cleanly on SIGTERM?');
      renameSync(heapFile, `${base}.heapprofile`);
      process.stdout.write(printHeapSummary(`${base}.heapprofile`, top, values.survivors));
      return;
    }
    const written = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    if (written.length === 0) throw new Error('no .cpuprofile written: did the sidecar exit cleanly on SIGTERM?');
    const out = `${base}.cpuprofile`;
    renameSync(join(profDir, written[0]!), out);
    process.stdout.write(printSummary(out, top));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
