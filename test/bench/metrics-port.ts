/**
 * The sidecar's metrics port under a hostile client (issue 18 item 2), on
 * loopback only: the sidecar as the image runs it (the bundle, the injector's
 * NODE_OPTIONS, the bench's policy; see run.ts) pinned to CPU 0, an unbound
 * authoritative, dnsperf and this script on CPU 1.
 *
 * - Idle flood: `--connections` TCP connections to the metrics port that
 *   never send a byte (default 12,000), spread over `--sources` loopback
 *   addresses (default 200: a per-address cap alone does not stop them), held
 *   `--hold` seconds, then closed; the sidecar's RSS while held and each
 *   second for 5 s after. The pod's memory limit is 128 Mi.
 * - Scrapes and DNS latency: cache hits at 5,000 QPS for `--seconds` with
 *   and without 4 scrapers fetching /metrics in a loop as fast as they are
 *   answered (keep-alive, from 127.0.0.3), interleaved over `--rounds`
 *   rounds (the order alternating); p50 and p99 of each run, and the
 *   difference with − without per round.
 *
 * Run:    node test/bench/metrics-port.ts [--connections 12000] [--sources 200] [--hold 5]
 *                                         [--rounds 3] [--seconds 4] [--app DIR] [--skip-flood] [--skip-scrapes]
 *         --app: a bundle built before (deploy/scripts/bundle.sh DIR), to compare
 *         before and after on the same machine.
 * Output: markdown tables on stdout (test/bench/README.md, "The metrics port
 *         under a flood", says how to read them).
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runDnsperf, type DnsperfResult } from '../helpers/dnsperf.ts';
import { loopbackSources, openIdle, rssMiB, sampleRss } from '../helpers/flood.ts';
import { benchPolicy, HOT_ZONE, memoryKiB, startAuthoritative, startTenantDns, type BenchServer } from '../helpers/peers.ts';
import { freePort } from '../helpers/ports.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '12000' },
    sources: { type: 'string', default: '200' },
    hold: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    app: { type: 'string' },
    'skip-flood': { type: 'boolean', default: false },
    'skip-scrapes': { type: 'boolean', default: false },
  },
});
const CONNECTIONS = Math.min(16_000, Number(values.connections));
const SOURCES = Math.min(2_000, Number(values.sources));
const HOLD_S = Math.min(60, Number(values.hold));
const ROUNDS = Math.min(10, Number(values.rounds));
const SECONDS = Math.min(30, Number(values.seconds));
const QPS = 5000;
const SCRAPERS = 4;
const PIN = availableParallelism() >= 2;
const SCRAPER = '127.0.0.3';

const log = (msg: string) => process.stderr.write(`[metrics-port] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');

/** `SCRAPERS` loops fetching /metrics from 127.0.0.3 until `stop` resolves; scrapes by status. */
async function scrapers(port: number, stop: Promise<unknown>): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let done = false;
  void stop.then(() => (done = true));
  const one = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (!done) {
      const status = await new Promise<number>((resolve) => {
        http
          .get({ host: '127.0.0.1', port, path: '/metrics', localAddress: SCRAPER, agent, timeout: 10_000 }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('timeout', function (this: http.ClientRequest) {
            this.destroy(new Error('timeout'));
          })
          .on('error', () => resolve(0));
      });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status !== 200) await sleep(10);
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: SCRAPERS }, one));
  return statuses;
}

if (PIN) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const work = mkdtempSync(join(tmpdir(), 'tenant-dns-metrics-port-'));
const hotFile = join(work, 'hot.txt');
writeFileSync(hotFile, Array.from({ length: 100 }, (_, i) => `h${i}.${HOT_ZONE} A`).join('\n') + '\n');
const out: string[] = [`sidecar ${values.app ? `from ${values.app}` : 'of this tree'} · node ${process.version} · ${PIN ? 'sidecar on CPU 0; dnsperf, the authoritative and the clients on CPU 1' : 'unpinned'}`, ''];
const auth = await startAuthoritative({ names: 100, ...(PIN ? { cpu: '1' } : {}) });
let sidecar: BenchServer | undefined;
try {
  const metricsPort = await freePort();
  sidecar = await startTenantDns(auth.upstream, {
    ...(PIN ? { cpu: '0' } : {}),
    ...(values.app !== undefined ? { app: values.app } : {}),
    extraArgs: ['--policy', benchPolicy(), '--metrics', `127.0.0.1:${metricsPort}`],
  });
  const { pid } = sidecar;
  await sleep(1_000);
  const idle = rssMiB(pid);

  if (!values['skip-flood']) {
    const flood = await openIdle(metricsPort, loopbackSources(SOURCES), CONNECTIONS);
    log(`idle flood: ${flood.held} of ${CONNECTIONS} held`);
    const held = await sampleRss(pid, 250, sleep(HOLD_S * 1000));
    const stillOpen = flood.open();
    await flood.close();
    const after = await sampleRss(pid, 1_000, sleep(5_000));
    const scrape = await new Promise<number>((resolve) => http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0)));
    out.push(`### Idle flood of the metrics port: ${CONNECTIONS} connections from ${SOURCES} addresses, held ${HOLD_S} s`, '');
    out.push('| measure | value |', '| --- | --- |');
    out.push(`| idle RSS before | ${f1(idle)} MiB |`);
    out.push(`| connections the sidecar held | ${flood.held} at first, ${stillOpen} after ${HOLD_S} s |`);
    out.push(`| highest RSS while held | ${f1(Math.max(...held))} MiB |`);
    out.push(`| RSS each second for 5 s after the close | ${after.map(f1).join(', ')} MiB |`);
    out.push(`| peak RSS (VmHWM) | ${f1(memoryKiB(pid).hwm / 1024)} MiB |`);
    out.push(`| a scrape afterwards | ${scrape} |`, '');
  }

  if (!values['skip-scrapes']) {
    await runDnsperf({ port: sidecar.port, queryFile: hotFile, seconds: 2, maxRuns: 1, ...(PIN ? { cpu: '1' } : {}) });
    const rows: string[] = [];
    const diffs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const results: Record<'without' | 'with', { run: DnsperfResult; scrapes?: Map<number, number> }> = {} as never;
      for (const mode of r % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)) {
        const dns = runDnsperf({ port: sidecar.port, queryFile: hotFile, seconds: SECONDS, qps: QPS, latencies: true, ...(PIN ? { cpu: '1' } : {}) });
        const scrapes = mode === 'with' ? scrapers(metricsPort, dns) : undefined;
        const run = await dns;
        results[mode] = { run, ...(scrapes ? { scrapes: await scrapes } : {}) };
        log(`round ${r + 1} ${mode}: p50 ${f3(run.p50Ms!)} p99 ${f3(run.p99Ms!)} ms`);
      }
      const diff = results.with.run.p99Ms! - results.without.run.p99Ms!;
      diffs.push(diff);
      const scraped = [...results.with.scrapes!].map(([s, n]) => `${s || 'failed'}: ${n}`).join(', ');
      rows.push(
        `| ${r + 1} | ${f3(results.without.run.p50Ms!)} / ${f3(results.without.run.p99Ms!)} | ${f3(results.with.run.p50Ms!)} / ${f3(results.with.run.p99Ms!)} | ${diff >= 0 ? '+' : ''}${f3(diff)} | ${scraped} |`,
      );
    }
    const sorted = [...diffs].sort((a, b) => a - b);
    out.push(`### Cache hits at ${QPS} QPS with and without ${SCRAPERS} scrapers (${SECONDS} s runs, interleaved)`, '');
    out.push('| round | without: p50 / p99 ms | with: p50 / p99 ms | p99 with − without, ms | scrapes by status |', '| ---: | ---: | ---: | ---: | --- |');
    out.push(...rows);
    out.push('', `Median p99 difference: ${f3(sorted[sorted.length >> 1]!)} ms (target ≤ 1 ms).`, '');
  }
} finally {
  await sidecar?.stop();
  await auth.stop();
  rmSync(work, { recursive: true, force: true });
}
console.log(out.join('\n'));
