/**
 * Starts the sidecar for tests: in process (fast, with an injectable clock)
 * or as a child process of the real CLI (signals, exit codes).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { buildConfig } from '../../sidecar/config/flags.ts';
import { parseHostPort, type HostPort } from '../../sidecar/listener/address.ts';
import { silentLogger, type Logger } from '../../sidecar/log.ts';
import type { LineSink } from '../../sidecar/metrics/querylog.ts';
import { startSidecar, type Sidecar } from '../../sidecar/server.ts';
import { startDnsServer, type Handler, type TestDnsServer } from './dns-server.ts';
import { streamSession, udpSession, type DnsSession } from './dns-sessions.ts';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI entry point. */
export const CLI = fileURLToPath(new URL('../../bin/tenant-dns.ts', import.meta.url));

/** A sidecar started in this process on 127.0.0.1, port chosen by the kernel. */
export interface TestSidecar {
  readonly sidecar: Sidecar;
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts a sidecar in process. `flags` are commander-style option values
 * (`{ upstream: ['udp://…'], clusterDns: '…', policy: '/tmp/…' }`); the
 * listen address defaults to 127.0.0.1:0.
 */
export async function startTestSidecar(
  flags: Record<string, unknown>,
  opts: { clock?: () => number; log?: Logger; queryLogSink?: LineSink } = {},
): Promise<TestSidecar> {
  // Kernel-chosen ports for the metrics and admin servers too: tests run sidecars side by side.
  // No query log on the test runner's stdout unless a test asks for one.
  const config = buildConfig({ listen: ['127.0.0.1:0'], metrics: '127.0.0.1:0', admin: '127.0.0.1:0', logQueries: 'none', ...flags });
  const sidecar = await startSidecar(config, { log: opts.log ?? silentLogger, version: 'test', clock: opts.clock, queryLogSink: opts.queryLogSink });
  const addr = sidecar.addresses[0]!;
  return { sidecar, host: addr.host, port: addr.port, stop: () => sidecar.shutdown(1000) };
}

/**
 * `args` with `--metrics` and `--admin` on kernel-chosen loopback ports for
 * the `sidecar` command, unless given: their defaults (9153, 9901) are fixed
 * ports, and tests run sidecars side by side.
 */
export function withTestPorts(args: readonly string[]): string[] {
  if (args[0] !== 'sidecar') return [...args];
  const has = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [...args, ...(has('--metrics') ? [] : ['--metrics=127.0.0.1:0']), ...(has('--admin') ? [] : ['--admin=127.0.0.1:0'])];
}

/** A sidecar child process of the real CLI. */
export interface ChildSidecar {
  readonly child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Resolves with the exit code (signal → -1). */
  exited: Promise<number>;
  /** Kills the process if it is still running. */
  kill(): Promise<void>;
}

/**
 * Runs `tenant-dns <args>` as a child process (Node from PATH, the project's
 * pinned Node under npm); `options` adds spawn options (env, uid, gid);
 * `entry` runs another build of the CLI (the bundle), optionally preceded by
 * node flags (`[...flags, bundle]`); `prefix` is a command that runs node
 * (`['ip', 'netns', 'exec', NS, 'setpriv', …]`: it must exec node, so that
 * killing the child kills node).
 */
export function spawnCli(args: readonly string[], options: SpawnOptions = {}, entry: string | readonly string[] = CLI, prefix: readonly string[] = []): ChildSidecar {
  const head = typeof entry === 'string' ? [entry] : entry;
  const argv = [process.execPath, ...head, ...withTestPorts(args)];
  const [command, ...rest] = [...prefix, ...argv] as [string, ...string[]];
  const child = spawn(command, rest, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit').then(([code]) => (typeof code === 'number' ? code : -1));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Runs `tenant-dns <args>` to completion (killed after `timeoutMs`) and returns its exit code and output. */
export async function runCli(args: readonly string[], timeoutMs = 15_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawnCli(args);
  const timer = setTimeout(() => void p.kill(), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/**
 * Waits until `predicate` holds, polling every 20 ms, failing after
 * `timeoutMs`; `explain` adds context to the failure (a child's stderr).
 */
export async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, explain?: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${explain ? `: ${explain()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A sidecar child that has logged "sidecar serving", with the addresses it bound. */
export interface ServingSidecar extends ChildSidecar {
  /** The DNS port of the first --listen address (UDP and TCP). */
  readonly port: number;
  /** Every address served, in --listen order, with the ports actually bound. */
  readonly listen: readonly HostPort[];
  /** The metrics and admin addresses actually bound (null: disabled). */
  readonly metrics: HostPort | null;
  readonly admin: HostPort | null;
}

/**
 * Runs `tenant-dns sidecar <args>` and resolves once it logs "sidecar serving".
 * Without --listen it listens on 127.0.0.1:0: the kernel picks the port and the
 * log line tells it, so no port is pre-picked and none can be taken by another
 * process in between. Fails at once, with the child's stderr, if it exits, and
 * after `timeoutMs` (the child is then killed).
 */
export async function spawnServing(
  args: readonly string[],
  opts: { timeoutMs?: number; spawn?: SpawnOptions; entry?: string | readonly string[]; prefix?: readonly string[] } = {},
): Promise<ServingSidecar> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const full = args.some((a) => a === '--listen' || a.startsWith('--listen=')) ? [...args] : [...args, '--listen=127.0.0.1:0'];
  const p = spawnCli(full, opts.spawn, opts.entry, opts.prefix);
  let exitCode: number | undefined;
  void p.exited.then((c) => (exitCode = c));
  const servingLine = () => p.stderr().split('\n').find((l) => l.includes('"msg":"sidecar serving"'));
  try {
    await waitFor('the sidecar to log "sidecar serving"', () => {
      if (exitCode !== undefined) throw new Error(`the sidecar exited with ${exitCode} before serving: ${p.stderr()}`);
      return servingLine() !== undefined;
    }, timeoutMs, () => p.stderr());
  } catch (err) {
    await p.kill();
    throw err;
  }
  const fields = JSON.parse(servingLine()!) as { listen: string[]; metrics: string | null; admin: string | null };
  const address = (text: string | null, what: string) => (text === null ? null : parseHostPort(text, what));
  const listen = fields.listen.map((a) => parseHostPort(a, 'listen'));
  return { ...p, port: listen[0]!.port, listen, metrics: address(fields.metrics, 'metrics'), admin: address(fields.admin, 'admin') };
}

/** A sidecar in process in front of a scripted upstream, with a UDP and a TCP session to it. */
export interface SidecarBehind {
  readonly sc: TestSidecar;
  readonly upstream: TestDnsServer;
  /** One UDP socket to the sidecar. */
  readonly udp: DnsSession;
  /** One pipelined TCP connection to the sidecar. */
  readonly tcp: DnsSession;
}

/**
 * Starts a scripted upstream (test/helpers/dns-server.ts, `handler` or its
 * default answers) and an in-process sidecar forwarding to it over UDP, with
 * `flags` added; everything is closed after the test `t`.
 */
export async function sidecarBehind(
  t: { after(fn: () => Promise<void>): void },
  handler?: Handler,
  flags: Record<string, unknown> = {},
  opts: { clock?: () => number } = {},
): Promise<SidecarBehind> {
  const upstream = await startDnsServer(handler ? { handler } : {});
  const sc = await startTestSidecar({ upstream: [upstream.url('udp')], ...flags }, opts);
  const udp = await udpSession(sc.port);
  const tcp = streamSession({ port: sc.port });
  t.after(async () => {
    udp.close();
    tcp.close();
    await sc.stop();
    await upstream.close();
  });
  return { sc, upstream, udp, tcp };
}
