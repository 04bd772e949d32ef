/**
 * Start to first answer (issue 19) the way run.ts samples it, in more rounds and for several builds: each
 * round starts, in an order rotated from round to round, the Node ceiling, each tenant-dns variant and (with
 * --peers) unbound, dnsdist, kresd and dnsmasq, one fresh process at a time on CPU 0, probed every 5 ms for
 * run.ts's name (which tenant-dns forwards to the authoritative), then idles it a second and stops it. run.ts
 * takes three such samples per system; on this VM the host moves single starts by tens of milliseconds, so
 * comparing builds needs more, taken side by side.
 *
 * Run:    node test/bench/starts.ts [--rounds 9] [--peers] [VARIANT...]
 *         VARIANT as in quiet-burst.ts (test/helpers/variants.ts): `label` alone (this tree's bundle), or
 *         `label|app=DIR|node=--flag|env=K=V`.
 * Output: per system its starts in milliseconds in round order, the median, and the median ÷ the ceiling's.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { benchPolicy, startAuthoritative, startCeiling, startDnsdist, startDnsmasq, startKresd, startUnboundForwarder } from '../helpers/peers.ts';
import { median, rotate, tenantDnsStarters, type Starter } from '../helpers/variants.ts';

const { values, positionals } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, peers: { type: 'boolean', default: false } }, allowPositionals: true });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds: an integer 1..50');
if (availableParallelism() < 2) throw new Error('needs two CPUs: the server on one, the probe and the authoritative on the other');
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const auth = await startAuthoritative({ names: 5000, cpu: '1' });
const up = auth.upstream;
const policy = benchPolicy();
const opts = { cpu: '0' };
const systems: Starter[] = [
  ['node-ceiling', () => startCeiling(opts)],
  ...tenantDnsStarters(positionals, up, opts, policy),
  ...(values.peers
    ? ([
        ['unbound', () => startUnboundForwarder(up, opts)],
        ['dnsdist', () => startDnsdist(up, opts)],
        ['kresd', () => startKresd(up, opts)],
        ['dnsmasq', () => startDnsmasq(up, opts)],
      ] as Starter[])
    : []),
];

const starts = new Map<string, number[]>(systems.map(([name]) => [name, []]));
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, start] of rotate(systems, r)) {
      const server = await start();
      try {
        starts.get(name)!.push(server.startMs);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await auth.stop();
}

const ceiling = median(starts.get('node-ceiling')!);
for (const [name, xs] of starts) {
  const m = median(xs);
  console.log(`${name.padEnd(16)} median ${m.toFixed(1).padStart(6)} ms  ${(m / ceiling).toFixed(2)}× the ceiling  | ${xs.map((x) => x.toFixed(0)).join(' ')}`);
}
