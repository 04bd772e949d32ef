/**
 * Bootstrap addresses: re-resolution through bootstrap resolvers given by IP,
 * keeping the last good addresses when a refresh fails.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import type * as packet from 'dns-packet';
import { addressesIn } from '../../../sidecar/upstream/bootstrap.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import type { TestDnsServer } from '../../helpers/dns-server.ts';
import { testPki } from '../../helpers/tls.ts';

const pki = testPki();

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function servers(t: TestContext): Promise<{ dot: TestDnsServer; resolver: TestDnsServer }> {
  const dot = await startDnsServer({ tls: pki.good });
  const resolver = await startDnsServer({
    handler: (q) => {
      const r = defaultAnswer(q);
      const question = q.questions?.[0];
      r.answers = question?.type === 'A' && question.name === 'dns.test' ? [{ name: 'dns.test', type: 'A', ttl: 60, data: '127.0.0.1' }] : [];
      return r;
    },
  });
  t.after(() => Promise.all([dot.close(), resolver.close()]));
  return { dot, resolver };
}

describe('bootstrap', () => {
  it('addressesIn: follows CNAMEs from the host and ignores other owners', () => {
    const answers = [
      { name: 'dns.example', type: 'CNAME', data: 'edge.cdn.example' },
      { name: 'edge.cdn.example', type: 'A', data: '192.0.2.1' },
      { name: 'edge.cdn.example', type: 'AAAA', data: '2001:db8::1' },
      { name: 'evil.example', type: 'A', data: '203.0.113.66' },
    ] as packet.Answer[];
    assert.deepEqual(addressesIn('DNS.example.', answers), ['192.0.2.1', '2001:db8::1']);
  });

  it('bootstrap: a host re-resolved through a bootstrap resolver moves to its new address', async (t) => {
    const { dot, resolver } = await servers(t);
    // 127.0.0.2 has nothing listening: only the re-resolved 127.0.0.1 works.
    const u = fromUrl(dot.url('tls'), {
      bootstrap: { 'dns.test': ['127.0.0.2'] },
      bootstrapResolvers: [resolver.url('udp')],
      bootstrapRefreshMs: 60_000,
      ca: [pki.ca],
    });
    t.after(() => u.close());
    await waitFor(() => resolver.counts.udp >= 2, 2000);
    // The new address is used once the resolver's answers are read: ask until an exchange gets through (each
    // one to the old address fails at once, refused, and lets the answers be read meanwhile).
    let reply: Buffer | undefined;
    for (let i = 0; i < 100 && !reply; i++) {
      reply = await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 2 }), AbortSignal.timeout(2000)).catch(() => undefined);
    }
    assert.equal(reply?.readUInt16BE(0), 2);
  });

  it('bootstrap: a failed refresh keeps the configured addresses and is reported', async (t) => {
    const { dot, resolver } = await servers(t);
    resolver.setHandler(() => 'drop');
    const errors: string[] = [];
    const u = fromUrl(dot.url('https'), {
      bootstrap: { 'dns.test': ['127.0.0.1'] },
      bootstrapResolvers: [resolver.url('udp')],
      bootstrapRefreshMs: 60_000,
      ca: [pki.ca],
      onBootstrapError: (host, message) => errors.push(`${host}: ${message}`),
    });
    t.after(() => u.close());
    await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(2000));
    await waitFor(() => errors.length === 1, 4000);
    assert.match(errors[0]!, /^dns\.test: /);
    await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(2000));
  });

  it('bootstrap: a resolver given by name is CONFIG_INVALID', () => {
    assert.throws(() => fromUrl('tls://dns.test', { bootstrap: { 'dns.test': ['127.0.0.1'] }, bootstrapResolvers: ['udp://resolver.example'] }), {
      code: 'CONFIG_INVALID',
    });
    assert.throws(() => fromUrl('tls://dns.test', { bootstrap: { 'dns.test': ['127.0.0.1'] }, bootstrapResolvers: ['https://1.1.1.1'] }), {
      code: 'CONFIG_INVALID',
    });
  });
});
