/**
 * The tenant-dns command line: builds the commander program and registers
 * every command from here, above the folders that implement them: `sidecar`,
 * `policy` and `capture` from sidecar/, `injector`, `inject` and `render` from injector/, `gateway`
 * from gateway/. So
 * neither folder imports the other (test/meta/imports.test.ts).
 *
 * Start-up cost: `tenant-dns sidecar` loads only what it uses. The injector's
 * commands are registered from injector/cli.ts, which imports their code when
 * one of them runs (test/bench/README.md, "Start-up and idle memory"). In the
 * image, `sidecar` does not come here at all: the bundle's entry
 * (bundle-entry.ts) runs it from its own file (sidecar-program.ts).
 */
import type { Command } from 'commander';
import { registerGatewayCommand } from '../gateway/cli.ts';
import { registerInjectorCommands } from '../injector/cli.ts';
import { registerCaptureCommand } from '../sidecar/capture/cli.ts';
import { registerSidecarCommand } from '../sidecar/cli.ts';
import { runSidecar } from '../sidecar/main.ts';
import { registerPolicyCommands } from '../sidecar/policy/cli.ts';
import { newProgram, runProgram } from './program.ts';

/** Builds the command line program. `setExit` receives the exit code of the command that ran. */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = newProgram();
  registerSidecarCommand(program, async (opts) => setExit(await runSidecar(opts)));
  registerPolicyCommands(program, setExit);
  registerCaptureCommand(program, setExit);
  registerInjectorCommands(program);
  registerGatewayCommand(program, setExit);
  return program;
}

/** Runs the CLI with `argv` (process.argv shape) and resolves with the exit code. */
export function main(argv: readonly string[]): Promise<number> {
  return runProgram(buildProgram, argv);
}
