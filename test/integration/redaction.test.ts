/**
 * Secrets in upstream URLs never show (issue 18, item 6). A sidecar process
 * of the real CLI is given DoH upstreams whose user info, path and query
 * carry secrets (in --upstream, in a policy's forward zone, with a bootstrap
 * resolver), made to log (start-up, failing upstreams, a reload refused and
 * one accepted), scraped (/metrics, /readyz on both ports, /config), and
 * asked `policy explain` and `policy validate`; start-up refusals of such
 * URLs are run too. Every output is searched for each secret.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { queryUdp } from '../helpers/dns-client.ts';
import { runCli, spawnServing, waitFor } from '../helpers/sidecar.ts';

const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-redaction-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The secrets: URL user, password, a path segment, a query value. */
const SECRETS = ['us3r-0x51', 'pa55-0x52', 'pathsecret-0x53', 'querysecret-0x54'];

/** A URL of `base` (scheme://host:port) carrying every secret, with `path` before the path secret. */
function secretUrl(base: string, path = '/dns-query'): string {
  const [scheme, rest] = base.split('://') as [string, string];
  return `${scheme}://${SECRETS[0]}:${SECRETS[1]}@${rest}${path}/profile-${SECRETS[2]}?api_key=${SECRETS[3]}`;
}

/** The same URL without user info (a policy or --upstream with credentials is refused, so serving needs this one). */
function servingUrl(base: string): string {
  return `${base}/dns-query/profile-${SECRETS[2]}?api_key=${SECRETS[3]}&x=1`;
}

/** Asserts that `text` (named `what`) contains no secret. */
function clean(what: string, text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what} shows the secret ${s}:\n${text}`);
}

/** A TCP server that closes every connection at once: an upstream that always fails. */
async function failingServer(t: { after(fn: () => Promise<void>): void }): Promise<number> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

function policy(forwardUpstream: string): string {
  return `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: {name: team-a}
spec:
  rules:
    - {name: no-ads, action: deny, names: [ads.example]}
  forwardZones:
    - name: corp
      zones: [corp.example]
      upstreams: ["${forwardUpstream}"]
`;
}

test('redaction: logs, metrics, readiness, /config and policy explain never show a URL\'s user info, path or query', { timeout: 60_000 }, async (t) => {
  const defaultPort = await failingServer(t);
  const zonePort = await failingServer(t);
  const hostPort = await failingServer(t);
  const defaultUrl = servingUrl(`https://127.0.0.1:${defaultPort}`);
  const zoneUrl = servingUrl(`https://127.0.0.1:${zonePort}`);
  // A DoH upstream named by host: its addresses come from --bootstrap and are re-resolved through --bootstrap-resolver.
  const hostUrl = servingUrl(`https://dns.test:${hostPort}`);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy(zoneUrl));

  const sc = await spawnServing([
    'sidecar',
    '--tenant', 'team-a',
    '--upstream', defaultUrl,
    '--upstream', hostUrl,
    '--bootstrap', 'dns.test=127.0.0.1',
    '--bootstrap-resolver', `udp://127.0.0.1:${defaultPort}`,
    '--policy', file,
    '--log-queries', 'all',
    // The upstream label, which must be redacted, is on the failure series at this level.
    '--metrics-detail', 'full',
  ]);
  t.after(() => sc.kill());

  // Failing upstreams: the default group's and the forward zone's, each logged.
  for (const name of ['www.example', 'intranet.corp.example']) {
    assert.equal((await queryUdp('127.0.0.1', sc.port, { name, type: 'A' }, 6000)).rcode, 'SERVFAIL', name);
  }
  await waitFor('failed queries to be logged', () => sc.stderr().split('\n').filter((l) => l.includes('"msg":"query failed"')).length >= 1, 10_000, sc.stderr);
  // A reload refused (a forward zone upstream with credentials), then one accepted.
  writeFileSync(file, policy(secretUrl(`https://127.0.0.1:${zonePort}`)));
  sc.child.kill('SIGHUP');
  await waitFor('the refused reload to be logged', () => /policy reload failed.*credentials are not allowed/.test(sc.stderr()), 10_000, sc.stderr);
  writeFileSync(file, policy(zoneUrl.replace('x=1', 'x=2')));
  sc.child.kill('SIGHUP');
  await waitFor('the accepted reload to be logged', () => sc.stderr().includes('"msg":"policy reloaded"'), 10_000, sc.stderr);

  const get = async (port: number, path: string) => (await fetch(`http://127.0.0.1:${port}${path}`)).text();
  const outputs: Record<string, string> = {
    '/metrics': await get(sc.metrics!.port, '/metrics'),
    '/readyz (metrics port)': await get(sc.metrics!.port, '/readyz'),
    '/readyz (admin port)': await get(sc.admin!.port, '/readyz'),
    '/config': await get(sc.admin!.port, '/config'),
  };
  const explain = await runCli(['policy', 'explain', '--policy', file, 'intranet.corp.example']);
  assert.equal(explain.code, 0, explain.stderr);
  outputs['policy explain'] = explain.stdout + explain.stderr;
  const refused = join(dir, 'refused.yaml');
  writeFileSync(refused, policy(secretUrl(`https://127.0.0.1:${zonePort}`)));
  const validate = await runCli(['policy', 'validate', refused]);
  assert.equal(validate.code, 1);
  outputs['policy validate'] = validate.stdout + validate.stderr;
  outputs['operational log (stderr)'] = sc.stderr();
  outputs['query log (stdout)'] = sc.stdout();
  for (const [what, text] of Object.entries(outputs)) clean(what, text);

  // Not clean by saying nothing: each output names the upstreams by scheme, host and port.
  const shown = (port: number) => `https://127.0.0.1:${port}`;
  assert.match(outputs['/metrics']!, new RegExp(`tenant_dns_upstream_failures_total\\{[^}]*upstream="${shown(defaultPort)}"`));
  assert.ok(outputs['/metrics']!.includes(`upstream="${shown(zonePort)}"`));
  assert.ok(outputs['/metrics']!.includes(`upstream="https://dns.test:${hostPort}"`));
  assert.ok(outputs['/config']!.includes(shown(defaultPort)) && outputs['/config']!.includes(shown(zonePort)));
  assert.ok(outputs['/readyz (admin port)']!.includes(shown(defaultPort)));
  assert.match(outputs['policy explain']!, new RegExp(`via ${shown(zonePort)}`));
  assert.match(outputs['policy validate']!, /credentials are not allowed/);
  assert.match(outputs['operational log (stderr)']!, /"msg":"query failed".*https:\/\/(127\.0\.0\.1|dns\.test):\d+/);
  assert.match(outputs['operational log (stderr)']!, /policy reload failed.*credentials are not allowed/);
});

test('redaction: start-up refusals of URLs with secrets do not show them', { timeout: 60_000 }, async () => {
  const withCredentials = join(dir, 'with-credentials.yaml');
  writeFileSync(withCredentials, policy(secretUrl('https://127.0.0.1:8443')));
  const cases: [string, string[]][] = [
    ['--upstream with credentials', ['--upstream', secretUrl('https://127.0.0.1:8443')]],
    ['--upstream of an unknown scheme', ['--upstream', secretUrl('ftp://127.0.0.1:21')]],
    ['--bootstrap-resolver with credentials', ['--upstream', 'https://dns.test/dns-query', '--bootstrap', 'dns.test=127.0.0.1', '--bootstrap-resolver', secretUrl('udp://127.0.0.1:9', '')]],
    ['a policy forward zone with credentials', ['--upstream', 'udp://127.0.0.1:9', '--policy', withCredentials]],
  ];
  for (const [what, args] of cases) {
    const r = await runCli(['sidecar', '--listen', '127.0.0.1:0', ...args]);
    assert.equal(r.code, 1, `${what}: refused`);
    assert.match(r.stderr, /sidecar failed to start/, what);
    clean(what, r.stdout + r.stderr);
  }
});
