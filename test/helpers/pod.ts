/**
 * A pod simulated with Linux network namespaces, for test/pod/: what the
 * kubelet would build from the injector's own output for the pod.
 *
 * - the pod's network namespace: loopback up, the pod's sysctls
 *   (`net.ipv4.ip_unprivileged_port_start=53`) set in it, a veth to a second
 *   namespace holding the test hosts (test/helpers/pod-hosts.ts) on
 *   198.51.100.0/24;
 * - its resolv.conf rendered from the dnsConfig of `mutatePod`'s result, at
 *   /etc/netns/NAME/resolv.conf, which `ip netns exec` bind-mounts over
 *   /etc/resolv.conf;
 * - with `capture: init`, the capture init container's args run first (root
 *   with NET_ADMIN and NET_RAW only), as `tenant-dns capture`;
 * - the sidecar container's args (env references expanded, volume mount
 *   paths mapped to temp dirs holding the policy and the pod's labels) run as
 *   its uid with no capabilities, bound to 127.0.0.1:53 and forwarding to
 *   the test hosts, with `--log-queries all` and the test CA added;
 * - app processes run in the pod as a non-root uid.
 *
 * Needs root and `ip netns`; {@link podSkipReason} says why not. Everything
 * is removed in t.after, also when the test fails: namespace names are unique
 * per process and pod, and the veth pair lives only in the two namespaces.
 * A real cluster adds what this cannot: the container runtime's mount and
 * pid namespaces, the CNI plugin's addressing and routes, kube-proxy's
 * Service VIPs, and the kubelet's probes and restarts.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { parseInjectorConfig } from '../../injector/config.ts';
import { mutatePod } from '../../injector/mutate.ts';
import { CAPTURE_NAME, SIDECAR_NAME } from '../../injector/names.ts';
import { buildCaptureRules, redirectTargets } from '../../sidecar/capture/rules.ts';
import type { QueryLogLine } from '../../sidecar/metrics/querylog.ts';
import { BARRIER_ZONE, PodNet, type HostQuery } from './pod-hosts.ts';
import { CLI, spawnCli, spawnServing, waitFor, type ServingSidecar } from './sidecar.ts';
import { testPki } from './tls.ts';

/** The uid app processes run as: not root, not the sidecar. */
export const APP_UID = 1000;

const HOSTS_SCRIPT = fileURLToPath(new URL('./pod-hosts.ts', import.meta.url));
const PROBE_SOURCE = fileURLToPath(new URL('../pod/gai-probe.c', import.meta.url));

/** PATH with the sbin directories, where Debian puts ip and nft. */
const ENV = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };

/** Commands the pods need: the binary and the Debian package that has it (scripts/install-test-deps.sh installs them). */
const NEEDED: Readonly<Record<string, string>> = { ip: 'iproute2', nft: 'nftables', setpriv: 'util-linux', getent: 'libc-bin', dig: 'dnsutils', 'musl-gcc': 'musl-tools' };

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { env: ENV, stdio: 'ignore' }).status === 0;
}

let skipReason: string | undefined | null = null;

/** Why pods cannot run here (not root, no `ip netns`, a missing command), or undefined when they can. */
export function podSkipReason(): string | undefined {
  if (skipReason !== null) return skipReason;
  skipReason = (() => {
    if (process.platform !== 'linux') return 'pods are Linux network namespaces';
    if (process.getuid?.() !== 0) return 'pods need root (network namespaces, nftables, setpriv); CI runs them as root';
    const missing = Object.keys(NEEDED).filter((c) => !has(c));
    if (missing.length > 0) return `missing ${missing.map((c) => `${c} (Debian ${NEEDED[c]})`).join(', ')}: run scripts/install-test-deps.sh`;
    const probe = `tdns-probe-${process.pid}`;
    const added = spawnSync('ip', ['netns', 'add', probe], { env: ENV, encoding: 'utf8' });
    if (added.status !== 0) return `ip netns add does not work here: ${added.stderr.trim()}`;
    spawnSync('ip', ['netns', 'del', probe], { env: ENV });
    return undefined;
  })();
  return skipReason;
}

let nftReason: string | undefined | null = null;

/**
 * Why the capture rules cannot be loaded here (no pods, or a kernel without
 * nf_tables, NAT, conntrack zones), or undefined when they can: loads the
 * default capture rules in a throwaway namespace.
 */
export function captureSkipReason(): string | undefined {
  if (nftReason !== null) return nftReason;
  nftReason = podSkipReason();
  if (nftReason !== undefined) return nftReason;
  const probe = `tdns-nft-${process.pid}`;
  spawnSync('ip', ['netns', 'add', probe], { env: ENV });
  const r = spawnSync('ip', ['netns', 'exec', probe, 'nft', '-f', '-'], {
    env: ENV,
    encoding: 'utf8',
    input: buildCaptureRules({ sidecarUid: 65532, redirect: redirectTargets([]) }).script,
  });
  spawnSync('ip', ['netns', 'del', probe], { env: ENV });
  nftReason = r.status === 0 ? undefined : `the kernel does not load the capture rules (nf_tables, NAT, conntrack zones): ${(r.stderr ?? '').trim()}`;
  return nftReason;
}

/** Runs a command to completion, failing with its stderr. */
function sh(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** resolv.conf text for a pod's dnsConfig (nameservers, searches, options), as the kubelet writes it. */
export function resolvConfOf(dnsConfig: { nameservers?: string[]; searches?: string[]; options?: { name: string; value?: string }[] }): string {
  const lines = (dnsConfig.nameservers ?? []).map((n) => `nameserver ${n}`);
  if (dnsConfig.searches?.length) lines.push(`search ${dnsConfig.searches.join(' ')}`);
  if (dnsConfig.options?.length) lines.push(`options ${dnsConfig.options.map((o) => (o.value === undefined ? o.name : `${o.name}:${o.value}`)).join(' ')}`);
  return lines.join('\n') + '\n';
}

/** What a process run in the pod printed and how it ended (exit code; -1 for a signal). */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link Pod.run}. */
export interface RunOptions {
  /** Default {@link APP_UID}. */
  readonly uid?: number;
  /** Run as root with NET_ADMIN and NET_RAW only, the capture init container's rights (`uid` is then ignored). */
  readonly netAdmin?: boolean;
  /** resolv.conf text the process sees instead of the pod's (an image that carries its own). */
  readonly resolvConf?: string;
  /** Killed after this long (default 15 s). */
  readonly timeoutMs?: number;
}

/** What {@link startPod} takes. */
export interface PodOptions {
  /** The pod's name; its labels are `app: NAME`. */
  readonly name: string;
  readonly namespace?: string;
  readonly annotations?: Record<string, string>;
  /** The tenant's DNSPolicy YAML, as the tenant policy ConfigMap would hold it. */
  readonly policy: string;
  /** The platform layer's DNSPolicy YAML (the platform ConfigMap, always mounted); default the empty policy the controller renders when no ClusterDNSPolicy selects the namespace. */
  readonly platformPolicy?: string;
  /** Injector configuration over the pod defaults (cluster DNS and the DoT upstream on the test hosts), e.g. `{ capture: 'init' }`. */
  readonly config?: Record<string, unknown>;
  /** Sidecar flags added after the injected ones (a later flag wins), e.g. `--autopath=false`. */
  readonly sidecarArgs?: readonly string[];
}

/** A running simulated pod. */
export interface Pod {
  /** The pod's network namespace. */
  readonly netns: string;
  /** The pod as the injector patched it. */
  readonly injected: Record<string, any>;
  /** The pod's resolv.conf. */
  readonly resolvConf: string;
  readonly sidecar: ServingSidecar;
  /** What the capture init container printed (empty without capture). */
  readonly captureOutput: string;
  /** Runs `argv` in the pod as an app (uid {@link APP_UID}, no capabilities). */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs `tenant-dns <args>` in the pod as root with NET_ADMIN and NET_RAW only (the capture init container's rights). */
  runCapture(args: readonly string[]): Promise<RunResult>;
  /** The sidecar's query log so far. */
  queryLog(): QueryLogLine[];
  /** The queries the test hosts received so far. */
  hostQueries(): HostQuery[];
  /**
   * Waits until everything answered before it is in the query log and the
   * hosts' log: sends a fresh name through the sidecar to the DoT host and
   * waits for it in both (each log is written in order).
   */
  barrier(): Promise<void>;
  /** Stops the processes and removes the namespaces and files; idempotent. */
  close(): Promise<void>;
}

let pods = 0;

/** Default injector configuration of a simulated pod: kube-dns and the DoT upstream on the test hosts. */
const POD_CONFIG = {
  clusterDns: `${PodNet.clusterDns}:53`,
  upstreams: [`tls://${PodNet.dotName}:853`],
  bootstrap: [`${PodNet.dotName}=${PodNet.dot}`],
};

/** Expands `$(NAME)` in a container arg from its env (values and the pod's metadata), as the kubelet does. */
function expandArg(arg: string, env: Record<string, string>): string {
  return arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
}

/** Lines of a JSON-lines stream, parsed; a line that is not JSON is skipped. */
function jsonLines<T>(text: string): T[] {
  return text.split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as T];
    } catch {
      return [];
    }
  });
}

/**
 * The `t` of {@link startPod} for pods a suite starts in its `before` hooks:
 * their teardowns are kept and run, last started first, in an `after` hook
 * of the suite. Call it in the describe body.
 */
export function suiteTeardowns(): { after(fn: () => Promise<void>): void } {
  const teardowns: (() => Promise<void>)[] = [];
  after(async () => {
    for (const f of teardowns.reverse()) await f();
  });
  return { after: (fn) => void teardowns.push(fn) };
}

/**
 * Starts a pod for `opts`. `t.after` (a test's context, or `{ after }` of
 * node:test for a suite) gets its teardown; a start that fails tears down
 * what it had built before it throws.
 */
export async function startPod(t: { after(fn: () => Promise<void>): void }, opts: PodOptions): Promise<Pod> {
  const id = `${process.pid}-${++pods}`;
  const netns = `tdns-pod-${id}`;
  const hostsNs = `tdns-hosts-${id}`;
  const dir = mkdtempSync(join(tmpdir(), `tenant-dns-pod-${id}-`));
  chmodSync(dir, 0o755);
  const cleanups: (() => void | Promise<void>)[] = [];
  const teardown = async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  };
  t.after(teardown);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  try {
    return await build();
  } catch (err) {
    await teardown();
    throw err;
  }

  async function build(): Promise<Pod> {
    // The injector's output for the pod.
    const namespace = opts.namespace ?? 'team-a';
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: opts.name, namespace, labels: { app: opts.name }, annotations: { ...opts.annotations } },
      spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
    };
    const config = parseInjectorConfig({ ...POD_CONFIG, ...opts.config });
    const result = mutatePod(pod, { namespace, tenant: namespace, operation: 'CREATE', config });
    if (result.decision.outcome !== 'inject') throw new Error(`the injector did not inject the pod: ${result.decision.outcome} ${result.decision.reason}: ${result.decision.detail}`);
    const injected = result.patched as Record<string, any>;
    const containers = [...(injected.spec.initContainers ?? []), ...injected.spec.containers] as Record<string, any>[];

    // The network: two namespaces joined by a veth pair that only ever exists inside them.
    for (const ns of [netns, hostsNs]) {
      sh('ip', ['netns', 'add', ns]);
      cleanups.push(() => void spawnSync('ip', ['netns', 'del', ns], { env: ENV }));
    }
    const resolvDir = join('/etc/netns', netns);
    cleanups.push(() => rmSync(resolvDir, { recursive: true, force: true }));
    sh('ip', ['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostsNs]);
    const hostAddrs = [PodNet.hostsGateway, PodNet.clusterDns, PodNet.publicResolver, PodNet.dot];
    for (const [ns, addrs] of [[netns, [PodNet.pod]], [hostsNs, hostAddrs]] as const) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      for (const a of addrs) sh('ip', ['-n', ns, 'addr', 'add', `${a}/${PodNet.prefix}`, 'dev', 'eth0']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    // The pod's sysctls, set in its namespace as the kubelet does.
    for (const s of (injected.spec.securityContext?.sysctls ?? []) as { name: string; value: string }[]) {
      sh('ip', ['netns', 'exec', netns, 'sh', '-c', 'printf %s "$1" > "$0"', `/proc/sys/${s.name.replace(/\./g, '/')}`, s.value]);
    }
    const resolvConf = resolvConfOf(injected.spec.dnsConfig);
    mkdirSync(resolvDir, { recursive: true });
    writeFileSync(join(resolvDir, 'resolv.conf'), resolvConf);

    // The test hosts.
    const pki = testPki();
    const hosts = spawn('ip', ['netns', 'exec', hostsNs, process.execPath, HOSTS_SCRIPT, JSON.stringify({ certFile: pki.good.certFile, keyFile: pki.good.keyFile })], {
      env: ENV,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let hostsOut = '';
    let hostsErr = '';
    let hostsExit: number | null | undefined;
    hosts.stdout.on('data', (d: Buffer) => (hostsOut += d.toString()));
    hosts.stderr.on('data', (d: Buffer) => (hostsErr += d.toString()));
    const hostsExited = new Promise<void>((resolve) => hosts.once('exit', (code) => resolve(void (hostsExit = code))));
    cleanups.push(async () => {
      if (hostsExit === undefined) {
        hosts.kill('SIGKILL');
        await hostsExited;
      }
    });
    await waitFor('the test hosts to listen', () => {
      if (hostsExit !== undefined) throw new Error(`the test hosts exited with ${hostsExit}: ${hostsErr}`);
      return hostsOut.includes('{"ready":true}');
    }, 15_000, () => hostsErr);

    const inPod = (prefix: readonly string[]) => ['ip', 'netns', 'exec', netns, ...prefix];
    const runCli = async (args: readonly string[], prefix: readonly string[]): Promise<RunResult> => {
      const p = spawnCli(args, { env: ENV }, CLI, inPod(prefix));
      const timer = setTimeout(() => void p.kill(), 15_000);
      const code = await p.exited;
      clearTimeout(timer);
      return { code, stdout: p.stdout(), stderr: p.stderr() };
    };
    const captureRights = ['setpriv', '--reuid=0', '--regid=0', '--clear-groups', '--bounding-set=-all,+net_admin,+net_raw', '--inh-caps=-all', '--'];
    const runCapture = (args: readonly string[]) => runCli(args, captureRights);

    // The capture init container, first, as the injector ordered it.
    let captureOutput = '';
    const capture = containers.find((c) => c.name === CAPTURE_NAME);
    if (capture) {
      const r = await runCapture(capture.args as string[]);
      if (r.code !== 0) throw new Error(`the capture init container exited with ${r.code}: ${r.stderr}`);
      captureOutput = r.stdout;
    }

    // The sidecar container: its args with env references expanded and mount paths mapped to files here.
    const container = containers.find((c) => c.name === SIDECAR_NAME)!;
    const env: Record<string, string> = {};
    for (const e of container.env as { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]) {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      env[e.name] = e.value ?? (field === 'metadata.name' ? opts.name : field === 'metadata.namespace' ? namespace : '');
    }
    const files: Record<string, Record<string, string>> = {
      'tenant-dns-policy': { 'policy.yaml': opts.policy },
      'tenant-dns-platform': { 'policy.yaml': opts.platformPolicy ?? 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: platform\nspec: {}\n' },
      'tenant-dns-podinfo': { labels: Object.entries(pod.metadata.labels).map(([k, v]) => `${k}="${v}"`).join('\n') + '\n' },
    };
    const mounts = (container.volumeMounts as { name: string; mountPath: string }[]).map((m) => {
      const local = join(dir, m.name);
      mkdirSync(local, { mode: 0o755 });
      for (const [file, text] of Object.entries(files[m.name] ?? {})) writeFileSync(join(local, file), text, { mode: 0o644 });
      return { mountPath: m.mountPath, local };
    });
    const args = (container.args as string[]).map((a) => {
      let out = expandArg(a, env);
      for (const m of mounts) out = out.replace(`=${m.mountPath}/`, `=${m.local}/`);
      return out;
    });
    const uid = Number(container.securityContext.runAsUser);
    const gid = Number(container.securityContext.runAsGroup ?? uid);
    // The test CA, readable by the sidecar's uid (the PKI's own directory is root's).
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, pki.ca, { mode: 0o644 });
    const sidecar = await spawnServing([...args, `--upstream-ca=${ca}`, '--log-queries=all', ...(opts.sidecarArgs ?? [])], {
      prefix: inPod(['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--']),
      spawn: { env: { ...ENV, ...(env.NODE_OPTIONS ? { NODE_OPTIONS: env.NODE_OPTIONS } : {}) } },
    });
    cleanups.push(() => sidecar.kill());

    const run = async (argv: readonly string[], o: RunOptions = {}): Promise<RunResult> => {
      const appUid = o.uid ?? APP_UID;
      const as = o.netAdmin
        ? [...captureRights, ...argv]
        : ['setpriv', `--reuid=${appUid}`, `--regid=${appUid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--', ...argv];
      let command = inPod(as);
      if (o.resolvConf !== undefined) {
        const file = join(dir, `resolv-${Math.random().toString(36).slice(2)}.conf`);
        writeFileSync(file, o.resolvConf, { mode: 0o644 });
        // `ip netns exec` gives the process its own mount namespace: this bind mount stays in it.
        command = inPod(['sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', file, ...as]);
      }
      const [cmd, ...rest] = command as [string, ...string[]];
      const child = spawn(cmd, rest, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 15_000);
      const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? -1)));
      clearTimeout(timer);
      return { code, stdout, stderr };
    };

    const queryLog = () => jsonLines<QueryLogLine>(sidecar.stdout());
    const hostQueries = () => jsonLines<HostQuery>(hostsOut).filter((q) => 'server' in q);
    let barriers = 0;
    const barrier = async () => {
      const name = `b${++barriers}.${BARRIER_ZONE}`;
      const r = await run(['dig', '+short', '+tries=1', '+time=3', `@127.0.0.1`, name, 'A']);
      if (r.code !== 0) throw new Error(`barrier query failed: ${r.stdout}${r.stderr}`);
      await waitFor(`barrier ${name} in the query log and the hosts' log`, () => queryLog().some((l) => l.qname === name) && hostQueries().some((q) => q.name === name));
    };

    return { netns, injected, resolvConf, sidecar, captureOutput, run, runCapture, queryLog, hostQueries, barrier, close: teardown };
  }
}

let probe: Promise<string> | undefined;

/**
 * The musl getaddrinfo probe (test/pod/gai-probe.c), built with Debian's
 * musl-gcc (static) into a temp dir on first use; its path. Removed at exit.
 */
export function muslProbe(): Promise<string> {
  probe ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-musl-'));
    chmodSync(dir, 0o755);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'gai-probe');
    sh('musl-gcc', ['-static', '-O1', '-Wall', '-o', out, PROBE_SOURCE]);
    chmodSync(out, 0o755);
    return out;
  })();
  return probe;
}
