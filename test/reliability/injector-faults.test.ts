/**
 * The injector under faults (issue 6 item 8):
 * - a slow, failing or resetting Kubernetes API (namespace lookup through the
 *   real NamespaceWatchCache) never holds an admission past the lookup
 *   deadline: measured end to end over HTTPS, 20 concurrent admissions;
 * - invalid and odd annotations never produce an invalid pod: every patched
 *   pod validates against the Kubernetes schema (test/helpers/k8s-schema.ts);
 * - a missing, unparseable or invalid injector config stops `tenant-dns
 *   injector` with exit 1 and a line naming the file, before it listens, so it
 *   never injects sidecars built from a config it could not read.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { review } from '../../injector/admission.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { Keys, PrometheusAnnotations } from '../../injector/names.ts';
import { NamespaceNameResolver, NamespaceWatchCache } from '../../injector/namespaces.ts';
import { makeTestPki, type TestPki } from '../helpers/k8s-certs.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnCli } from '../helpers/sidecar.ts';
import { admissionRequest, kubeConfigAt, samplePod, startTestInjector } from '../injector/fixtures.ts';
import { fuzzSeed, pick, prng } from '../helpers/fuzz.ts';

const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-injector-faults-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const LOOKUP_TIMEOUT_MS = 300;

type ApiMode = 'hang' | 'error500' | 'reset' | 'slow';

/** A fake API server that misbehaves in `mode` for every request. */
async function brokenApi(t: TestContext, mode: ApiMode): Promise<string> {
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (mode === 'hang') {
      held.add(res);
      return;
    }
    if (mode === 'error500') {
      res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"kind":"Status","code":500}');
      return;
    }
    if (mode === 'reset') {
      req.socket.destroy();
      return;
    }
    // slow: answers, but long after the deadline
    const timer = setTimeout(() => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ metadata: { name: 'team-a', labels: { [Keys.namespaceTenant]: 'slow-tenant' } } }));
    }, 3000);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function post(pki: TestPki, port: number, body: unknown): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate?timeout=10s',
        method: 'POST',
        ca: pki.ca,
        servername: 'tenant-dns-injector.tenant-dns-system.svc',
        headers: { 'Content-Type': 'application/json' },
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('hung')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('namespace lookup faults', () => {
  for (const mode of ['hang', 'slow', 'error500', 'reset'] as ApiMode[]) {
    test(`API server that ${mode === 'hang' ? 'never answers' : mode === 'slow' ? 'answers after 3 s' : mode === 'error500' ? 'answers 500' : 'resets connections'}: admission answers within the ${LOOKUP_TIMEOUT_MS} ms lookup deadline, injected under the namespace name`, async (t) => {
      const url = await brokenApi(t, mode);
      const tenants = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(url), label: Keys.namespaceTenant, backoffMs: 50 });
      tenants.start();
      t.after(() => tenants.close());
      const { pki, server } = await startTestInjector(t, { config: { clusterDns: '10.96.0.10:53', namespaceLookupTimeoutMs: LOOKUP_TIMEOUT_MS }, tenants });
      const results = await Promise.all(Array.from({ length: 20 }, () => post(pki, server.address.port, admissionRequest(samplePod()))));
      const times = results.map((r) => r.ms).sort((a, b) => a - b);
      t.diagnostic(`${mode}: admission ms min ${times[0]!.toFixed(0)} median ${times[10]!.toFixed(0)} max ${times.at(-1)!.toFixed(0)}`);
      for (const r of results) {
        assert.equal(r.status, 200);
        const res = JSON.parse(r.body).response;
        assert.equal(res.allowed, true);
        assert.equal(res.patchType, 'JSONPatch', 'injected, with the namespace name as the tenant');
        const ops = JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8')) as { value?: unknown }[];
        assert.ok(JSON.stringify(ops).includes('team-a'), 'the tenant is the namespace name');
        assert.ok(!JSON.stringify(ops).includes('slow-tenant'));
        // Within the lookup deadline: a hanging or slow API server is cut off by it ("timed out"), not by the
        // client's own 10 s timeout ("failed") nor answered late (the slow server's tenant is not used).
        if (mode === 'hang' || mode === 'slow') assert.ok((res.warnings ?? []).some((w: string) => /tenant lookup timed out/.test(w)), `a warning says why: ${res.warnings}`);
      }
    });
  }
});

describe('annotations', () => {
  const SEED = fuzzSeed(0xa770);
  const VALUES = ['', ' ', '0', '1', '5', '15', '16', '-1', '1.5', '01', '1e1', 'five', 'true', 'false', 'yes', 'enabled', 'null', '{}', '[]', '{"injected":true}', 'x'.repeat(5000), 'ünïcødé', '\n', '5\n', '\u0000', '  3  '];
  const KEYS = [Keys.ndots, Keys.podInject, Keys.status, Keys.namespaceTenant, 'tenant-dns.io/unknown', Keys.mirror, PrometheusAnnotations.scrape];

  test('random values of the injector annotations (and pod DNS settings): every patched pod is a valid pod', async (t) => {
    t.diagnostic(`FUZZ_SEED=${SEED}`);
    const rnd = prng(SEED);
    const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53', upstreams: ['udp://10.0.0.2:53'], prometheusAnnotations: true });
    const deps = { config, tenants: new NamespaceNameResolver() };
    const outcomes = { patched: 0, skipped: 0 };
    for (let i = 0; i < 400; i++) {
      const pod = samplePod();
      const annotations: Record<string, string> = {};
      for (let k = 0, n = 1 + pick(rnd, 4); k < n; k++) annotations[KEYS[pick(rnd, KEYS.length)]!] = VALUES[pick(rnd, VALUES.length)]!;
      pod.metadata.annotations = annotations;
      if (rnd() < 0.3) pod.metadata.labels[Keys.podInject] = ['true', 'false', 'disabled'][pick(rnd, 3)];
      if (rnd() < 0.3) pod.spec.dnsPolicy = ['ClusterFirst', 'Default', 'None', 'ClusterFirstWithHostNet'][pick(rnd, 4)];
      if (pod.spec.dnsPolicy === 'None' || rnd() < 0.3) {
        pod.spec.dnsConfig = {
          nameservers: pod.spec.dnsPolicy === 'None' || rnd() < 0.5 ? ['10.0.0.9'] : undefined,
          searches: rnd() < 0.5 ? Array.from({ length: pick(rnd, 34) }, (_, j) => `s${j}.example`) : undefined,
          options: rnd() < 0.5 ? [{ name: 'ndots', value: String(pick(rnd, 20)) }] : undefined,
        };
      }
      try {
        validatePod(pod);
      } catch {
        continue; // only valid input pods count: the API server validates before mutating webhooks see them
      }
      const answer = await review(admissionRequest(pod), deps);
      if (!answer.response.patch) {
        outcomes.skipped++;
        continue;
      }
      outcomes.patched++;
      const ops = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[];
      const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
      try {
        validatePod(patched);
      } catch (err) {
        assert.fail(`pod #${i} with annotations ${JSON.stringify(annotations).slice(0, 300)} and dnsConfig ${JSON.stringify(pod.spec.dnsConfig)}: invalid after the patch: ${(err as Error).message.slice(0, 600)}`);
      }
      const dns = patched.spec.dnsConfig;
      assert.ok(!dns?.searches || (dns.searches.length <= 32 && dns.searches.join(' ').length <= 2048), `pod #${i}: search list beyond Kubernetes' limits`);
      assert.ok(!dns?.nameservers || dns.nameservers.length <= 3, `pod #${i}: more than 3 nameservers`);
      const ndots = (dns?.options ?? []).filter((o: { name: string }) => o.name === 'ndots');
      assert.ok(ndots.length <= 1, `pod #${i}: ndots set twice`);
    }
    t.diagnostic(JSON.stringify(outcomes));
    assert.ok(outcomes.patched > 50);
  });
});

describe('injector config faults at start-up', () => {
  async function startInjector(t: TestContext, configText: string | null) {
    const pki = makeTestPki(['tenant-dns-injector.tenant-dns-system.svc']);
    t.after(() => pki.cleanup());
    const port = await freePort();
    const args = ['injector', '--listen', `127.0.0.1:${port}`, '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--no-namespace-lookup'];
    const configPath = join(dir, `config-${port}.yaml`);
    if (configText !== null) writeFileSync(configPath, configText);
    args.push('--config', configPath);
    const p = spawnCli(args);
    const timer = setTimeout(() => void p.kill(), 15_000);
    const code = await p.exited;
    clearTimeout(timer);
    return { code, stderr: p.stderr(), configPath };
  }

  for (const [what, text, pattern] of [
    ['missing', null, /ENOENT|no such file/],
    ['unparseable (half-written YAML)', 'clusterDns: 10.96.0.10:53\nupstreams: [udp://10.0.0.2:53\nimage: "ghcr.io/te', /parsing|YAML|flow/i],
    ['invalid (a field of the wrong type)', 'clusterDns: 10.96.0.10:53\nupstreams: ["ftp://10.0.0.2:53"]\n', /upstreams/],
    ['unknown field (a typo)', 'clusterDNS: 10.96.0.10:53\n', /clusterDNS|additional|unknown|Unexpected/i],
  ] as const) {
    test(`${what} config: exit 1 with one line naming the file, never serving`, async (t) => {
      const r = await startInjector(t, text);
      assert.equal(r.code, 1, r.stderr);
      const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; error: string; cause?: string });
      const failed = lines.find((l) => l.msg === 'injector failed to start');
      assert.ok(failed, r.stderr);
      assert.ok(failed.error.includes(r.configPath), `names the file: ${failed.error}`);
      assert.match(`${failed.error} ${failed.cause ?? ''}`, pattern);
      assert.ok(!lines.some((l) => l.msg === 'injector listening'), 'it never listened');
    });
  }
});
