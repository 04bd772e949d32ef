/**
 * The injector under a hostile client (issue 18 item 1), on loopback only:
 * `tenant-dns injector` as the image runs it (the bundle, the image's ENV),
 * pinned to CPU 0; this script on CPU 1 plays three clients by source
 * address:
 *
 * - 127.0.0.3, the API server: small AdmissionReviews one after another on
 *   one keep-alive connection (a pod's CREATE), timed from send to answer;
 * - 127.0.0.2, a pod holding idle connections: `--connections` TCP
 *   connections that never send a byte (default 5,000), held `--hold`
 *   seconds, then closed;
 * - 127.0.0.4, a pod sending large reviews: `--large-clients` keep-alive
 *   connections (default 6), each posting reviews just under the 3 MiB body
 *   cap one after another for `--seconds`.
 *
 * Phases: idle (RSS 2 s after start), baseline reviews, the idle flood (RSS
 * while held, reviews meanwhile, RSS each second for 10 s after the close),
 * the large-body flood (reviews meanwhile, the highest RSS). Everything is
 * bounded: the connection count, each phase's seconds, 60 s per review.
 *
 * Run:    node test/bench/injector-flood.ts [--connections 5000] [--hold 5] [--seconds 10]
 *                                          [--large-clients 6] [--app DIR] [--node-options=OPTS]
 *         --app: a bundle built before (deploy/scripts/bundle.sh DIR, e.g. of
 *         an older commit), to compare before and after on the same machine.
 *         --node-options: the injector's NODE_OPTIONS (default: none, as
 *         before deploy/base/deployment.yaml set them).
 * Output: a markdown table on stdout (test/bench/README.md, "Injector under a
 *         connection flood", says how to read it).
 */
import { execFileSync, spawn } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { quantile } from '../helpers/dnsperf.ts';
import { openIdle, rssMiB, sampleRss } from '../helpers/flood.ts';
import { imageEntrypoint, imageEnvAt } from '../helpers/image.ts';
import { makeTestPki, type TestPki } from '../helpers/k8s-certs.ts';
import { memoryKiB, sidecarBundle } from '../helpers/peers.ts';
import { freePort } from '../helpers/ports.ts';
import { admissionRequest, samplePod } from '../injector/fixtures.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '5000' },
    hold: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    'large-clients': { type: 'string', default: '6' },
    app: { type: 'string' },
    'node-options': { type: 'string' },
  },
});
const CONNECTIONS = Math.min(20_000, Number(values.connections));
const HOLD_S = Math.min(60, Number(values.hold));
const SECONDS = Math.min(60, Number(values.seconds));
const LARGE_CLIENTS = Math.min(32, Number(values['large-clients']));
const PIN = availableParallelism() >= 2;
const SERVICE = 'tenant-dns-injector.tenant-dns-system.svc';
const API_SERVER = '127.0.0.3';
const IDLER = '127.0.0.2';
const LARGE_SENDER = '127.0.0.4';
/** Bytes of the large reviews: just under the injector's 3 MiB body cap. */
const LARGE_BYTES = 3 * 1024 * 1024 - 64 * 1024;

const log = (msg: string) => process.stderr.write(`[injector-flood] ${msg}\n`);

/** A review of a pod with many annotations (many small JSON members: the costly kind to parse and copy), just under `bytes` long. */
function largeReview(bytes: number): string {
  const pod = samplePod();
  const annotations: Record<string, string> = {};
  pod.metadata.annotations = annotations;
  let size = JSON.stringify(admissionRequest(pod)).length;
  for (let i = 0; ; i++) {
    const key = `example.com/k${i}`;
    const value = `value-${i}-${'v'.repeat(16)}`;
    const grows = JSON.stringify(key).length + JSON.stringify(value).length + 2;
    if (size + grows > bytes) break;
    annotations[key] = value;
    size += grows;
  }
  return JSON.stringify(admissionRequest(pod));
}

interface Injector {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

async function startInjector(pki: TestPki, dir: string): Promise<Injector> {
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'clusterDns: 10.96.0.10:53\n');
  const image = imageEntrypoint();
  const bundle = values.app !== undefined ? join(values.app, 'dist/tenant-dns.mjs') : sidecarBundle();
  const args = [...image.nodeFlags, bundle, 'injector', '--listen', `127.0.0.1:${port}`, '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--config', config, '--no-namespace-lookup'];
  const argv = PIN ? ['taskset', '-c', '0', process.execPath, ...args] : [process.execPath, ...args];
  const env = { ...process.env, ...imageEnvAt(image, dirname(dirname(bundle))), ...(values['node-options'] !== undefined ? { NODE_OPTIONS: values['node-options'] } : {}) };
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the injector exited: ${err}`);
    if (Date.now() > deadline) throw new Error(`the injector did not answer within 15 s: ${err}`);
    const up = await get(pki, port, '/healthz').catch(() => 0);
    if (up === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!,
    port,
    stop: async () => {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function get(pki: TestPki, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, localAddress: API_SERVER, ca: pki.ca, servername: SERVICE, agent: false, timeout: 2_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('timeout', function (this: import('node:http').ClientRequest) {
        this.destroy(new Error('timeout'));
      })
      .on('error', reject);
  });
}

/** POSTs `body` to /mutate over `agent`; resolves with the status and the milliseconds from send to the end of the answer. */
function post(ca: Buffer, port: number, agent: https.Agent, from: string, body: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/mutate?timeout=5s', method: 'POST', localAddress: from, ca, servername: SERVICE, agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, timeout: 60_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0 }));
    req.end(body);
  });
}

interface Latency {
  readonly n: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Small reviews from the API server's address one after another, `gapMs` apart, until `until` resolves or `count` are done. */
async function reviews(pki: TestPki, port: number, count: number, until?: Promise<unknown>, gapMs = 10): Promise<Latency> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify(admissionRequest(samplePod()));
  const ms: number[] = [];
  let failed = 0;
  let stop = false;
  void until?.then(() => (stop = true));
  for (let i = 0; i < count && !stop; i++) {
    const r = await post(pki.ca, port, agent, API_SERVER, body);
    if (r.status === 200) ms.push(r.ms);
    else failed++;
    await new Promise((res) => setTimeout(res, gapMs));
  }
  agent.destroy();
  const sorted = Float64Array.from(ms).sort();
  return { n: ms.length, failed, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? NaN };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const lat = (l: Latency) => `${f1(l.p50)} / ${f1(l.p99)} / ${f1(l.max)} ms (${l.n} answered${l.failed ? `, **${l.failed} failed**` : ''})`;

/** What the large-review thread is given. */
interface SenderJob {
  readonly ca: Buffer;
  readonly port: number;
  readonly clients: number;
  readonly seconds: number;
  readonly bytes: number;
}

/** What it answers: the large reviews' answers by status (0: failed), and their size. */
interface SenderResult {
  readonly statuses: Record<number, number>;
  readonly size: number;
}

/** `clients` keep-alive connections from 127.0.0.4 posting large reviews one after another for `seconds`. */
async function sendLarge(job: SenderJob): Promise<SenderResult> {
  const body = largeReview(job.bytes);
  const statuses: Record<number, number> = {};
  const end = Date.now() + job.seconds * 1000;
  const sender = async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    while (Date.now() < end) {
      const r = await post(Buffer.from(job.ca), job.port, agent, LARGE_SENDER, body);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: job.clients }, sender));
  return { statuses, size: body.length };
}

async function main(): Promise<void> {
  // This script (the clients) on CPU 1, away from the injector.
  if (PIN) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-injector-flood-'));
  const pki = makeTestPki([SERVICE]);
  const rows: [string, string][] = [];
  let injector: Injector | undefined;
  try {
    injector = await startInjector(pki, dir);
    const { pid, port } = injector;
    await sleep(2_000);
    rows.push(['idle RSS', `${f1(rssMiB(pid))} MiB`]);
    const baseline = await reviews(pki, port, 200);
    rows.push(['reviews alone, p50 / p99 / max', lat(baseline)]);
    log(`baseline ${lat(baseline)}`);

    // Idle connections from one address.
    const flood = await openIdle(port, [IDLER], CONNECTIONS);
    log(`idle flood: ${flood.held} of ${CONNECTIONS} held`);
    const holdEnd = sleep(HOLD_S * 1000);
    const [heldRss, during] = await Promise.all([sampleRss(pid, 250, holdEnd), reviews(pki, port, 100_000, holdEnd)]);
    rows.push([`idle flood: connections of ${CONNECTIONS} the injector held`, `${flood.held} at first, ${flood.open()} after ${HOLD_S} s`]);
    rows.push(['idle flood: highest RSS while held', `${f1(Math.max(...heldRss))} MiB`]);
    rows.push(['idle flood: reviews meanwhile, p50 / p99 / max', lat(during)]);
    await flood.close();
    const closed = sleep(10_000);
    const after = await sampleRss(pid, 1_000, closed);
    rows.push(['idle flood: RSS each second for 10 s after the close', after.map(f1).join(', ') + ' MiB']);
    log(`after close: ${after.map(f1).join(', ')}`);

    // Large reviews from another address, while the API server's small ones go on. The senders run in a
    // thread of their own, so that encrypting their bodies does not delay the small reviews' client.
    const floodEnd = sleep(SECONDS * 1000);
    const worker = new Worker(new URL(import.meta.url), { workerData: { ca: pki.ca, port, clients: LARGE_CLIENTS, seconds: SECONDS, bytes: LARGE_BYTES } satisfies SenderJob });
    const sent = new Promise<SenderResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const [largeRss, underLarge] = await Promise.all([sampleRss(pid, 250, floodEnd), reviews(pki, port, 100_000, floodEnd)]);
    const { statuses, size } = await sent;
    const large = { length: size };
    rows.push([`large reviews (${(large.length / 1048576).toFixed(2)} MiB, ${LARGE_CLIENTS} clients, ${SECONDS} s): answers by status`, Object.entries(statuses).map(([s, n]) => `${s === '0' ? 'failed' : s}: ${n}`).join(', ')]);
    rows.push(['large reviews: highest RSS', `${f1(Math.max(...largeRss))} MiB`]);
    rows.push(['large reviews: small reviews meanwhile, p50 / p99 / max', lat(underLarge)]);
    rows.push(['peak RSS of the run (VmHWM)', `${f1(memoryKiB(pid).hwm / 1024)} MiB`]);
  } finally {
    await injector?.stop();
    pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`injector ${values.app ? `from ${values.app}` : 'of this tree'}${values['node-options'] ? ` with NODE_OPTIONS=${values['node-options']}` : ''} · node ${process.version} · ${PIN ? 'injector on CPU 0, clients on CPU 1' : 'unpinned'}\n`);
  console.log('| measure | value |');
  console.log('| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

if (isMainThread) await main();
else parentPort!.postMessage(await sendLarge(workerData as SenderJob));
