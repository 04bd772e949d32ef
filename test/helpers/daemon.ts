/**
 * Runs a DNS daemon from Debian's packages (unbound, dnsdist, kresd, …) for a
 * test or a benchmark: spawns it, waits until it answers a probe query on
 * loopback, and stops it and removes its directory afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { queryUdp } from './dns-client.ts';

/** How to start one daemon. */
export interface DaemonSpec {
  /** A name for messages, e.g. `dnsdist`. */
  readonly name: string;
  /** The Debian package that provides it, for the error when it is missing. */
  readonly pkg: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Working directory, removed by stop(). */
  readonly dir: string;
  /** A UDP port on 127.0.0.1 and a name that the daemon answers once it is up. */
  readonly probe: { readonly port: number; readonly name: string; readonly type?: string };
  /** How long start-up may take, ms (default 10 000). */
  readonly startTimeoutMs?: number;
}

/** A running daemon. */
export interface Daemon {
  readonly child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Stops it (SIGTERM, waits for exit) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a daemon and resolves once it answers its probe; throws with its output when it exits or stays silent. */
export async function startDaemon(spec: DaemonSpec): Promise<Daemon> {
  let output = '';
  const child = spawn(spec.command, [...spec.args], { cwd: spec.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`starting ${spec.name} (is Debian's ${spec.pkg} installed?): ${err.message}`))),
  );
  spawnError.catch(() => {});
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(spec.dir, { recursive: true, force: true });
    })());
  const deadline = Date.now() + (spec.startTimeoutMs ?? 10_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`${spec.name} exited during start-up: ${output}`);
    }
    try {
      await Promise.race([spawnError, queryUdp('127.0.0.1', spec.probe.port, { name: spec.probe.name, type: spec.probe.type ?? 'A' }, 300)]);
      break;
    } catch (err) {
      if (Date.now() > deadline || (err as Error).message.startsWith('starting ')) {
        await stop();
        throw new Error(`${spec.name} did not answer within ${spec.startTimeoutMs ?? 10_000} ms: ${(err as Error).message} ${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { child, output: () => output, stop };
}
