/**
 * Isolation (issue 6 item 6): the sidecar listens only where configured, and
 * two sidecars of different tenants whose split zones conflict (same globs,
 * different CNAME targets and addresses), sharing one upstream, never see
 * each other's answers, with both caches warm and queries interleaved.
 *
 * The listening sockets are found from the child's own file descriptors
 * (/proc/<pid>/fd → socket inodes) matched against /proc/net/{udp,tcp,udp6,tcp6},
 * so other processes' sockets never count. The admin endpoints stay on
 * loopback unless explicitly allowed, and /metrics carries neither query
 * names nor client addresses.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as packet from 'dns-packet';
import { queryTcp, queryUdp } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { formatHostPort } from '../../sidecar/listener/address.ts';
import { spawnCli, spawnServing, startTestSidecar } from '../helpers/sidecar.ts';
import { fieldSchema } from '../../sidecar/config/schema.ts';
import { rawQuery, udpAsk } from './lib.ts';

const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-isolation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** `ADDR:PORT` from a /proc/net hex address (IPv4 or IPv6, host byte order per 32-bit word). */
function decodeProcAddress(hex: string): string {
  const [addr, port] = hex.split(':') as [string, string];
  const p = parseInt(port, 16);
  if (addr.length === 8) {
    const b = Buffer.from(addr, 'hex').reverse();
    return `${[...b].join('.')}:${p}`;
  }
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = Buffer.from(addr.slice(i, i + 8), 'hex').reverse();
    words.push(w.subarray(0, 2).toString('hex'), w.subarray(2, 4).toString('hex'));
  }
  return `[${words.map((w) => w.replace(/^0+(?=.)/, '')).join(':')}]:${p}`;
}

/** The bound (UDP, unconnected) and listening (TCP) addresses of the sockets process `pid` holds. */
function listeningAddresses(pid: number): { udp: string[]; tcp: string[] } {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out = { udp: [] as string[], tcp: [] as string[] };
  for (const [proto, files] of [['udp', ['udp', 'udp6']], ['tcp', ['tcp', 'tcp6']]] as const) {
    for (const f of files) {
      const lines = readFileSync(`/proc/${pid}/net/${f}`, 'utf8').trim().split('\n').slice(1);
      for (const line of lines) {
        const cols = line.trim().split(/\s+/);
        const [local, remote, state, inode] = [cols[1]!, cols[2]!, cols[3]!, cols[9]!];
        if (!inodes.has(inode)) continue;
        const remoteUnset = /^0+:0000$/.test(remote);
        // TCP: LISTEN (0A). UDP: a socket with no peer is one that receives from anyone.
        if (proto === 'tcp' ? state === '0A' : remoteUnset) out[proto].push(decodeProcAddress(local));
      }
    }
  }
  return { udp: out.udp.sort(), tcp: out.tcp.sort() };
}

describe('listening sockets', () => {
  test('the sidecar listens on its --listen addresses (UDP and TCP), its metrics and admin addresses (TCP), nothing else', async (t) => {
    const upstream = await startDnsServer();
    const child = await spawnServing([
      'sidecar',
      '--listen', '127.0.0.1:0',
      '--listen', '127.0.0.1:0',
      '--upstream', upstream.url('udp'),
      '--upstream', upstream.url('tcp'),
    ]);
    t.after(async () => {
      await child.kill();
      await upstream.close();
    });
    const [p1, p2] = child.listen.map((a) => a.port);
    // Traffic first, so upstream sockets exist and are seen not to listen.
    for (const port of [p1, p2]) {
      assert.ok(await udpAsk(port, rawQuery('www.example', 1, 2, 1232), 2000));
      await queryTcp('127.0.0.1', port, { name: 'x.example', type: 'A' });
    }
    const found = listeningAddresses(child.child.pid!);
    t.diagnostic(`listening: ${JSON.stringify(found)}`);
    assert.deepEqual(found.udp, [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`].sort());
    assert.deepEqual(found.tcp, [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`, formatHostPort(child.metrics!), formatHostPort(child.admin!)].sort());
  });

  test('admin endpoints: loopback by default, a non-loopback --admin is refused at start', async () => {
    const admin = fieldSchema('admin') as { default?: string };
    assert.match(admin.default ?? '', /^127\.0\.0\.1:/);
    const p = spawnCli(['sidecar', '--listen', '127.0.0.1:0', '--upstream', 'udp://127.0.0.1:9', '--admin', '0.0.0.0:0']);
    const timer = setTimeout(() => void p.kill(), 15_000);
    const code = await p.exited;
    clearTimeout(timer);
    assert.equal(code, 1, p.stderr());
    assert.match(p.stderr(), /--admin/);
  });

  test('/metrics carries no query names and no client addresses', async (t) => {
    const upstream = await startDnsServer();
    // The client on 127.0.0.3, the sidecar on 127.0.0.2, the upstream on 127.0.0.1: each address is told apart.
    const child = await spawnServing(['sidecar', '--listen', '127.0.0.2:0', '--upstream', upstream.url('udp')]);
    t.after(async () => {
      await child.kill();
      await upstream.close();
    });
    const port = child.port;
    const pm = child.metrics!.port;
    const names = ['secret-project-4711.example', 'payroll-db.internal.example', 'x7y8z9.tracking.example'];
    for (const name of names) {
      for (const qtype of [1, 28, 16]) {
        const reply = await udpAskFrom('127.0.0.3', '127.0.0.2', port, rawQuery(name, qtype, 3, 1232));
        assert.ok(reply, `${name} answered`);
      }
    }
    const text = await (await fetch(`http://127.0.0.1:${pm}/metrics`)).text();
    assert.match(text, /tenant_dns_requests_total/);
    for (const secret of [...names, ...names.map((n) => n.split('.')[0]!), '127.0.0.3']) {
      assert.ok(!text.includes(secret), `/metrics mentions ${secret}`);
    }
  });
});

/** Sends `wire` over UDP from `from` to `to:port` and resolves with the first reply, or null after 2 s. */
async function udpAskFrom(from: string, to: string, port: number, wire: Buffer): Promise<Buffer | null> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, from, () => r()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, 2000);
    s.once('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(wire, port, to);
  });
}

/** A tenant's policy: the same globs as the other tenant's, different targets and addresses. */
function tenantPolicy(tenant: 'a' | 'b'): string {
  return `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata:
  name: team-${tenant}
spec:
  splitZones:
    - name: kafka
      names: ["*.kafka.shared.example"]
      cname: vpce-${tenant}.endpoints.example
      ttl: 300
    - name: db
      names: ["db.shared.example"]
      addresses: ["10.${tenant === 'a' ? 1 : 2}.0.1"]
      ttl: 300
`;
}

describe('two tenants, one upstream', () => {
  test('conflicting split zones never leak between tenants, caches warm, queries interleaved', async (t) => {
    // The shared upstream knows both tenants' endpoints, like a VPC resolver would.
    const upstream = await startDnsServer({
      handler: (q) => {
        const name = q.questions?.[0]?.name.toLowerCase() ?? '';
        const data = name === 'vpce-a.endpoints.example' ? '10.0.0.1' : name === 'vpce-b.endpoints.example' ? '10.0.0.2' : '192.0.2.1';
        return {
          id: q.id,
          type: 'response',
          flags: packet.RECURSION_AVAILABLE | packet.RECURSION_DESIRED,
          questions: q.questions,
          answers: q.questions?.[0]?.type === 'A' ? [{ name, type: 'A', class: 'IN', ttl: 300, data }] : [],
        };
      },
    });
    const sidecars = {} as Record<'a' | 'b', Awaited<ReturnType<typeof startTestSidecar>>>;
    for (const tenant of ['a', 'b'] as const) {
      const path = join(dir, `team-${tenant}.yaml`);
      writeFileSync(path, tenantPolicy(tenant));
      sidecars[tenant] = await startTestSidecar({ tenant: `team-${tenant}`, policy: path, upstream: [upstream.url('udp')] });
    }
    t.after(async () => {
      await sidecars.a.stop();
      await sidecars.b.stop();
      await upstream.close();
    });
    const expected = {
      a: { target: 'vpce-a.endpoints.example', endpoint: '10.0.0.1', db: '10.1.0.1' },
      b: { target: 'vpce-b.endpoints.example', endpoint: '10.0.0.2', db: '10.2.0.1' },
    };
    const problems: string[] = [];
    const names = ['b-1.kafka.shared.example', 'b-2.kafka.shared.example', 'x.y.kafka.shared.example', 'db.shared.example', 'vpce-a.endpoints.example', 'vpce-b.endpoints.example'];
    // Three rounds: the first fills both caches, the next two are answered warm.
    let afterFirstRound = 0;
    for (let round = 0; round < 3; round++) {
      if (round === 1) afterFirstRound = upstream.counts.total;
      for (const name of names) {
        for (const tenant of ['a', 'b', 'b', 'a'] as const) {
          const sc = sidecars[tenant];
          const other = expected[tenant === 'a' ? 'b' : 'a'];
          const r = round % 2 === 0 ? await queryUdp(sc.host, sc.port, { name, type: 'A' }) : await queryTcp(sc.host, sc.port, { name, type: 'A' });
          const datas = r.answers.map((a) => String(a.data));
          if (r.rcode !== 'NOERROR') problems.push(`${tenant} ${name}: ${r.rcode}`);
          if (name.endsWith('.kafka.shared.example')) {
            if (datas[0] !== expected[tenant].target || datas[1] !== expected[tenant].endpoint) problems.push(`${tenant} ${name}: ${JSON.stringify(datas)}`);
          } else if (name === 'db.shared.example') {
            if (datas.join() !== expected[tenant].db) problems.push(`${tenant} ${name}: ${JSON.stringify(datas)}`);
          }
          // The other tenant's split data never appears (its endpoint name, asked directly, is public data).
          if (!name.startsWith('vpce-') && (datas.includes(other.target) || datas.includes(other.endpoint) || datas.includes(other.db))) {
            problems.push(`${tenant} ${name}: the other tenant's answer ${JSON.stringify(datas)}`);
          }
        }
      }
    }
    t.diagnostic(`upstream queries: ${afterFirstRound} in the first round, ${upstream.counts.total} in all`);
    assert.deepEqual(problems, []);
    // Rounds two and three were answered from warm caches (and split zones), never upstream.
    assert.equal(upstream.counts.total, afterFirstRound, 'warm caches answered the later rounds');
  });
});
