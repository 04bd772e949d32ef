/**
 * What `tenant-dns capture` does: installs, prints or checks the DNS capture
 * rules of rules.ts in the current network namespace by running Debian's
 * `nft`. The I/O edge of the capture folder; cli.ts loads it when the command
 * runs.
 */
import { spawn } from 'node:child_process';
import { describeError, ErrorCodes, SidecarError } from '../errors.ts';
import { formatHostPort } from '../listener/address.ts';
import { buildCaptureRules, CAPTURE_TABLE, checkListing, redirectTargets, sidecarUid, type CaptureOptions, type CaptureRuleset } from './rules.ts';

/** Milliseconds one nft run may take before it is killed. */
const NFT_TIMEOUT_MS = 10_000;

/** What one nft run printed and how it ended. */
interface NftResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `nft args` with `input` on stdin; /usr/sbin and /sbin are searched too (Debian installs nft there). */
function runNft(args: readonly string[], input?: string): Promise<NftResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
    const child = spawn('nft', [...args], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: NFT_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new SidecarError(ErrorCodes.CAPTURE_FAILED, `running nft ${args.join(' ')} (Debian package nftables)`, { cause: err })));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => {}); // nft exited before reading: its exit code says why
    child.stdin.end(input ?? '');
  });
}

const TABLE = `${CAPTURE_TABLE.family} ${CAPTURE_TABLE.name}`;

/** Problems with the installed rules: none when they are in place. */
async function installedProblems(expected: CaptureRuleset): Promise<string[]> {
  const listed = await runNft(['-j', 'list', 'table', CAPTURE_TABLE.family, CAPTURE_TABLE.name]);
  if (listed.code !== 0) return [`table ${TABLE} is not installed (${listed.stderr.trim().split('\n')[0] ?? 'nft failed'})`];
  let json: unknown;
  try {
    json = JSON.parse(listed.stdout);
  } catch (err) {
    throw new SidecarError(ErrorCodes.CAPTURE_FAILED, `reading the listing of table ${TABLE} from nft -j`, { cause: err });
  }
  return checkListing(json, expected);
}

function summary(opts: CaptureOptions, rules: CaptureRuleset): string {
  const { ipv4, ipv6 } = opts.redirect;
  return (
    `table ${TABLE} (digest ${rules.digest}): UDP and TCP to port 53 from every uid but ${opts.sidecarUid} go to ` +
    `${formatHostPort(ipv4)} (IPv4) and ${formatHostPort(ipv6)} (IPv6); TCP to port 853 from them is refused`
  );
}

/** What {@link runCapture} takes: commander's options. */
export interface CaptureCommandOptions {
  readonly sidecarUid: string;
  readonly redirectTo?: readonly string[];
  readonly dryRun?: boolean;
  readonly check?: boolean;
}

/**
 * Runs `tenant-dns capture` and resolves with its exit code: prints the rules
 * (`--dry-run`), checks them (`--check`: 0 when in place, 1 when not), or
 * installs them and then checks that nft holds them.
 */
export async function runCapture(o: CaptureCommandOptions): Promise<number> {
  const fail = (err: unknown) => {
    const code = err instanceof SidecarError ? err.code : ErrorCodes.INTERNAL;
    process.stderr.write(`tenant-dns capture: ${code}: ${describeError(err)}\n`);
    return 1;
  };
  let opts: CaptureOptions;
  try {
    opts = { sidecarUid: sidecarUid(o.sidecarUid), redirect: redirectTargets(o.redirectTo ?? []) };
  } catch (err) {
    return fail(err);
  }
  const rules = buildCaptureRules(opts);
  if (o.dryRun) {
    process.stdout.write(rules.script);
    return 0;
  }
  try {
    if (o.check) {
      const problems = await installedProblems(rules);
      if (problems.length === 0) {
        process.stdout.write(`tenant-dns capture: in place: ${summary(opts, rules)}\n`);
        return 0;
      }
      process.stderr.write(`tenant-dns capture: not in place:\n${problems.map((p) => `  ${p}\n`).join('')}`);
      return 1;
    }
    const applied = await runNft(['-f', '-'], rules.script);
    if (applied.code !== 0) {
      throw new SidecarError(ErrorCodes.CAPTURE_FAILED, `installing table ${TABLE} with nft -f (needs CAP_NET_ADMIN in the pod's network namespace): ${applied.stderr.trim()}`);
    }
    const problems = await installedProblems(rules);
    if (problems.length > 0) throw new SidecarError(ErrorCodes.CAPTURE_FAILED, `nft took table ${TABLE} but lists it otherwise: ${problems.join('; ')}`);
    process.stdout.write(`tenant-dns capture: installed ${summary(opts, rules)}\n`);
    return 0;
  } catch (err) {
    return fail(err);
  }
}
