import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { Registry } from 'prom-client';
import { ErrorCodes, SidecarError } from '../../../sidecar/errors.ts';
import { silentLogger } from '../../../sidecar/log.ts';
import { checkAdminAddress, readiness, redact, startAdminServer, startMetricsServer, type AdminSource } from '../../../sidecar/metrics/http.ts';
import { createMetricsStage } from '../../../sidecar/metrics/stage.ts';
import { SidecarMetrics, Telemetry } from '../../../sidecar/metrics/telemetry.ts';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { compiled } from '../policy/helpers.ts';
import { ctxFor, nextWith, outcome } from './fixtures.ts';

const group = (healthy: boolean) => ({ healthy: () => healthy, members: () => [{ address: 'udp://192.0.2.1:53', healthy }] });

function adminSource(flushed: { n: number }): AdminSource {
  return {
    ready: () => readiness(true, new Map([['default', group(true)]])),
    config: () => ({
      upstream: ['https://user:hunter2@dns.example/dns-query/profile-s3cr3t?api_key=k3y#tls-name=dns.example', 'tls://dns.example:853#spki-pin=AAAA=', 'https://dns.example/q#other=leak'],
      spkiPin: 'AAAA=',
      token: 'abc',
    }),
    cacheStats: () => ({ entries: 3, hits: 1 }),
    flushCache: () => (flushed.n++, 3),
  };
}

test('admin: refuses a non-loopback address unless allowed', () => {
  assert.throws(
    () => checkAdminAddress('0.0.0.0:9901', false),
    (err: unknown) => err instanceof SidecarError && err.code === ErrorCodes.CONFIG_INVALID && /loopback/.test(err.message),
  );
  assert.throws(() => checkAdminAddress('[::]:9901', false), /loopback/);
  assert.throws(() => checkAdminAddress('10.1.2.3:9901', false), /loopback/);
  assert.equal(checkAdminAddress('127.0.0.1:9901', false).port, 9901);
  assert.equal(checkAdminAddress('[::1]:9901', false).host, '::1');
  assert.equal(checkAdminAddress('0.0.0.0:9901', true).host, '0.0.0.0');
  assert.throws(
    () => new Telemetry({ tenant: 't', version: 'v', metrics: '0.0.0.0:0', admin: '0.0.0.0:0', logQueries: 'none', log: silentLogger, processMetrics: false }),
    /loopback/,
  );
});

test('admin: serves health, readiness, redacted config, cache stats and flush on loopback only', async (t) => {
  const flushed = { n: 0 };
  const admin = await startAdminServer({ address: '127.0.0.1:0', source: adminSource(flushed), log: silentLogger });
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.address.port}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { ready: boolean }).ready, true);
  const config = await (await fetch(`${base}/config`)).text();
  for (const secret of ['user', 'hunter2', 'profile-s3cr3t', 'api_key', 'k3y', 'leak', '"abc"']) assert.ok(!config.includes(secret), `${secret} is redacted`);
  // Upstream URLs show scheme, host and port, and their per-upstream options (public).
  assert.deepEqual((JSON.parse(config) as { upstream: string[] }).upstream, ['https://dns.example:443#tls-name=dns.example', 'tls://dns.example:853#spki-pin=AAAA=', 'https://dns.example:443']);
  assert.ok(config.includes('AAAA='), 'SPKI pins stay');
  assert.deepEqual(await (await fetch(`${base}/cache`)).json(), { entries: 3, hits: 1 });
  assert.equal((await fetch(`${base}/cache/flush`)).status, 405, 'flush is POST only');
  const f = await fetch(`${base}/cache/flush`, { method: 'POST' });
  assert.deepEqual(await f.json(), { flushed: 3 });
  assert.equal(flushed.n, 1);
  assert.equal((await fetch(`${base}/nope`)).status, 404);

  // Not reachable on any other address of this host.
  const others = Object.values(networkInterfaces()).flat().filter((i) => i && !i.internal && i.family === 'IPv4');
  for (const i of others) {
    await assert.rejects(fetch(`http://${i!.address}:${admin.address.port}/healthz`, { signal: AbortSignal.timeout(2000) }));
  }
});

test('readiness: not ready names the groups without a healthy upstream, on the admin port only', async (t) => {
  const r = readiness(true, new Map([['default', group(true)], ['corp', group(false)]]));
  assert.equal(r.ready, false);
  assert.deepEqual(r.notReady, ['group corp: no healthy upstream']);
  const metrics = await startMetricsServer({ address: '127.0.0.1:0', registry: new Registry(), probes: { ready: () => r }, log: silentLogger });
  t.after(() => metrics.close());
  const admin = await startAdminServer({ address: '127.0.0.1:0', source: { ...adminSource({ n: 0 }), ready: () => r }, log: silentLogger });
  t.after(() => admin.close());
  const detailed = await fetch(`http://127.0.0.1:${admin.address.port}/readyz`);
  assert.equal(detailed.status, 503);
  assert.deepEqual(((await detailed.json()) as { notReady: string[] }).notReady, ['group corp: no healthy upstream']);
  // The metrics port is reachable from other pods: a status, nothing about groups or upstreams.
  const res = await fetch(`http://127.0.0.1:${metrics.address.port}/readyz`);
  assert.equal(res.status, 503);
  assert.equal(await res.text(), 'not ready\n');
  const ok = await startMetricsServer({ address: '127.0.0.1:0', registry: new Registry(), probes: { ready: () => readiness(true, new Map([['default', group(true)]])) }, log: silentLogger });
  t.after(() => ok.close());
  const ready = await fetch(`http://127.0.0.1:${ok.address.port}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(await ready.text(), 'ok\n');
  assert.equal((await fetch(`http://127.0.0.1:${metrics.address.port}/healthz`)).status, 200);
});

test('metrics endpoint: serves the exposition format without query names or client addresses', async (t) => {
  const m = new SidecarMetrics(new Registry(), { tenant: 'team-a', version: '1.2.3', processMetrics: true });
  const stage = createMetricsStage(m);
  for (const name of ['secret-project.internal.example', 'ads.tracker.example']) {
    await stage.handle(ctxFor(name), nextWith(outcome('upstream', RCode.NOERROR, 'default'), { action: 'allow', rule: 'default', log: false }));
  }
  const server = await startMetricsServer({ address: '127.0.0.1:0', registry: m.registry, probes: { ready: () => readiness(true, new Map()) }, log: silentLogger });
  t.after(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /tenant_dns_requests_total\{proto="udp",qtype="A",tenant="team-a"\} 2/);
  assert.match(text, /process_resident_memory_bytes\{tenant="team-a"\}/);
  assert.ok(!text.includes('secret-project') && !text.includes('tracker'), 'no query names');
  assert.ok(!/\b127\.0\.0\.1\b/.test(text), 'no client addresses');
});

test('redact: URL user info, paths and queries, and secret-named keys, recursively', () => {
  assert.deepEqual(redact({ a: ['tls://u:p@h:853', 'udp://10.0.0.1:53', 'see https://h/p?q=1 and udp://10.0.0.2'], nested: { password: 'x', ca: 'PEM' } }), {
    a: ['tls://h:853', 'udp://10.0.0.1:53', 'see https://h:443 and udp://10.0.0.2'],
    nested: { password: '[redacted]', ca: 'PEM' },
  });
});

test('telemetry: start binds both servers, close closes them', async () => {
  const tel = new Telemetry({ tenant: 't', version: 'v', metrics: '127.0.0.1:0', admin: '127.0.0.1:0', logQueries: 'none', log: silentLogger, processMetrics: false });
  let reload: ((r: 'success' | 'failure') => void) | undefined;
  await tel.start({
    policy: {
      current: compiled('defaultAction: allow\nrules:\n  - {name: no-ads, action: deny, names: ["*.ads.example"]}', 'defaultAction: allow'),
      lastGoodAt: 1000,
      onReload: (cb) => ((reload = cb), () => (reload = undefined)),
    },
    cache: { store: { stats: () => ({ entries: 0, bytes: 0, hits: 0, misses: 0, evictions: 0, expired: 0, staleServed: 0 }), flush: () => 0 } },
    groups: () => new Map([['default', group(true)]]),
    config: { tenant: 't' },
  });
  const port = tel.metricsAddress!.port;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(text, /tenant_dns_policy_decisions_total\{action="deny",rule="no-ads",tenant="t"\} 0/);
  assert.match(text, /tenant_dns_policy_decisions_total\{action="allow",rule="default",tenant="t"\} 0/);
  reload!('failure');
  assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /tenant_dns_policy_reloads_total\{result="failure",tenant="t"\} 1/);
  const cfg = (await (await fetch(`http://127.0.0.1:${tel.adminAddress!.port}/config`)).json()) as { platform: unknown; policy: { tenant: unknown } };
  assert.deepEqual(cfg.platform, { tenant: 't' });
  await tel.close();
  await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
  assert.equal(reload, undefined, 'the reload listener is removed');
});
