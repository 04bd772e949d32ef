/**
 * The miss tail after a quiet spell (issue 19): what the bench's fixed-rate miss run measures, for
 * tenant-dns alone, in variants run in interleaved rounds. Per round and variant, a fresh sidecar (the
 * image's way, the bench's policy) gets:
 *   - 3 s of unique-name misses at saturation (a busy spell, as the bench's previous round leaves it),
 *   - QUIET seconds with no query (in the bench, the other systems' turns: about 100 s),
 *   - 3 s of hits at saturation and 3 s of hits at 5,000 QPS (the bench's hit runs before its miss run),
 *   - 4 s of unique-name misses at 5,000 QPS: p50, p99, p99.9 and the sidecar's CPU over that run;
 *   - with --saturation, 4 s of unique-name misses at saturation: NOERROR answers per second.
 * The sidecar on CPU 0; dnsperf, the authoritative and this process on CPU 1, as in run.ts.
 *
 * Run:    node test/bench/quiet-burst.ts [--rounds 4] [--quiet 30] [--saturation] VARIANT...
 *         VARIANT: `label` alone (this tree's bundle), or `label|app=DIR|node=--flag --flag|env=K=V,K=V`
 *         (any of the parts: a bundle of deploy/scripts/bundle.sh, extra node flags, extra environment).
 * Output: one line per round and variant, then the lines grouped by variant.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runDnsperf } from '../helpers/dnsperf.ts';
import { benchPolicy, cpuSeconds, HOT_ZONE, MISS_ZONE, startAuthoritative, startTenantDns } from '../helpers/peers.ts';
import { parseVariant } from '../helpers/variants.ts';

const { values, positionals } = parseArgs({ options: { rounds: { type: 'string', default: '4' }, quiet: { type: 'string', default: '30' }, saturation: { type: 'boolean', default: false } }, allowPositionals: true });
const rounds = Number(values.rounds);
const quietSeconds = Number(values.quiet);
const variants = (positionals.length > 0 ? positionals : ['this tree']).map(parseVariant);
if (availableParallelism() < 2) throw new Error('needs two CPUs: the sidecar on one, the load on the other');
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const work = mkdtempSync(join(tmpdir(), 'tenant-dns-quiet-burst-'));
process.once('exit', () => rmSync(work, { recursive: true, force: true }));
let files = 0;
function queryFile(lines: Iterable<string>): string {
  const path = join(work, `q${files++}.txt`);
  writeFileSync(path, [...lines].join('\n') + '\n');
  return path;
}
/** `count` names under the miss zone that no earlier call gave (each call has a prefix of its own). */
let batches = 0;
function* uniqueNames(count: number): Generator<string> {
  const prefix = `u${batches++}-`;
  for (let i = 0; i < count; i++) yield `${prefix}${i}.${MISS_ZONE} A`;
}
const hot = queryFile(Array.from({ length: 100 }, (_, i) => `h${i}.${HOT_ZONE} A`));

const auth = await startAuthoritative({ names: 5000, cpu: '1' });
const policy = benchPolicy();
const lines = new Map<string, string[]>();
try {
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const s = await startTenantDns(auth.upstream, { cpu: '0', app: v.app, nodeArgs: v.nodeArgs, env: v.env, extraArgs: ['--policy', policy] });
      try {
        await runDnsperf({ port: s.port, queryFile: queryFile(uniqueNames(60_000)), seconds: 3, maxRuns: 1, cpu: '1' });
        await new Promise((resolve) => setTimeout(resolve, quietSeconds * 1000));
        await runDnsperf({ port: s.port, queryFile: hot, seconds: 3, cpu: '1' });
        await runDnsperf({ port: s.port, queryFile: hot, seconds: 3, qps: 5000, cpu: '1' });
        const misses = queryFile(uniqueNames(24_000));
        const before = cpuSeconds(s.pid);
        const m = await runDnsperf({ port: s.port, queryFile: misses, seconds: 4, qps: 5000, maxRuns: 1, latencies: true, cpu: '1' });
        const cpu = ((cpuSeconds(s.pid) - before) / m.runSeconds) * 100;
        let line = `p50 ${m.p50Ms!.toFixed(3)} p99 ${m.p99Ms!.toFixed(2)} p99.9 ${m.p999Ms!.toFixed(2)} ms, CPU ${cpu.toFixed(1)}%, lost ${m.lost}`;
        if (values.saturation) {
          const sat = await runDnsperf({ port: s.port, queryFile: queryFile(uniqueNames(150_000)), seconds: 4, maxRuns: 1, cpu: '1' });
          line += `; misses at saturation ${sat.okQps.toFixed(0)} QPS`;
        }
        lines.set(v.label, [...(lines.get(v.label) ?? []), line]);
        console.log(`round ${r + 1}, ${v.label}: ${line}`);
      } finally {
        await s.stop();
      }
    }
  }
} finally {
  await auth.stop();
}
console.log(`\nmisses at 5,000 QPS after ${quietSeconds} s of quiet, by variant:`);
for (const [label, list] of lines) console.log(`${label}\n${list.map((l) => `  ${l}`).join('\n')}`);
