/**
 * Makes OUTDIR/cache/sidecar.v8, V8's code cache for the bundled sidecar (deploy/scripts/bundle.sh runs it):
 *
 *   node deploy/scripts/warm-code-cache.ts OUTDIR
 *
 * It starts `OUTDIR/dist/tenant-dns.mjs sidecar` on loopback with a policy of the common kinds (deny rules
 * with logging, an allow rule, a static split zone) and an upstream of its own that answers every name, asks
 * until the sidecar has answered a denied name, a forwarded one and a split-zone one, and waits for the
 * sidecar to write the cache (it does, asked by TENANT_DNS_CODE_CACHE_OUT, just before its start-up heap
 * compaction: sidecar/runtime/code-cache.ts). Then it stops the sidecar. Nothing leaves 127.0.0.1.
 * Exits 1, saying why, when any of that fails.
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import packet from 'dns-packet';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CODE_CACHE_OUT_ENV } from '../../sidecar/runtime/code-cache.ts';

const out = resolve(process.argv[2] ?? '');
if (!process.argv[2] || !existsSync(join(out, 'dist', 'sidecar.cjs'))) {
  process.stderr.write('usage: node deploy/scripts/warm-code-cache.ts OUTDIR (a bundle.sh output with dist/sidecar.cjs)\n');
  process.exit(2);
}
const DEADLINE_MS = 60_000;
const cacheFile = join(out, 'cache', 'sidecar.v8');
const work = mkdtempSync(join(tmpdir(), 'tenant-dns-warm-'));

const POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata:
  name: warm-start
spec:
  defaultAction: allow
  rules:
    - name: deny-trackers
      action: deny
      names:
        - "*.tracker.warm.test"
        - ads.warm.test
      log: true
    - name: allow-app
      action: allow
      names:
        - "*.app.warm.test"
  splitZones:
    - name: static-db
      names:
        - db.warm.test
        - "*.db.warm.test"
      addresses:
        - 198.51.100.10
        - 2001:db8::10
      ttl: 30
`;
/** The names asked, one per path: denied by a rule, forwarded upstream, answered from the split zone. */
const NAMES = ['x.tracker.warm.test', 'www.app.warm.test', 'a.db.warm.test'];

/** A query for `name` (type A, RD) with id `id`. */
function query(id: number, name: string): Buffer {
  return packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', class: 'IN', name }] });
}

/** The upstream's answer to `q`: its question and, for type A, one address (198.51.100.20, TTL 60). */
function answer(q: Buffer): Buffer | undefined {
  let msg: packet.Packet;
  try {
    msg = packet.decode(q);
  } catch {
    return undefined;
  }
  const question = msg.questions?.[0];
  if (question === undefined) return undefined;
  return packet.encode({
    type: 'response',
    id: msg.id,
    flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
    questions: [question],
    answers: question.type === 'A' ? [{ type: 'A', class: 'IN', name: question.name, ttl: 60, data: '198.51.100.20' }] : [],
  });
}

const upstream = dgram.createSocket('udp4');
upstream.on('message', (msg, rinfo) => {
  const reply = answer(msg);
  if (reply) upstream.send(reply, rinfo.port, rinfo.address);
});
await new Promise<void>((res) => upstream.bind(0, '127.0.0.1', res));
const policyFile = join(work, 'policy.yaml');
writeFileSync(policyFile, POLICY);

let child: ReturnType<typeof spawn> | undefined;
const client = dgram.createSocket('udp4');
try {
  const partial = `${cacheFile}.partial`;
  // Port 0: the kernel picks it, and the "sidecar serving" line says which.
  child = spawn(
    process.execPath,
    [
      join(out, 'dist', 'tenant-dns.mjs'),
      'sidecar',
      '--listen',
      '127.0.0.1:0',
      '--upstream',
      `udp://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      '--policy',
      policyFile,
      '--metrics',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
    ],
    { env: { ...process.env, [CODE_CACHE_OUT_ENV]: partial }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  let port: number | undefined;
  let written = false;
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((res) => child!.on('exit', (code) => res((exitCode = code))));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    port ??= Number(/"msg":"sidecar serving".*?"listen":\["127\.0\.0\.1:(\d+)"/.exec(stderr)?.[1]) || undefined;
    if (stderr.includes('"msg":"code cache written"')) written = true;
  });
  const answered = new Set<number>();
  client.on('message', (msg) => answered.add(msg.readUInt16BE(0)));
  await new Promise<void>((res) => client.bind(0, '127.0.0.1', res));
  const t0 = Date.now();
  while (!written && exitCode === undefined && Date.now() - t0 < DEADLINE_MS) {
    if (port !== undefined) for (let i = 0; i < NAMES.length; i++) if (!answered.has(i + 1)) client.send(query(i + 1, NAMES[i]!), port, '127.0.0.1');
    await new Promise((res) => setTimeout(res, 5));
  }
  if (exitCode === undefined) child.kill('SIGTERM');
  await exited;
  if (!written) throw new Error(`the sidecar did not write its code cache (exit ${exitCode}, ${answered.size} of ${NAMES.length} names answered):\n${stderr}`);
  if (answered.size < NAMES.length) throw new Error(`the sidecar wrote its code cache before it had answered all ${NAMES.length} names (${answered.size}):\n${stderr}`);
  if (exitCode !== 0) throw new Error(`the sidecar exited ${exitCode} on SIGTERM:\n${stderr}`);
  renameSync(partial, cacheFile);
} catch (err) {
  child?.kill('SIGKILL');
  process.stderr.write(`warm-code-cache: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  client.close();
  upstream.close();
  rmSync(work, { recursive: true, force: true });
}
