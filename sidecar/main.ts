/**
 * What the `tenant-dns sidecar` command runs: load config, build and start
 * the sidecar; SIGHUP reloads the policy; SIGTERM/SIGINT stop accepting,
 * answer what is in flight, and exit 0. The command line itself is built in
 * bin/commands.ts, which registers this command with sidecar/cli.ts.
 */
import { buildConfig } from './config/flags.ts';
import { loadYamlFile } from './config/load.ts';
import { SidecarConfigSchema } from './config/schema.ts';
import { describeError, errorCode } from './errors.ts';
import { createLogger } from './log.ts';
import { startSidecar, type Sidecar } from './server.ts';
import { readFileSync } from './runtime/builtins.ts';
import { HELPER_NICE, yieldHelperThreads } from './runtime/threads.ts';
import { nextTurn } from './runtime/turn.ts';

/** The package version, for `--version`, logs and build info. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** How long SIGTERM waits for in-flight queries before closing anyway, in ms. */
const DRAIN_TIMEOUT_MS = 5_000;

/**
 * Runs the `sidecar` command until SIGTERM/SIGINT. Resolves with the exit
 * code: 0 after a clean drain, 1 when start-up fails (the error is printed
 * as one line on stderr).
 *
 * The signal handlers are installed before start-up, not after it: "sidecar
 * serving" is logged before startSidecar returns, and a SIGHUP that came
 * while no handler was installed took the default action and killed the
 * process. A SIGHUP during start-up reloads the policy once the sidecar
 * serves; a SIGTERM or SIGINT during start-up stops it then.
 */
export async function runSidecar(opts: Record<string, unknown>): Promise<number> {
  const bootLog = createLogger({ component: 'sidecar' });
  let sidecar: Sidecar | undefined;
  let reloadWanted = false;
  let stopWanted: string | undefined;
  let stop: ((signal: string) => void) | undefined;
  const onHup = () => {
    if (sidecar) void sidecar.reloadPolicy();
    else reloadWanted = true;
  };
  const onStop = (signal: string) => {
    if (stop) stop(signal);
    else stopWanted ??= signal;
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  process.on('SIGHUP', onHup);
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);
  try {
    const file = typeof opts.config === 'string' ? (loadYamlFile(opts.config, SidecarConfigSchema) as Record<string, unknown>) : {};
    const config = buildConfig(opts, file);
    const log = createLogger({ component: 'sidecar', tenant: config.tenant, ...(config.pod ? { pod: config.pod } : {}) });
    sidecar = await startSidecar(config, { log, version: VERSION });
  } catch (err) {
    process.off('SIGHUP', onHup);
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    bootLog('error', 'sidecar failed to start', { code: errorCode(err), error: describeError(err) });
    return 1;
  }
  const running = sidecar;
  await nextTurn();
  // Here, not in startSidecar: the process's threads are the CLI's to manage (tests start sidecars in their own process).
  const helpers = yieldHelperThreads();
  running.log(helpers.failed > 0 ? 'warn' : 'info', 'helper threads yield to the main thread', { nice: HELPER_NICE, ...helpers });
  if (reloadWanted) void running.reloadPolicy();
  return await new Promise<number>((resolve) => {
    stop = (signal: string) => {
      process.off('SIGHUP', onHup);
      running.log('info', 'shutting down: draining in-flight queries', { signal });
      void running.shutdown(DRAIN_TIMEOUT_MS).then(() => resolve(0));
    };
    if (stopWanted !== undefined) stop(stopWanted);
  });
}
