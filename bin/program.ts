/**
 * What every tenant-dns program shares: its name, description and version, and how it runs and turns errors
 * into an exit code. The whole CLI (commands.ts) and the image's sidecar program (sidecar-program.ts) are
 * built on it, so `tenant-dns sidecar` behaves the same from either.
 */
import type { Command } from 'commander';
import { commander, isCommanderError } from '../sidecar/commander.ts';
import { describeError } from '../sidecar/errors.ts';
import { VERSION } from '../sidecar/main.ts';

/** The program with no command yet: `tenant-dns`, its description and `--version`. */
export function newProgram(): Command {
  const { Command } = commander();
  return new Command('tenant-dns')
    .description('Per-pod DNS sidecar for multi-tenant Kubernetes: tenant policy, split DNS, encrypted upstreams, per-tenant telemetry.')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError();
}

/**
 * Builds the program with `build` (given `setExit`, which receives the exit code of the command that ran),
 * runs it with `argv` (process.argv shape) and resolves with the exit code.
 */
export async function runProgram(build: (setExit: (code: number) => void) => Command, argv: readonly string[]): Promise<number> {
  let code = 0;
  const program = build((c) => (code = c));
  return runReadCommand(async () => {
    await program.parseAsync([...argv]);
    return code;
  });
}

/**
 * Runs a command and resolves with its exit code, turning a failure into one: a commander exit its own code,
 * anything else 1 with the error on stderr. runProgram runs commander's parse through it; the image's sidecar
 * program (bin/sidecar-program.ts) a command whose options it read without commander.
 */
export async function runReadCommand(run: () => Promise<number>): Promise<number> {
  let code: number;
  try {
    code = await run();
  } catch (err) {
    if (isCommanderError(err)) return err.exitCode;
    process.stderr.write(`tenant-dns: ${describeError(err)}\n`);
    return 1;
  }
  return code || (typeof process.exitCode === 'number' ? process.exitCode : 0);
}
