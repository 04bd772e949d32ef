/**
 * DNS servers for the benchmark (test/bench/run.ts), each a child process on
 * loopback, optionally pinned to a CPU with taskset: a local authoritative
 * (unbound with local-data), the peers as caching forwarders to it (unbound,
 * dnsdist, knot-resolver, dnsmasq), the Node ceiling and the tenant-dns
 * sidecar itself. Nothing here leaves loopback: unbound never primes (module
 * "iterator", a forward-zone for "."), dnsdist has its security poll off,
 * kresd has no trust anchor and no priming or time-skew modules, dnsmasq reads
 * no resolv.conf and no hosts file.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeQuery } from './dns-client.ts';
import { buildBundle, imageEntrypoint, imageEnvAt } from './image.ts';
import { freePort } from './ports.ts';
import { KRESD_OFFLINE } from './tls-daemons.ts';
import { unboundConfig, unboundServerLines } from './unbound.ts';
import { nsdConfig } from './nsd.ts';
import { parseInjectorConfig } from '../../injector/config.ts';

/** The repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The zone of the authoritative: `h0.bench.test` … `h<N-1>.bench.test`, A records, TTL 3600. */
export const HOT_ZONE = 'bench.test';
/** Every name below this zone answers an A record (unbound `redirect`): unique names make real cache misses. */
export const MISS_ZONE = 'miss.test';
/** A name every server can answer, used to probe for readiness. */
export const PROBE_NAME = `h0.${HOT_ZONE}`;

/** A benchmarked DNS server process. */
export interface BenchServer {
  /** Short name, e.g. `unbound`. */
  readonly name: string;
  /** UDP (and TCP) port on 127.0.0.1 it answers plain DNS on. */
  readonly port: number;
  /** Process id (taskset execs, so it is the server's own). */
  readonly pid: number;
  /** Milliseconds from spawn to the first answer to a probe sent every 5 ms. */
  readonly startMs: number;
  /** Last lines of the process's output, for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after 3 s; removes its temporary files. Idempotent. */
  stop(): Promise<void>;
}

/** How to reach the authoritative, per transport. */
export interface UpstreamInfo {
  /** Plain DNS port (UDP and TCP). */
  readonly port: number;
  /** DoT port, when the authoritative serves TLS. */
  readonly tlsPort?: number;
  /** DoH port (path /dns-query), when the authoritative serves HTTPS. */
  readonly httpsPort?: number;
  /** The name in the upstream's certificate. */
  readonly tlsName?: string;
  /** CA file that verifies the upstream's certificate. */
  readonly caFile?: string;
}

/** The transport a forwarder uses towards the authoritative. */
export type Transport = 'udp' | 'dot' | 'doh';

/** Options common to every server. */
export interface StartOptions {
  /** taskset CPU list, e.g. `0`; unpinned when absent. */
  readonly cpu?: string;
  /** Milliseconds to wait for the first answer; default 15000. */
  readonly readyTimeoutMs?: number;
  /** A command the server runs under, e.g. `['valgrind', '--tool=callgrind']` (after taskset). */
  readonly wrap?: readonly string[];
  /** The name the readiness probe asks for; default {@link PROBE_NAME}. */
  readonly probeName?: string;
}

/** The authoritative upstream, with its ports. */
export interface Authoritative extends BenchServer {
  readonly upstream: UpstreamInfo;
}

/** Sends a probe (an A query for `name`) every 5 ms until one is answered; resolves with the milliseconds since `since`. */
export function waitForAnswer(port: number, since: number, timeoutMs: number, exited: () => string | undefined, name: string = PROBE_NAME): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const query = encodeQuery({ name, type: 'A', id: 4711 });
    let done = false;
    const finish = (err: Error | undefined, ms = 0): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      sock.close();
      if (err) reject(err);
      else resolve(ms);
    };
    sock.on('error', () => {}); // ICMP port unreachable before the server binds
    sock.on('message', (msg) => {
      if (msg.length >= 12 && msg.readUInt16BE(0) === 4711) finish(undefined, performance.now() - since);
    });
    const timer = setInterval(() => {
      const why = exited();
      if (why !== undefined) return finish(new Error(why));
      if (performance.now() - since > timeoutMs) return finish(new Error(`no answer on 127.0.0.1:${port} within ${timeoutMs} ms`));
      sock.send(query, port, '127.0.0.1');
    }, 5);
    sock.send(query, port, '127.0.0.1');
  });
}

/** Spawns `cmd args` (pinned when `cpu` is set) and waits until it answers on `port`. */
export async function startDaemon(
  name: string,
  port: number,
  cmd: string,
  args: readonly string[],
  opts: StartOptions & { dir?: string; cwd?: string; env?: NodeJS.ProcessEnv },
): Promise<BenchServer> {
  const run = [...(opts.wrap ?? []), cmd, ...args];
  const argv = opts.cpu !== undefined ? ['taskset', '-c', opts.cpu, ...run] : run;
  const since = performance.now();
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd ?? opts.dir ?? ROOT,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exit: string | undefined;
  const exitedP = new Promise<void>((r) =>
    child.once('exit', (code, sig) => {
      exit = `${name} exited (${code ?? sig}) before answering: ${out}`;
      r();
    }),
  );
  child.once('error', (err) => (exit = `starting ${name} (${cmd}): ${err.message}`));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitedP;
        clearTimeout(killer);
      }
    }
    if (opts.dir) rmSync(opts.dir, { recursive: true, force: true });
  };
  let startMs: number;
  try {
    startMs = await waitForAnswer(port, since, opts.readyTimeoutMs ?? 15_000, () => exit, opts.probeName);
  } catch (err) {
    await stop();
    throw new Error(`${name}: ${(err as Error).message} ${out}`);
  }
  return { name, port, pid: child.pid!, startMs, output: () => out, stop };
}

/** The records of the hot zone: `h<i>.bench.test. 3600 IN A …`. */
export function hotZoneRecords(count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(`h${i}.${HOT_ZONE}. 3600 IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

/**
 * The authoritative: unbound serving `names` A records under bench.test and
 * every name under miss.test, over UDP/TCP and, with `tls`, DoT and DoH.
 */
export async function startAuthoritative(
  opts: StartOptions & { names: number; tls?: { certFile: string; keyFile: string; caFile: string; name: string } },
): Promise<Authoritative> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-auth-'));
  const port = await freePort();
  const extra = [
    `  local-zone: "${MISS_ZONE}." redirect`,
    `  local-data: "${MISS_ZONE}. 3600 IN A 192.0.2.53"`,
    '  so-reuseport: no',
    '  incoming-num-tcp: 256',
  ];
  let tlsPort: number | undefined;
  let httpsPort: number | undefined;
  if (opts.tls) {
    tlsPort = await freePort();
    httpsPort = await freePort();
    extra.push(
      `  interface: 127.0.0.1@${tlsPort}`,
      `  interface: 127.0.0.1@${httpsPort}`,
      `  tls-port: ${tlsPort}`,
      `  https-port: ${httpsPort}`,
      `  tls-service-key: "${opts.tls.keyFile}"`,
      `  tls-service-pem: "${opts.tls.certFile}"`,
      '  http-endpoint: "/dns-query"',
      '  http-max-streams: 1000',
    );
  }
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, unboundConfig(dir, port, [{ name: HOT_ZONE, records: hotZoneRecords(opts.names), negativeTtl: 60 }], extra.join('\n')));
  const server = await startDaemon('authoritative', port, 'unbound', ['-d', '-p', '-c', conf], { ...opts, dir });
  const upstream: UpstreamInfo = opts.tls
    ? { port, tlsPort, httpsPort, tlsName: opts.tls.name, caFile: opts.tls.caFile }
    : { port };
  return { ...server, upstream };
}

function needTls(up: UpstreamInfo, transport: Transport): void {
  if (transport !== 'udp' && (up.tlsPort === undefined || up.caFile === undefined)) {
    throw new Error(`the authoritative serves no TLS; cannot forward over ${transport}`);
  }
}

/** unbound as a caching forwarder (forward-zone "."). DoT only. */
export async function startUnboundForwarder(up: UpstreamInfo, opts: StartOptions & { transport?: Transport } = {}): Promise<BenchServer> {
  const transport = opts.transport ?? 'udp';
  needTls(up, transport);
  if (transport === 'doh') throw new Error('unbound cannot forward over DoH');
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-unbound-'));
  const port = await freePort();
  const lines = [
    ...unboundServerLines(dir, port),
    '  do-not-query-localhost: no',
    '  so-reuseport: no',
    '  msg-cache-size: 16m',
    '  rrset-cache-size: 32m',
    '  edns-buffer-size: 1232',
    '  outgoing-range: 4096',
    '  num-queries-per-thread: 4096',
    // "test." is one of unbound's default local zones (RFC 6761); the benchmark zones live under it.
    '  local-zone: "test." nodefault',
  ];
  if (transport === 'dot') lines.push(`  tls-cert-bundle: "${up.caFile}"`);
  lines.push('forward-zone:', '  name: "."');
  if (transport === 'dot') lines.push('  forward-tls-upstream: yes', `  forward-addr: 127.0.0.1@${up.tlsPort}#${up.tlsName}`);
  else lines.push(`  forward-addr: 127.0.0.1@${up.port}`);
  lines.push('remote-control:', '  control-enable: no', '');
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, lines.join('\n'));
  return startDaemon('unbound', port, 'unbound', ['-d', '-p', '-c', conf], { ...opts, dir });
}

/** dnsdist with a packet cache in front of the authoritative; DoT and DoH backends too. */
export async function startDnsdist(up: UpstreamInfo, opts: StartOptions & { transport?: Transport } = {}): Promise<BenchServer> {
  const transport = opts.transport ?? 'udp';
  needTls(up, transport);
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-dnsdist-'));
  const port = await freePort();
  let server: string;
  if (transport === 'udp') server = `newServer({address='127.0.0.1:${up.port}', name='auth', checkName='${PROBE_NAME}.'})`;
  else {
    const tlsPort = transport === 'dot' ? up.tlsPort : up.httpsPort;
    const doh = transport === 'doh' ? ", dohPath='/dns-query'" : '';
    server =
      `newServer({address='127.0.0.1:${tlsPort}', name='auth', tls='openssl', subjectName='${up.tlsName}', ` +
      `caStore='${up.caFile}', validateCertificates=true${doh}, checkName='${PROBE_NAME}.'})`;
  }
  const conf = join(dir, 'dnsdist.conf');
  writeFileSync(
    conf,
    [
      "setSecurityPollSuffix('')",
      `setLocal('127.0.0.1:${port}')`,
      "setACL({'127.0.0.0/8'})",
      server,
      'pc = newPacketCache(100000, {maxTTL=86400, minTTL=0})',
      "getPool(''):setCache(pc)",
      '',
    ].join('\n'),
  );
  return startDaemon('dnsdist', port, 'dnsdist', ['--supervised', '--disable-syslog', '-C', conf], { ...opts, dir });
}

/** Knot Resolver (kresd) stubbing to the authoritative, with a 64 MB cache in its temporary directory. DoT via TLS_FORWARD. */
export async function startKresd(up: UpstreamInfo, opts: StartOptions & { transport?: Transport } = {}): Promise<BenchServer> {
  const transport = opts.transport ?? 'udp';
  needTls(up, transport);
  if (transport === 'doh') throw new Error('kresd cannot forward over DoH');
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-kresd-'));
  const port = await freePort();
  const forward =
    transport === 'dot'
      ? `policy.add(policy.all(policy.TLS_FORWARD({{'127.0.0.1@${up.tlsPort}', hostname='${up.tlsName}', ca_file='${up.caFile}'}})))`
      : `policy.add(policy.all(policy.STUB('127.0.0.1@${up.port}')))`;
  const conf = join(dir, 'kresd.conf');
  writeFileSync(
    conf,
    [
      ...KRESD_OFFLINE,
      `net.listen('127.0.0.1', ${port}, { kind = 'dns' })`,
      'net.ipv6 = false',
      'cache.size = 64 * MB',
      forward,
      '',
    ].join('\n'),
  );
  return startDaemon('kresd', port, 'kresd', ['-n', '-c', conf, dir], { ...opts, dir });
}

/** dnsmasq as a caching forwarder (10,000 entries, its maximum useful size; 1,000 concurrent forwards). */
export async function startDnsmasq(up: UpstreamInfo, opts: StartOptions = {}): Promise<BenchServer> {
  const port = await freePort();
  return startDaemon(
    'dnsmasq',
    port,
    'dnsmasq',
    [
      '-d',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      '--pid-file=',
      '--user=root',
      `--server=127.0.0.1#${up.port}`,
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--cache-size=10000',
      '--dns-forward-max=1000',
      '--log-facility=-',
    ],
    opts,
  );
}

/** A temporary directory for a build made once per process, removed when the process exits. */
function buildDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let policyFile: string | undefined;

/** Deny rules in {@link benchPolicy}. */
const BENCH_POLICY_DENY_RULES = 20;

/** The name of the `i`th deny rule of {@link benchPolicy}, and the exact name it blocks. */
const denyRule = (i: number): string => `deny-${i}`;
const trackerName = (i: number): string => `tracker${i}.example.com`;

/**
 * A name {@link benchPolicy} denies, and the rule that denies it: a sidecar
 * running with the policy answers it NXDOMAIN with EDE 15 naming the rule.
 */
export const BENCH_POLICY_DENIED = { name: trackerName(0), rule: denyRule(0) } as const;

/**
 * A tenant's policy for the bench, written once per process to a temporary
 * file: {@link BENCH_POLICY_DENY_RULES} deny rules of two globs each (a
 * subtree and an exact name, none matching the bench's names), one allow
 * rule for the hot and miss zones, and the PrivateLink split zone of the
 * README: about 130 lines, a tenant's policy of common size. The sidecar's
 * queries then go through policy matching as in a tenant's pod, instead of
 * the empty policy. (Its size matters at start only: loading it is YAML
 * parsing and validation; 200 deny rules, 1,000 lines, start about 95 ms
 * later and idle at 11-13 MiB more than 20 do: test/bench/README.md.)
 */
export function benchPolicy(): string {
  if (policyFile) return policyFile;
  const lines = ['apiVersion: tenant-dns.io/v1alpha1', 'kind: DNSPolicy', 'metadata:', '  name: bench-tenant', 'spec:', '  defaultAction: allow', '  rules:'];
  for (let i = 0; i < BENCH_POLICY_DENY_RULES; i++) {
    lines.push(`    - name: ${denyRule(i)}`, '      action: deny', '      names:', `        - "*.corp${i}.example"`, `        - "${trackerName(i)}"`);
  }
  lines.push('    - name: bench-zones', '      action: allow', '      names:', `        - "*.${HOT_ZONE}"`, `        - "*.${MISS_ZONE}"`);
  lines.push('  splitZones:', '    - name: kafka-eu-west-1', '      names:', '        - "*.eu-west-1.kafka.managed.service"');
  lines.push('      cname: vpce-0a1b2c3d4e5f6a7b8-abcdefgh.kafka.eu-west-1.vpce.amazonaws.com', '      ttl: 60');
  policyFile = join(buildDir('tenant-dns-bench-policy-'), 'policy.yaml');
  writeFileSync(policyFile, lines.join('\n') + '\n');
  return policyFile;
}

const benchScripts = new Map<string, string>();

/**
 * test/bench/NAME.ts compiled to one plain .mjs file (once per process, into a temporary
 * directory). The ceiling and the forwarding floor must run as JavaScript, as the sidecar's
 * bundle does: run as .ts, Node loads its type stripper first, which adds ~60 ms to its start
 * and ~20 MiB to its RSS and so flatters every ratio to it.
 */
function benchScript(name: 'ceiling' | 'forwarder'): string {
  const built = benchScripts.get(name);
  if (built) return built;
  const dir = buildDir(`tenant-dns-bench-${name}-`);
  const out = join(dir, `${name}.mjs`);
  const esbuild = join(ROOT, 'node_modules/.bin/esbuild');
  execFileSync(esbuild, [join(ROOT, `test/bench/${name}.ts`), '--bundle', '--platform=node', '--target=node24', '--format=esm', '--log-level=warning', `--outfile=${out}`], { cwd: ROOT, stdio: 'inherit', timeout: 60_000 });
  benchScripts.set(name, out);
  return out;
}

/** test/bench/ceiling.ts as the bench runs it (see benchScript). */
export function ceilingScript(): string {
  return benchScript('ceiling');
}

/**
 * The Node forwarding floor (test/bench/forwarder.ts, run as JavaScript): forwards each query to
 * `up` with a random ID and matches the reply, and does nothing else; over UDP, or over DoT as the
 * sidecar's stream transport does (`transport: 'dot'`).
 */
export async function startForwarder(up: UpstreamInfo, opts: StartOptions & { transport?: Transport } = {}): Promise<BenchServer> {
  const transport = opts.transport ?? 'udp';
  needTls(up, transport);
  if (transport === 'doh') throw new Error('the forwarding floor forwards over UDP or DoT only');
  const port = await freePort();
  const upstream = transport === 'dot' ? [String(up.tlsPort), up.tlsName!, up.caFile!] : [String(up.port)];
  return startDaemon('node-forwarder', port, process.execPath, [benchScript('forwarder'), String(port), ...upstream], opts);
}

/** The Node ceiling (test/bench/ceiling.ts, run as JavaScript): copies the query ID into a fixed reply. */
export async function startCeiling(opts: StartOptions = {}): Promise<BenchServer> {
  const port = await freePort();
  return startDaemon('node-ceiling', port, process.execPath, [ceilingScript(), String(port)], opts);
}

let bundle: string | undefined;

/**
 * The CLI bundled by deploy/scripts/bundle.sh (dist/tenant-dns.mjs and its chunks), as the image
 * runs it (built once per process into a temporary directory).
 */
export function sidecarBundle(): string {
  if (bundle) return bundle;
  const dir = buildDir('tenant-dns-bench-bundle-');
  buildBundle(dir);
  bundle = join(dir, 'dist/tenant-dns.mjs');
  return bundle;
}

/** The V8 flags the injector gives the sidecar container (its NODE_OPTIONS default), so the bench measures what runs in pods. */
export function podNodeOptions(): string[] {
  return parseInjectorConfig({}).nodeOptions.split(/\s+/).filter(Boolean);
}

/**
 * The tenant-dns sidecar as it runs in a pod: the bundle the image ships,
 * with the node flags of the image's ENTRYPOINT and the injector's
 * NODE_OPTIONS, `sidecar --listen … --upstream …`.
 * `source: true` runs bin/tenant-dns.ts instead (no bundle, Node's defaults).
 * `app` runs a bundle built before (the OUTDIR of deploy/scripts/bundle.sh,
 * e.g. of an older commit) instead of building this tree's.
 */
export async function startTenantDns(
  up: UpstreamInfo,
  opts: StartOptions & { transport?: Transport; nodeArgs?: readonly string[]; extraArgs?: readonly string[]; cwd?: string; source?: boolean; app?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<BenchServer> {
  const transport = opts.transport ?? 'udp';
  needTls(up, transport);
  const port = await freePort();
  const image = opts.source ? undefined : imageEntrypoint();
  const bundle = opts.app !== undefined ? join(opts.app, 'dist/tenant-dns.mjs') : image ? sidecarBundle() : undefined;
  const entry = image ? [...image.nodeFlags, ...podNodeOptions(), bundle!] : [join(ROOT, 'bin/tenant-dns.ts')];
  const args = [...(opts.nodeArgs ?? []), ...entry, 'sidecar', '--listen', `127.0.0.1:${port}`];
  if (transport === 'udp') args.push('--upstream', `udp://127.0.0.1:${up.port}`);
  else {
    const url = transport === 'dot' ? `tls://${up.tlsName}:${up.tlsPort}` : `https://${up.tlsName}:${up.httpsPort}/dns-query`;
    args.push('--upstream', url, '--upstream-ca', up.caFile!, '--bootstrap', `${up.tlsName}=127.0.0.1`);
  }
  // The metrics and admin servers stay on (a user gets them by default) but on loopback ports of their own:
  // the default metrics address is 0.0.0.0:9153, off loopback and shared by every sidecar on the machine.
  const flags = sidecarFlags();
  if (flags.has('--metrics')) args.push('--metrics', `127.0.0.1:${await freePort()}`);
  if (flags.has('--admin')) args.push('--admin', `127.0.0.1:${await freePort()}`);
  args.push(...(opts.extraArgs ?? []));
  const name = 'tenant-dns';
  const env = { ...process.env, ...(image ? imageEnvAt(image, dirname(dirname(bundle!))) : {}), ...opts.env };
  return startDaemon(name, port, process.execPath, args, { ...opts, env });
}

let knownFlags: Set<string> | undefined;

/** The flags `tenant-dns sidecar --help` lists (read once): the CLI is growing while the bench is written. */
export function sidecarFlags(): ReadonlySet<string> {
  if (knownFlags) return knownFlags;
  const help = execFileSync(process.execPath, [join(ROOT, 'bin/tenant-dns.ts'), 'sidecar', '--help'], { encoding: 'utf8', timeout: 15_000 });
  knownFlags = new Set(help.match(/--[a-z][a-z-]*/g) ?? []);
  return knownFlags;
}

/** Memory of a process from /proc/<pid>/status, in KiB: resident now and its high-water mark. */
export function memoryKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : NaN;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** CPU time of a process (all its threads) from /proc/<pid>/stat, in seconds (utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLOCK_TICKS;
}

/** USER_HZ; 100 on every Linux this runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

/** The zone of the gateway benchmark, and the tenant domain inside it. */
export const GATEWAY_ZONE = 'gw.bench.test';
const GATEWAY_TENANT_DOMAIN = `shop.${GATEWAY_ZONE}`;

/** The gateway benchmark's data: the objects file and the flags both servers' data come from. */
export interface GatewayBenchData {
  readonly objectsFile: string;
  /** `tenant-dns gateway` flags for the zone, its name server and the tenant's domain (no --listen). */
  readonly flags: readonly string[];
  /** The names published: `n<i>.shop.gw.bench.test`, then wildcard matches under `*.w.shop.gw.bench.test`. */
  readonly names: readonly string[];
}

/**
 * Writes the objects of the gateway benchmark into `dir`: one tenant's namespace and
 * `ingresses` Ingresses of 100 hosts each (plus a wildcard host), addresses in 10.0.0.0/8.
 */
export function gatewayBenchData(dir: string, ingresses = 10): GatewayBenchData {
  const docs = [`apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tenant-dns.io/tenant: shop}}`];
  const names: string[] = [];
  for (let i = 0; i < ingresses; i++) {
    const hosts = Array.from({ length: 100 }, (_, j) => `n${i * 100 + j}.${GATEWAY_TENANT_DOMAIN}`);
    if (i === 0) hosts.push(`*.w.${GATEWAY_TENANT_DOMAIN}`);
    names.push(...hosts.filter((h) => !h.startsWith('*')));
    docs.push(
      `apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web-${i}, namespace: shop}\nspec:\n  rules:\n${hosts.map((h) => `  - host: "${h}"`).join('\n')}\n` +
        `status:\n  loadBalancer: {ingress: [{ip: 10.1.${i}.1}, {ip: 10.1.${i}.2}]}`,
    );
  }
  for (let k = 0; k < 100; k++) names.push(`x${k}.w.${GATEWAY_TENANT_DOMAIN}`);
  const objectsFile = join(dir, 'gateway-objects.yaml');
  writeFileSync(objectsFile, docs.join('\n---\n') + '\n');
  const flags = ['--zone', GATEWAY_ZONE, '--ns', `ns1.${GATEWAY_ZONE}=127.0.0.1`, '--tenant-domain', `shop=${GATEWAY_TENANT_DOMAIN}`, '--ttl', '300', '--objects', objectsFile];
  return { objectsFile, flags, names };
}

/** `tenant-dns gateway` from the source tree on 127.0.0.1, serving the benchmark's data. */
export async function startGatewayServer(data: GatewayBenchData, opts: StartOptions = {}): Promise<BenchServer> {
  const port = await freePort();
  const args = [join(ROOT, 'bin/tenant-dns.ts'), 'gateway', ...data.flags, '--listen', `127.0.0.1:${port}`, '--metrics', '127.0.0.1:0', '--log-level', 'warn'];
  return startDaemon('tenant-dns gateway', port, process.execPath, args, opts);
}

/** Debian's nsd on 127.0.0.1 serving `zoneFile` (what `tenant-dns gateway --dump-zone` wrote) with minimal responses. */
export async function startNsdServer(zone: string, zoneFile: string, opts: StartOptions = {}): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-nsd-'));
  const port = await freePort();
  const conf = join(dir, 'nsd.conf');
  writeFileSync(conf, nsdConfig(dir, port, [{ name: zone, file: zoneFile }], { minimalResponses: true }));
  return startDaemon('nsd', port, 'nsd', ['-d', '-c', conf], { ...opts, dir });
}
