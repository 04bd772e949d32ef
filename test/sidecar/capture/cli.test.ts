/**
 * `tenant-dns capture` as a process, without privileges: `--dry-run` prints
 * the rule builder's script, bad flags exit 1 naming the flag, and without
 * CAP_NET_ADMIN it fails instead of pretending. Installing and checking in a
 * network namespace: test/pod/capture.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCaptureRules, redirectTargets } from '../../../sidecar/capture/rules.ts';
import { spawnCli } from '../../helpers/sidecar.ts';

async function run(args: string[], spawnOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawnCli(args, spawnOptions);
  const timer = setTimeout(() => void p.kill(), 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

test('capture --dry-run: prints the nft script for the defaults (uid 65532, 127.0.0.1:53 and [::1]:53) and exits 0', async () => {
  const r = await run(['capture', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, buildCaptureRules({ sidecarUid: 65532, redirect: redirectTargets([]) }).script);
  assert.match(r.stdout, /meta nfproto ipv4 udp dport 53 dnat ip to 127\.0\.0\.1:53 comment/);
});

test('capture --dry-run: --sidecar-uid and --redirect-to (as the injector writes them) shape the script', async () => {
  const r = await run(['capture', '--sidecar-uid=1337', '--redirect-to=127.0.0.1:5353', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, buildCaptureRules({ sidecarUid: 1337, redirect: redirectTargets(['127.0.0.1:5353']) }).script);
  assert.match(r.stdout, /meta skuid 1337 return/);
  assert.match(r.stdout, /dnat ip6 to \[::1\]:5353/);
});

test('capture: a bad flag value exits 1 with CONFIG_INVALID naming the flag, before touching nftables', async () => {
  const r = await run(['capture', '--redirect-to', 'kube-dns:53']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^tenant-dns capture: CONFIG_INVALID: --redirect-to: "kube-dns" is not an IP address\n$/);
  const uid = await run(['capture', '--sidecar-uid', 'nobody', '--dry-run']);
  assert.equal(uid.code, 1);
  assert.match(uid.stderr, /--sidecar-uid: "nobody" is not a uid/);
});

test('capture --help: lists its flags', async () => {
  const r = await run(['capture', '--help']);
  assert.equal(r.code, 0);
  for (const flag of ['--sidecar-uid <uid>', '--redirect-to <addr:port>', '--dry-run', '--check']) assert.ok(r.stdout.includes(flag), flag);
});

test('capture: without CAP_NET_ADMIN installing fails with CAPTURE_FAILED and exit 1', async () => {
  // As root, the CLI could install rules in this machine's namespace: it runs as nobody then.
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const r = await run(['capture'], { ...asNobody, env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^tenant-dns capture: CAPTURE_FAILED: (installing table inet tenant-dns-capture with nft -f \(needs CAP_NET_ADMIN|running nft)/);
});
