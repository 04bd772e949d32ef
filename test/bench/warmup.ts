/**
 * A fresh process's first seconds of load (issue 19): each round starts every system anew on CPU 0 and
 * gives it unique names at saturation at once, in one-second runs back to back, with the throughput and the
 * CPU per answered query of each second. run.ts's DoT rounds start each forwarder fresh and load it at once,
 * so their first round measures this too; its UDP miss workloads run tenant-dns's miss path for the first
 * time in their first round. A JIT runtime runs its hot path interpreted until V8 has optimized it, and the
 * optimizing compiler runs on helper threads that share the server's core: C peers have no such seconds.
 *
 * Run:    node test/bench/warmup.ts [--rounds 3] [--seconds 6] [--transport dot|udp] [--peers] [VARIANT...]
 *         VARIANT as in quiet-burst.ts (test/helpers/variants.ts): `label` alone (this tree's bundle), or
 *         `label|app=DIR|node=--flag|env=K=V`. --peers adds the Node forwarding floor and kresd (and
 *         unbound over UDP).
 * Output: per system and round, each second's QPS and µs of CPU per answered query; then per system the
 *         median first second, the median of the last three seconds, their ratio, and the median of the first
 *         four seconds' mean (a 4 s run from cold, as run.ts's) over the last three.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runDnsperf } from '../helpers/dnsperf.ts';
import { benchPolicy, cpuSeconds, MISS_ZONE, startAuthoritative, startForwarder, startKresd, startUnboundForwarder, type Transport } from '../helpers/peers.ts';
import { testPki } from '../helpers/tls.ts';
import { median, rotate, tenantDnsStarters, type Starter } from '../helpers/variants.ts';

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    transport: { type: 'string', default: 'dot' },
    peers: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const transport = values.transport as Transport;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds: an integer 1..20');
if (!Number.isInteger(seconds) || seconds < 4 || seconds > 30) throw new Error('--seconds: an integer 4..30');
if (transport !== 'dot' && transport !== 'udp') throw new Error('--transport: dot or udp');
if (availableParallelism() < 2) throw new Error('needs two CPUs: the server on one, dnsperf and the authoritative on the other');
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const pki = testPki();
const auth = await startAuthoritative({
  names: 10,
  cpu: '1',
  tls: { certFile: pki.good.certFile, keyFile: pki.good.keyFile, caFile: pki.caFile, name: 'dns.test' },
});
const up = auth.upstream;
const policy = benchPolicy();
const opts = { cpu: '0', transport };
const systems: Starter[] = [
  ...tenantDnsStarters(positionals, up, opts, policy),
  ...(values.peers
    ? ([
        ['node-forwarder', () => startForwarder(up, opts)],
        ['kresd', () => startKresd(up, opts)],
        ...(transport === 'udp' ? [['unbound', () => startUnboundForwarder(up, opts)]] : []),
      ] as Starter[])
    : []),
];

// Enough unique names for a second at the fastest rate seen here (about 35k QPS), a fresh set per second.
const NAMES_PER_SECOND = 60_000;
const work = mkdtempSync(join(tmpdir(), 'tenant-dns-warmup-'));
let files = 0;
const namesFile = (): string => {
  const file = join(work, `q${files++}.txt`);
  writeFileSync(file, Array.from({ length: NAMES_PER_SECOND }, (_, i) => `u${files}-${i}.${MISS_ZONE} A`).join('\n') + '\n');
  return file;
};

/** Per system: per round, per second, [QPS, µs of CPU per answered query]. */
const results = new Map<string, [number, number][][]>(systems.map(([name]) => [name, []]));
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, start] of rotate(systems, r)) {
      const perSecond: [number, number][] = [];
      const queryFiles = Array.from({ length: seconds }, namesFile);
      const server = await start();
      try {
        for (const file of queryFiles) {
          const cpu0 = cpuSeconds(server.pid);
          const run = await runDnsperf({ port: server.port, queryFile: file, seconds: 1, maxRuns: 1, cpu: '1' });
          const answered = run.okQps * run.runSeconds;
          perSecond.push([run.okQps, answered > 0 ? ((cpuSeconds(server.pid) - cpu0) / answered) * 1e6 : NaN]);
        }
      } finally {
        await server.stop();
      }
      results.get(name)!.push(perSecond);
      console.log(`round ${r + 1} ${name.padEnd(16)} ${perSecond.map(([q, us]) => `${(q / 1000).toFixed(1)}k/${us.toFixed(0)}µs`).join('  ')}`);
    }
  }
} finally {
  await auth.stop();
  rmSync(work, { recursive: true, force: true });
}

console.log(`\nunique names at saturation over ${transport}, from a fresh start (QPS, median over ${rounds} round(s)):`);
for (const [name, runs] of results) {
  const first = median(runs.map((s) => s[0]![0]));
  const steady = median(runs.flatMap((s) => s.slice(-3).map(([q]) => q)));
  // What a 4 s load run (run.ts's) started on a fresh process averages, against the same run once warm.
  const coldRun = median(runs.map((s) => s.slice(0, 4).reduce((a, [q]) => a + q, 0) / 4));
  console.log(
    `${name.padEnd(16)} first second ${first.toFixed(0).padStart(6)}  last three ${steady.toFixed(0).padStart(6)}  ` +
      `first ÷ last ${(first / steady).toFixed(2)}  first four seconds ÷ last ${(coldRun / steady).toFixed(2)}`,
  );
}
