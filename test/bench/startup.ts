/**
 * Start-up cost that does not depend on how busy the machine is: the
 * instructions a process executes from exec to its first answer, counted
 * by valgrind's callgrind, for tenant-dns (the bundle as the image runs it)
 * and the Node ceiling. run.ts times the same start in milliseconds, and on
 * a shared VM those move by ±20% between runs; instruction counts repeat
 * within a few percent.
 *
 * Run:    node test/bench/startup.ts [--runs 3] [--app DIR]
 *         --app: measure a bundle built before (deploy/scripts/bundle.sh DIR,
 *         e.g. in a worktree of an older commit) instead of this tree's.
 * Needs:  valgrind (Debian's valgrind package), unbound for the authoritative.
 * How:    each system starts under `valgrind --tool=callgrind`; the probe of
 *         run.ts (a query every 5 ms) waits for the first answer; then
 *         `callgrind_control --dump` writes the counters so far, and the
 *         process is stopped. All threads are counted (V8's helpers too).
 *         Valgrind runs a process ~50× slower, so the sidecar's one heap
 *         compaction (sidecar/runtime/heap.ts, 200 ms after it serves) comes before
 *         its first answer here; callgrind leaves it out
 *         (--toggle-collect), as it is out of the start in real time.
 * Output: a markdown table on stdout, median and (min–max) over the runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startAuthoritative, startCeiling, startTenantDns, type BenchServer, type StartOptions, type UpstreamInfo } from '../helpers/peers.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, app: { type: 'string' } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs: an integer 1..20');

/** Instructions (callgrind's Ir) in the dump that `callgrind_control --dump` wrote into `dir`. */
function dumpedInstructions(dir: string): number {
  const dumps = readdirSync(dir).filter((f) => /^cg\.out\.\d+$/.test(f));
  if (dumps.length !== 1) throw new Error(`expected one callgrind dump in ${dir}, found: ${readdirSync(dir).join(', ')}`);
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(join(dir, dumps[0]!), 'utf8'));
  if (!m) throw new Error(`no instruction total in ${dumps[0]}`);
  return Number(m[1]);
}

/** One start under callgrind: instructions from exec to the first answer. */
async function instructionsToFirstAnswer(start: (opts: StartOptions) => Promise<BenchServer>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-startup-'));
  let server: BenchServer | undefined;
  try {
    server = await start({ wrap: ['valgrind', '--tool=callgrind', '--quiet', '--toggle-collect=*CollectAllAvailableGarbage*', '--collect-atstart=yes', `--callgrind-out-file=${join(dir, 'cg.out')}`], readyTimeoutMs: 120_000 });
    execFileSync('callgrind_control', ['--dump=first-answer', String(server.pid)], { stdio: 'ignore', timeout: 60_000 });
    return dumpedInstructions(dir);
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
  const systems: [string, (opts: StartOptions) => Promise<BenchServer>][] = [
    ['node-ceiling', (opts) => startCeiling(opts)],
    ['tenant-dns', (opts) => startTenantDns(up, { ...opts, ...(values.app !== undefined ? { app: values.app } : {}) })],
  ];
  const counts = new Map<string, number[]>(systems.map(([name]) => [name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const [name, start] of systems) {
      const n = await instructionsToFirstAnswer(start);
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
