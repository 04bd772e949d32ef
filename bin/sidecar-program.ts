/**
 * The image's `tenant-dns sidecar`: the program with the sidecar command alone, bundled by
 * deploy/scripts/bundle.sh into one CommonJS file (dist/sidecar.cjs) that the bundle's entry runs with
 * V8's code cache (sidecar/runtime/code-cache.ts). Only what the sidecar uses is in it: no other command's
 * registration, no injector. Its flags, help and errors are the whole CLI's (`sidecar --help` prints the same).
 */
import type { Command } from 'commander';
import { registerSidecarCommand } from '../sidecar/cli.ts';
import { runSidecar } from '../sidecar/main.ts';
import { newProgram, runProgram } from './program.ts';

/** The program with the `sidecar` command only. */
export function buildSidecarProgram(setExit: (code: number) => void): Command {
  const program = newProgram();
  registerSidecarCommand(program, async (opts) => setExit(await runSidecar(opts)));
  return program;
}

void runProgram(buildSidecarProgram, process.argv).then((code) => {
  process.exitCode = code;
});
