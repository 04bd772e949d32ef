/**
 * The `tenant-dns capture` command (registered from bin/commands.ts): meant as
 * an init container before the sidecar, root with NET_ADMIN and NET_RAW only;
 * it exits when done. Its code (run.ts, node:child_process) loads when the
 * command runs, not when the sidecar starts.
 */
import type { Command } from 'commander';
import type { CaptureCommandOptions } from './run.ts';
import { collect } from '../cli-args.ts';
import { CAPTURE_FLAGS, DEFAULT_SIDECAR_UID } from './rules.ts';

/** Adds `capture` to `program`; `setExit` receives the exit code. */
export function registerCaptureCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('capture')
    .description(
      "Install nftables rules in this network namespace that send DNS from every uid but the sidecar's to the sidecar " +
        '(UDP and TCP to port 53 on any address) and refuse DNS over TLS (TCP 853); for an init container with NET_ADMIN.',
    )
    .option(`${CAPTURE_FLAGS.sidecarUid} <uid>`, "the sidecar's uid: its own traffic is never captured", String(DEFAULT_SIDECAR_UID))
    .option(
      `${CAPTURE_FLAGS.redirectTo} <addr:port>`,
      "the sidecar's listen address, at most one per family (default 127.0.0.1:53 and [::1]:53; a family not given takes its loopback with the same port). Repeatable.",
      collect,
    )
    .option(CAPTURE_FLAGS.dryRun, 'print the nft script instead of installing it')
    .option(CAPTURE_FLAGS.check, 'exit 0 when the rules are in place, 1 when not; changes nothing')
    .action(async (opts: CaptureCommandOptions) => {
      const { runCapture } = await import('./run.ts');
      setExit(await runCapture(opts));
    });
}
