/**
 * DNS capture in a simulated pod (test/helpers/pod.ts): apps that ignore the
 * pod's resolv.conf. The same cases run in a pod injected with `capture: init`
 * (the capture init container's args run before the sidecar, with NET_ADMIN
 * and NET_RAW only) and in one without capture, where they show the bypass:
 * each case asserts what its mode must give, so it fails if capture stops
 * working or if the bypass it closes stops being one. Needs root and network
 * namespaces; skipped with the reason elsewhere.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { HostAnswers, PodNet } from '../helpers/pod-hosts.ts';
import { captureSkipReason, muslProbe, startPod, suiteTeardowns, type Pod, type RunResult } from '../helpers/pod.ts';

const skip = captureSkipReason();

const POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: web, namespace: team-a }
spec:
  rules:
    - { name: no-tracking, action: deny, names: ["*.blocked.example"] }
    - { name: no-team-b, action: deny, names: ["*.team-b.svc.cluster.local"] }
`;

/** The sidecar's uid in the injected pod. */
const SIDECAR_UID = 65532;

function dig(pod: Pod, args: readonly string[], uid?: number): Promise<RunResult> {
  return pod.run(['dig', '+tries=1', '+time=3', ...args], { uid });
}

/** The addresses of the A records in dig's output (record lines: `name TTL IN A address`). */
function aRecords(out: string): string[] {
  return [...out.matchAll(/^[^;\s]\S*\s+\d+\s+IN\s+A\s+(\S+)$/gm)].map((m) => m[1]!);
}

for (const capture of [true, false]) {
  describe(`pod capture: ${capture ? 'capture: init' : 'capture: none (the bypass)'}`, { skip }, () => {
    let pod: Pod;
    let musl: string;
    const pods = suiteTeardowns();
    before(async () => {
      musl = await muslProbe();
      pod = await startPod(pods, { name: 'web', policy: POLICY, config: { capture: capture ? 'init' : 'none' } });
    });

    test('the capture init container ran first and its rules are in place (--check); running it again changes nothing', async () => {
      const init = pod.injected.spec.initContainers.map((c: { name: string }) => c.name);
      const check = pod.injected.spec.initContainers[0].args.concat('--check');
      if (!capture) {
        assert.deepEqual(init, ['tenant-dns']);
        const r = await pod.runCapture(['capture', '--check']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /table inet tenant-dns-capture is not installed/);
        return;
      }
      assert.deepEqual(init, ['tenant-dns-capture', 'tenant-dns']);
      assert.match(pod.captureOutput, /^tenant-dns capture: installed table inet tenant-dns-capture \(digest [0-9a-f]{12}\)/);
      const listRules = async () => {
        const r = await pod.run(['nft', 'list', 'ruleset'], { netAdmin: true });
        assert.equal(r.code, 0, r.stderr);
        return r.stdout;
      };
      const first = await listRules();
      const again = await pod.runCapture(pod.injected.spec.initContainers[0].args);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(await listRules(), first, 'the same table, not a second copy');
      assert.equal(first.match(/^table /gm)?.length, 1);
      const ok = await pod.runCapture(check);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /in place/);
      // Apps have no capabilities: they cannot see the rules, let alone remove them.
      const app = await pod.run(['nft', 'delete', 'table', 'inet', 'tenant-dns-capture']);
      assert.notEqual(app.code, 0);
      assert.equal((await pod.runCapture(check)).code, 0);
    });

    test('an app that sends DNS straight to a public resolver, UDP and TCP, as uid 1000 and as root', async () => {
      for (const [transport, uid] of [['+notcp', 1000], ['+tcp', 1000], ['+notcp', 0]] as const) {
        const r = await dig(pod, [transport, `@${PodNet.publicResolver}`, HostAnswers.trackerName, 'A'], uid);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        if (capture) {
          // The sidecar's answer: its deny, NXDOMAIN with EDE 15 naming the rule, not the public resolver's address.
          assert.match(r.stdout, /status: NXDOMAIN/, `${transport} uid ${uid}`);
          assert.match(r.stdout, /EDE: 15 \(Blocked\)[^\n]*no-tracking/);
          assert.deepEqual(aRecords(r.stdout), []);
        } else {
          assert.match(r.stdout, /status: NOERROR/, `${transport} uid ${uid}`);
          assert.deepEqual(aRecords(r.stdout), [HostAnswers.publicA], 'the public resolver answered around the policy');
        }
      }
      await pod.barrier();
      const reached = pod.hostQueries().filter((q) => q.server === 'public' && q.name === HostAnswers.trackerName);
      assert.equal(reached.length, capture ? 0 : 3);
      const denied = pod.queryLog().filter((l) => l.qname === HostAnswers.trackerName && l.rule === 'no-tracking');
      assert.deepEqual(denied.map((l) => l.proto).sort(), capture ? ['tcp', 'udp', 'udp'] : []);
    });

    test('an app that asks kube-dns directly for another namespace\'s Service (musl)', async () => {
      const r = await pod.run([musl, 'web.team-b.svc.cluster.local'], { resolvConf: `nameserver ${PodNet.clusterDns}\n` });
      const line = JSON.parse(r.stdout.trim()) as { ok: boolean; addresses?: string[]; error?: string };
      if (capture) assert.deepEqual(line, { name: 'web.team-b.svc.cluster.local', ok: false, error: 'EAI_NONAME', message: 'Name does not resolve' });
      else assert.deepEqual(line.addresses, [HostAnswers.serviceA], 'kube-dns answered around the isolation rule');
    });

    test('glibc with its own resolv.conf naming the public resolver: A and AAAA in parallel on one socket', async () => {
      const before = pod.queryLog().length;
      const r = await pod.run(['getent', 'ahosts', HostAnswers.dualName], { resolvConf: `nameserver ${PodNet.publicResolver}\n` });
      assert.equal(r.code, 0, r.stderr);
      const addresses = [...new Set(r.stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter(Boolean))].sort();
      await pod.barrier();
      if (capture) {
        // Both questions went through the same NAT mapping to the sidecar and were answered once each.
        assert.deepEqual(addresses, [HostAnswers.dualAaaa, HostAnswers.dualA].sort());
        const asked = pod.queryLog().slice(before).filter((l) => l.qname === HostAnswers.dualName).map((l) => `${l.qtype} ${l.rcode}`);
        assert.deepEqual(asked.sort(), ['A NOERROR', 'AAAA NOERROR']);
      } else {
        assert.deepEqual(addresses, [HostAnswers.publicAaaa, HostAnswers.publicA].sort());
        const seen = pod.hostQueries().filter((q) => q.server === 'public' && q.name === HostAnswers.dualName);
        assert.deepEqual(seen.map((q) => q.type).sort(), ['A', 'AAAA']);
        assert.equal(new Set(seen.map((q) => q.peer)).size, 1, `glibc sent both from one socket: ${seen.map((q) => q.peer).join(', ')}`);
      }
    });

    test('an app that opens DNS over TLS to port 853', async () => {
      const r = await dig(pod, ['+tls', `@${PodNet.dot}`, HostAnswers.trackerName, 'A']);
      if (capture) {
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /connection refused/i);
      } else {
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.deepEqual(aRecords(r.stdout), [HostAnswers.trackerA], 'the DoT server answered around the policy');
      }
    });

    test("the sidecar's own upstream traffic is never captured: kube-dns and DoT see it, no forwarding loop", async () => {
      // Fresh names, so neither comes from the cache.
      const names = { cluster: 'web.team-a.svc.cluster.local', dot: HostAnswers.dualName };
      const svc = await dig(pod, ['+notcp', '@127.0.0.1', names.cluster, 'A']);
      assert.deepEqual(aRecords(svc.stdout), [HostAnswers.serviceA], svc.stdout);
      await pod.barrier();
      const fromSidecar = pod.hostQueries().filter((q) => q.peer.startsWith(`${PodNet.pod}:`));
      assert.ok(fromSidecar.some((q) => q.server === 'cluster' && q.name === names.cluster), 'the sidecar reached kube-dns over UDP/53');
      assert.ok(fromSidecar.some((q) => q.server === 'dot' && q.face === 'tls'), 'the sidecar reached its DoT upstream on 853');
      assert.doesNotMatch(pod.sidecar.stderr(), /FORWARDING_LOOP/);
      // The sidecar's uid is exempt by design (sidecar/capture/README.md): a process running as it is not captured.
      const asSidecar = await dig(pod, ['+notcp', `@${PodNet.publicResolver}`, HostAnswers.trackerName, 'A'], SIDECAR_UID);
      assert.deepEqual(aRecords(asSidecar.stdout), [HostAnswers.publicA]);
    });
  });
}
