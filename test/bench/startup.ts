/**
 * Start-up cost that does not depend on how busy the machine is: the
 * instructions a process executes from exec to its first answer, counted
 * by valgrind's callgrind, for tenant-dns (the bundle as the image runs it,
 * with the bench's policy, as run.ts starts it) and the Node ceiling. run.ts
 * times a start in milliseconds, and on a shared VM those move by ±20%
 * between runs; instruction counts repeat within a few percent.
 *
 * Run:    node test/bench/startup.ts [--runs 3] [--app DIR] [--forwarded]
 *         --app: measure a bundle built before (deploy/scripts/bundle.sh DIR,
 *         e.g. in a worktree of an older commit) instead of this tree's.
 *         --forwarded: probe run.ts's name, which the sidecar forwards to the
 *         authoritative, and count up to its second datagram (the upstream
 *         query, then the answer): what run.ts's start time measures, with
 *         whatever the sidecar runs while the upstream answers. Under
 *         valgrind a build that reads the reply only after the start-up
 *         compaction's timer has fired counts the compaction's recompiles
 *         too (about 100M at 448a934), which real time never sees.
 * Needs:  valgrind (Debian's valgrind package), unbound for the authoritative.
 * How:    each system starts under `valgrind --tool=callgrind`, which writes
 *         its counters so far each time the process is about to send a UDP
 *         datagram (`--dump-before` node::UDPWrap::DoSend, Node's send
 *         binding). The probe (a query every 5 ms, as run.ts's) asks for a
 *         name the bench's policy denies (BENCH_POLICY_DENIED), which the
 *         sidecar answers itself as the ceiling answers every name, so the
 *         first datagram either process sends is its first answer: the first
 *         dump counts exec to the first answer exactly, and nothing after it.
 *         All threads are counted (V8's helpers too). Valgrind runs a process
 *         ~50× slower, so the sidecar's one heap compaction
 *         (sidecar/runtime/heap.ts, 200 ms after it serves) can come before
 *         its first answer here; callgrind leaves the collection out
 *         (--toggle-collect), as it is out of the start in real time.
 *         Before issue 19 this ran the sidecar without a policy, probed
 *         run.ts's name (forwarded to the authoritative) and dumped with
 *         `callgrind_control --dump` once the probe had its answer, which also
 *         counted what the process did while the upstream answered and until
 *         the dump arrived: the HTTP servers and, in some runs, the
 *         compaction's recompiles, tens of millions of instructions more or
 *         less from one run to the next (test/bench/README.md, "Start-up and
 *         idle memory").
 * Output: a markdown table on stdout, median and (min–max) over the runs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_POLICY_DENIED, benchPolicy, startAuthoritative, startCeiling, startTenantDns, type BenchServer, type StartOptions, type UpstreamInfo } from '../helpers/peers.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, app: { type: 'string' }, forwarded: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs: an integer 1..20');

/** Instructions (callgrind's Ir) in the first `dumps` dumps callgrind wrote into `dir` (one before each UDP send). */
function dumpedInstructions(dir: string, dumps: number): number {
  const files = readdirSync(dir)
    .map((f) => /^cg\.out\.(\d+)$/.exec(f))
    .filter((m) => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .slice(0, dumps);
  if (files.length < dumps) throw new Error(`expected ${dumps} callgrind dumps in ${dir}, found: ${readdirSync(dir).join(', ')}`);
  let total = 0;
  for (const [f] of files) {
    const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (!m) throw new Error(`no instruction total in ${f}`);
    total += Number(m[1]);
  }
  return total;
}

/** One start under callgrind: instructions from exec to the first answer, which is the process's `sends`th UDP send. */
async function instructionsToFirstAnswer(start: (opts: StartOptions) => Promise<BenchServer>, sends: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-startup-'));
  let server: BenchServer | undefined;
  try {
    server = await start({
      wrap: ['valgrind', '--tool=callgrind', '--quiet', '--toggle-collect=*CollectAllAvailableGarbage*', '--collect-atstart=yes', '--dump-before=node::UDPWrap::DoSend*', `--callgrind-out-file=${join(dir, 'cg.out')}`],
      readyTimeoutMs: 120_000,
      ...(values.forwarded ? {} : { probeName: BENCH_POLICY_DENIED.name }),
    });
    return dumpedInstructions(dir, sends);
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const millions = (n: number): string => `${(n / 1e6).toFixed(0)}M`;

const auth = await startAuthoritative({ names: 100 });
try {
  const up: UpstreamInfo = auth.upstream;
  // [name, start, the UDP sends up to and including the first answer]: with --forwarded the sidecar sends its
  // upstream query first (the probes waiting at its first read share it).
  const systems: [string, (opts: StartOptions) => Promise<BenchServer>, number][] = [
    ['node-ceiling', (opts) => startCeiling(opts), 1],
    // With the bench's policy, as run.ts starts it (before issue 19 this ran without a policy).
    ['tenant-dns', (opts) => startTenantDns(up, { ...opts, ...(values.app !== undefined ? { app: values.app } : {}), extraArgs: ['--policy', benchPolicy()] }), values.forwarded ? 2 : 1],
  ];
  const counts = new Map<string, number[]>(systems.map(([name]) => [name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const [name, start, sends] of systems) {
      const n = await instructionsToFirstAnswer(start, sends);
      counts.get(name)!.push(n);
      process.stderr.write(`run ${run + 1}/${RUNS} ${name}: ${millions(n)} instructions\n`);
    }
  }
  const ceiling = median(counts.get('node-ceiling')!);
  console.log('| system | instructions to first answer | ÷ node-ceiling |');
  console.log('| --- | ---: | ---: |');
  for (const [name, xs] of counts) {
    console.log(`| ${name} | ${millions(median(xs))} (${millions(Math.min(...xs))}–${millions(Math.max(...xs))}) | ${(median(xs) / ceiling).toFixed(2)}× |`);
  }
} finally {
  await auth.stop();
}
