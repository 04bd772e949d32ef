/**
 * Hostile configuration (issue 6 item 1): seeded random and mutated policy
 * YAML into the policy loader, and random and mutated AdmissionReview bodies
 * into the injector, both in process and over its HTTPS server.
 *
 * FUZZ_SEED=<n> replays a run (the seed is printed as a diagnostic).
 *
 * Checked: the policy loader either returns a policy that compiles or throws
 * a SidecarError CONFIG_INVALID, never anything else and never hangs; the
 * injector answers every body with HTTP 400 or a valid AdmissionReview
 * response for the request's uid, whose patch (if any) applies to the pod it
 * was made for; the server keeps serving afterwards.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { review } from '../../injector/admission.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { InjectorError } from '../../injector/errors.ts';
import { createInjectorMetrics } from '../../injector/metrics.ts';
import { Keys } from '../../injector/names.ts';
import { NamespaceNameResolver } from '../../injector/namespaces.ts';
import { startInjectorServer, type InjectorServer } from '../../injector/server.ts';
import { SidecarError } from '../../sidecar/errors.ts';
import { compilePolicy } from '../../sidecar/policy/compile.ts';
import { parsePolicy } from '../../sidecar/policy/manager.ts';
import { makeTestPki, type TestPki } from '../helpers/k8s-certs.ts';
import { ROOT } from '../helpers/sidecar.ts';
import { admissionRequest, samplePod } from '../injector/fixtures.ts';
import { fuzzSeed, pick, prng, randomBytesFrom } from '../helpers/fuzz.ts';

const SEED = fuzzSeed(0x5eed_c0f6);
const BUDGET_MS = 12_000;

const EXAMPLES = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(join(ROOT, 'examples', f), 'utf8'));

const KEYS = ['apiVersion', 'kind', 'metadata', 'spec', 'rules', 'names', 'action', 'name', 'splitZones', 'forwardZones', 'cname', 'addresses', 'ttl', 'resolveVia', 'zones', 'upstreams', 'podSelector', 'matchLabels', 'matchExpressions', 'operator', 'values', 'key', 'response', 'type', 'defaultAction', 'log', '__proto__', 'constructor'];
const STRINGS = ['allow', 'deny', 'log', 'nxdomain', 'refused', 'nodata', 'sinkhole', '*.example.com', '*', '**', '*.*', 'a..b', '.', '', 'ads-*.x', 'udp://10.0.0.1:53', 'tcp://[::1]:53', 'ftp://x', 'tenant-dns.io/v1alpha1', 'DNSPolicy', '10.1.2.3', 'fd00::3', '300.1.1.1', 'default', 'cluster', 'In', 'NotIn', 'Exists', 'DoesNotExist', 'x'.repeat(300), '\u0000', 'é.example', '${x}'];

/** A random JSON-like value, depth-bounded, biased toward policy-shaped keys and values. */
function randomValue(rnd: () => number, depth: number): unknown {
  const k = pick(rnd, depth > 4 ? 5 : 8);
  switch (k) {
    case 0:
      return STRINGS[pick(rnd, STRINGS.length)];
    case 1:
      return [0, -1, 1, 60, 2 ** 31, 1e100, 0.5, NaN][pick(rnd, 8)];
    case 2:
      return [true, false, null][pick(rnd, 3)];
    case 3:
      return randomBytesFrom(rnd, pick(rnd, 12)).toString('latin1');
    case 4:
      return STRINGS[pick(rnd, STRINGS.length)];
    case 5:
    case 6: {
      const o: Record<string, unknown> = {};
      for (let i = 0, n = pick(rnd, 6); i < n; i++) o[KEYS[pick(rnd, KEYS.length)]!] = randomValue(rnd, depth + 1);
      return o;
    }
    default:
      return Array.from({ length: pick(rnd, 5) }, () => randomValue(rnd, depth + 1));
  }
}

/** A policy-shaped random document: the right envelope around random content, most of the time. */
function randomPolicyDoc(rnd: () => number): unknown {
  if (rnd() < 0.2) return randomValue(rnd, 0);
  const spec: Record<string, unknown> = {};
  for (const key of ['defaultAction', 'rules', 'splitZones', 'forwardZones']) {
    if (rnd() < 0.5) continue;
    spec[key] = key === 'defaultAction' ? randomValue(rnd, 4) : Array.from({ length: 1 + pick(rnd, 3) }, () => randomValue(rnd, 2));
  }
  return { apiVersion: 'tenant-dns.io/v1alpha1', kind: 'DNSPolicy', metadata: { name: 'fuzz' }, spec };
}

/** Text-level mutations of valid YAML: cut, flip, delete or duplicate lines, YAML-significant characters. */
function mutateText(rnd: () => number, text: string): string {
  const lines = text.split('\n');
  switch (pick(rnd, 7)) {
    case 0:
      return text.slice(0, pick(rnd, text.length + 1));
    case 1: {
      const chars = [...text];
      for (let i = 0, n = 1 + pick(rnd, 5); i < n; i++) chars[pick(rnd, chars.length)] = ':-*&!|>{}[]#"\'\t %@`,?\u0000\n'[pick(rnd, 24)]!;
      return chars.join('');
    }
    case 2:
      lines.splice(pick(rnd, lines.length), 1 + pick(rnd, 3));
      return lines.join('\n');
    case 3: {
      const i = pick(rnd, lines.length);
      lines.splice(i, 0, lines[i]!, lines[i]!);
      return lines.join('\n');
    }
    case 4: {
      const i = pick(rnd, lines.length);
      lines[i] = ' '.repeat(pick(rnd, 8)) + lines[i]!.trimStart();
      return lines.join('\n');
    }
    case 5:
      // anchors and aliases, including an alias bomb
      return `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n` + text;
    default:
      return text + '\n' + stringify(randomValue(rnd, 1));
  }
}

describe('policy loader fuzz', () => {
  test('random and mutated YAML: a compiled policy or SidecarError CONFIG_INVALID, nothing else', (t) => {
    t.diagnostic(`FUZZ_SEED=${SEED}`);
    const rnd = prng(SEED);
    const start = Date.now();
    const outcomes = { ok: 0, invalid: 0 };
    const problems: string[] = [];
    let n = 0;
    for (; n < 6000 && Date.now() - start < BUDGET_MS; n++) {
      const r = pick(rnd, 4);
      let text: string;
      if (r === 0) text = stringify(randomPolicyDoc(rnd));
      else if (r === 1) text = randomBytesFrom(rnd, pick(rnd, 200)).toString(rnd() < 0.5 ? 'latin1' : 'utf8');
      else text = mutateText(rnd, EXAMPLES[pick(rnd, EXAMPLES.length)]!);
      const t0 = Date.now();
      try {
        const policy = parsePolicy(text, 'fuzz.yaml');
        compilePolicy({ tenant: policy });
        outcomes.ok++;
      } catch (err) {
        if (err instanceof SidecarError && err.code === 'CONFIG_INVALID' && err.message.includes('fuzz.yaml')) outcomes.invalid++;
        else if (problems.length < 10) problems.push(`#${n}: ${err instanceof Error ? `${err.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : String(err)}\n---\n${text.slice(0, 400)}`);
      }
      if (Date.now() - t0 > 1000 && problems.length < 10) problems.push(`#${n}: took ${Date.now() - t0} ms\n---\n${text.slice(0, 400)}`);
    }
    t.diagnostic(`${n} documents in ${Date.now() - start} ms: ${JSON.stringify(outcomes)}`);
    assert.deepEqual(problems, [], `seed ${SEED}`);
    assert.ok(outcomes.invalid > 0 && outcomes.ok > 0, 'the fuzz reaches both outcomes');
  });
});

/** Mutates a JSON value at a random path: delete, replace with a random value, or change the type. */
function mutateJson(rnd: () => number, value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8 || rnd() < 0.15) {
    return rnd() < 0.5 ? randomValue(rnd, 3) : [undefined, {}, [], '', 0, null, 'x'.repeat(70_000)][pick(rnd, 7)];
  }
  if (Array.isArray(value)) {
    const out = [...value];
    if (out.length === 0 || rnd() < 0.2) out.push(randomValue(rnd, 3));
    else {
      const i = pick(rnd, out.length);
      if (rnd() < 0.2) out.splice(i, 1);
      else out[i] = mutateJson(rnd, out[i], depth + 1);
    }
    return out;
  }
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(out);
  if (keys.length === 0 || rnd() < 0.1) out[KEYS[pick(rnd, KEYS.length)]!] = randomValue(rnd, 3);
  else {
    const key = keys[pick(rnd, keys.length)]!;
    if (rnd() < 0.2) delete out[key];
    else out[key] = mutateJson(rnd, out[key], depth + 1);
  }
  return out;
}

/** A mutated review: a sample pod with annotations, labels and containers varied, then random paths mutated. */
function mutatedReview(rnd: () => number): Record<string, any> {
  const pod = samplePod();
  if (rnd() < 0.5) pod.metadata.annotations = { [Keys.ndots]: ['3', '0', '99', 'x', '', '1e1', ' 5'][pick(rnd, 7)], [Keys.podInject]: ['true', 'false', 'yes'][pick(rnd, 3)] };
  const r = admissionRequest(pod, { operation: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT', ''][pick(rnd, 5)]! });
  let out: unknown = r;
  for (let i = 0, n = pick(rnd, 4); i < n; i++) out = mutateJson(rnd, out);
  return out as Record<string, any>;
}

/** Checks an AdmissionReview response for `body`; returns a problem or null. */
function checkResponse(body: unknown, answer: any): string | null {
  if (answer?.apiVersion !== 'admission.k8s.io/v1' || answer?.kind !== 'AdmissionReview') return 'not an AdmissionReview v1';
  const res = answer.response;
  const uid = (body as any)?.request?.uid;
  if (!res || res.uid !== uid) return `response uid ${res?.uid} for request uid ${uid}`;
  if (typeof res.allowed !== 'boolean') return 'allowed is not a boolean';
  if (res.patch !== undefined) {
    if (res.patchType !== 'JSONPatch') return 'patch without patchType JSONPatch';
    let ops: unknown;
    try {
      ops = JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8'));
    } catch {
      return 'patch is not base64 JSON';
    }
    try {
      jsonpatch.applyPatch(structuredClone((body as any).request.object), ops as jsonpatch.Operation[], true, false);
    } catch (err) {
      return `patch does not apply to the object: ${(err as Error).message}`;
    }
  }
  return null;
}

describe('injector admission fuzz', () => {
  const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53', upstreams: ['udp://10.0.0.2:53'] });
  const deps = { config, tenants: new NamespaceNameResolver() };

  test('review(): mutated and random reviews get a valid response or a BAD_REQUEST, nothing else', async (t) => {
    t.diagnostic(`FUZZ_SEED=${SEED}`);
    const rnd = prng(SEED ^ 0xadadad);
    const start = Date.now();
    const outcomes = { response: 0, badRequest: 0, patched: 0 };
    const problems: string[] = [];
    let n = 0;
    for (; n < 5000 && Date.now() - start < BUDGET_MS; n++) {
      const body = rnd() < 0.15 ? randomValue(rnd, 0) : mutatedReview(rnd);
      try {
        const answer = await review(body, deps);
        outcomes.response++;
        if (answer.response.patch) outcomes.patched++;
        const why = checkResponse(body, answer);
        if (why && problems.length < 10) problems.push(`#${n}: ${why}: ${JSON.stringify(body).slice(0, 300)}`);
      } catch (err) {
        if (err instanceof InjectorError && err.code === 'BAD_REQUEST') outcomes.badRequest++;
        else if (problems.length < 10) problems.push(`#${n}: threw ${err instanceof Error ? err.stack : String(err)}: ${JSON.stringify(body)?.slice(0, 300)}`);
      }
    }
    t.diagnostic(`${n} reviews in ${Date.now() - start} ms: ${JSON.stringify(outcomes)}`);
    assert.deepEqual(problems, [], `seed ${SEED}`);
    assert.ok(outcomes.patched > 0 && outcomes.badRequest > 0, 'the fuzz reaches both outcomes');
  });

  describe('over HTTPS', () => {
    let pki: TestPki;
    let server: InjectorServer;
    before(async () => {
      pki = makeTestPki(['tenant-dns-injector.tenant-dns-system.svc']);
      const registry = new Registry();
      server = await startInjectorServer({
        host: '127.0.0.1',
        port: 0,
        certFile: pki.certFile,
        keyFile: pki.keyFile,
        registry,
        maxBodyBytes: 256 * 1024,
        requestTimeoutMs: 3000,
        certCheckIntervalMs: 0,
        deps: { ...deps, metrics: createInjectorMetrics(registry) },
      });
    }, { timeout: 60_000 });
    after(async () => {
      await server?.close(100);
      pki?.cleanup();
    }, { timeout: 60_000 });

    const agent = () => new https.Agent({ keepAlive: true, maxSockets: 8 });

    function post(ag: https.Agent, body: Buffer | string): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: server.address.port,
            path: '/mutate?timeout=5s',
            method: 'POST',
            ca: pki.ca,
            servername: 'tenant-dns-injector.tenant-dns-system.svc',
            headers: { 'Content-Type': 'application/json' },
            agent: ag,
            timeout: 5000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('request hung past 5 s')));
        req.on('error', reject);
        req.end(body);
      });
    }

    test('random bytes, broken JSON and mutated reviews: HTTP 400/413 or a valid response, never a hang', async (t) => {
      const rnd = prng(SEED ^ 0x4545);
      const ag = agent();
      t.after(() => ag.destroy());
      const problems: string[] = [];
      const statuses: Record<number, number> = {};
      const N = 400;
      const start = Date.now();
      let next = 0;
      const worker = async () => {
        while (next < N && Date.now() - start < BUDGET_MS) {
          const i = next++;
          let parsed: unknown;
          let raw: Buffer | string;
          const kind = pick(rnd, 5);
          if (kind === 0) raw = randomBytesFrom(rnd, pick(rnd, 300));
          else if (kind === 1) {
            const s = JSON.stringify(mutatedReview(rnd)) ?? "null";
            raw = s.slice(0, pick(rnd, s.length));
          } else {
            parsed = kind === 2 ? randomValue(rnd, 0) : mutatedReview(rnd);
            raw = JSON.stringify(parsed) ?? 'undefined';
          }
          let res: { status: number; body: string };
          try {
            res = await post(ag, raw);
          } catch (err) {
            problems.push(`#${i}: ${(err as Error).message}`);
            continue;
          }
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === 400 || res.status === 413) continue;
          if (res.status !== 200) {
            problems.push(`#${i}: HTTP ${res.status}: ${res.body.slice(0, 200)}`);
            continue;
          }
          let answer: unknown;
          try {
            answer = JSON.parse(res.body);
          } catch {
            problems.push(`#${i}: 200 with a body that is not JSON`);
            continue;
          }
          const why = checkResponse(parsed ?? JSON.parse(raw.toString()), answer);
          if (why) problems.push(`#${i}: ${why}`);
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      t.diagnostic(`${next} requests in ${Date.now() - start} ms, statuses ${JSON.stringify(statuses)}`);
      assert.deepEqual(problems.slice(0, 10), [], `seed ${SEED}`);
      const ok = await post(ag, JSON.stringify(admissionRequest(samplePod())));
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body).response.patchType, 'JSONPatch');
    });
  });
});
