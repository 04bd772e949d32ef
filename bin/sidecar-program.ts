/**
 * The image's `tenant-dns sidecar`: the program with the sidecar command alone, bundled by
 * deploy/scripts/bundle.sh into one CommonJS file (dist/sidecar.cjs) that the bundle's entry runs with
 * V8's code cache (sidecar/runtime/code-cache.ts). Only what the sidecar uses is in it: no other command's
 * registration, no injector. Its flags, help and errors are the whole CLI's (`sidecar --help` prints the same).
 *
 * A command line of plain `--flag value` pairs of the sidecar's own flags, as the injector writes it, is read
 * without commander (sidecar/cli-args.ts); anything else (help, a bad or unknown flag) goes through commander,
 * which is loaded only then (sidecar/commander.ts).
 */
import { registerSidecarCommand } from '../sidecar/cli.ts';
import { quickSidecarOptions } from '../sidecar/cli-args.ts';
import { runSidecar } from '../sidecar/main.ts';
import { newProgram, runProgram, runReadCommand } from './program.ts';

const quick = process.argv[2] === 'sidecar' ? quickSidecarOptions(process.argv.slice(3)) : undefined;
const done = quick
  ? runReadCommand(() => runSidecar(quick))
  : runProgram((setExit) => {
      const program = newProgram();
      registerSidecarCommand(program, async (opts) => setExit(await runSidecar(opts)));
      return program;
    }, process.argv);
void done.then((code) => {
  process.exitCode = code;
});
