/**
 * fromUrl and bootstrap parsing: schemes, default ports, IPv6, and host names
 * that must never reach the system resolver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromUrl, parseBootstrap, parseBootstrapList, type UpstreamOptions } from '../../../sidecar/upstream/from-url.ts';
import { DohUpstream } from '../../../sidecar/upstream/doh.ts';
import { DotUpstream } from '../../../sidecar/upstream/dot.ts';
import { TcpUpstream } from '../../../sidecar/upstream/tcp.ts';
import { UdpUpstream } from '../../../sidecar/upstream/udp.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';

describe('fromUrl', () => {
  it('fromUrl: picks the transport by scheme with default ports', async () => {
    const cases: [string, Function, string][] = [
      ['udp://10.0.0.10', UdpUpstream, 'udp://10.0.0.10:53'],
      ['tcp://10.0.0.10:5353', TcpUpstream, 'tcp://10.0.0.10:5353'],
      ['udp://[fd00::10]', UdpUpstream, 'udp://[fd00::10]:53'],
      ['tcp://[FD00:0::10]:54', TcpUpstream, 'tcp://[fd00::10]:54'],
      ['tls://dns.example', DotUpstream, 'tls://dns.example:853'],
      ['tls://1.1.1.1:8853', DotUpstream, 'tls://1.1.1.1:8853'],
      // The address of a DoH upstream is redacted to scheme, host and port: a path or query may hold a secret.
      ['https://dns.example/dns-query', DohUpstream, 'https://dns.example:443'],
      ['https://dns.example', DohUpstream, 'https://dns.example:443'],
      ['https://dns.example:8443/custom/profile-s3cr3t?api_key=k3y', DohUpstream, 'https://dns.example:8443'],
    ];
    for (const [url, type, address] of cases) {
      const u = fromUrl(url, { bootstrap: { 'dns.example': ['192.0.2.53'] } });
      assert.ok(u instanceof type, url);
      assert.equal(u.address, address);
      await u.close();
    }
  });

  it('fromUrl: a host name without a bootstrap address is CONFIG_INVALID', () => {
    assert.throws(() => fromUrl('tls://dns.example'), { code: 'CONFIG_INVALID', message: /bootstrap/ });
    assert.throws(() => fromUrl('https://dns.example/dns-query', { bootstrap: new Map([['other', ['1.2.3.4']]]) }), { code: 'CONFIG_INVALID' });
    assert.throws(() => fromUrl('udp://dns.example'), { code: 'CONFIG_INVALID', message: /IP address/ });
  });

  it('fromUrl: rejects unknown schemes, bad ports, paths on stream URLs and bad pins', () => {
    for (const url of ['quic://1.2.3.4', 'udp://1.2.3.4:0', 'udp://1.2.3.4:70000', 'tcp://1.2.3.4/path', 'not a url', 'udp://user:pw@1.2.3.4']) {
      assert.throws(() => fromUrl(url), { code: 'CONFIG_INVALID' }, url);
    }
    assert.throws(() => fromUrl('tls://1.2.3.4', { spkiPin: 'short' }), { code: 'CONFIG_INVALID', message: /SPKI/ });
  });

  it('a sidecar refuses an upstream or bootstrap resolver with a port over 65535 as CONFIG_INVALID naming it, not an internal error', async () => {
    // The loop check reads every upstream's host and port before the upstreams are built; the URL parser
    // throws on such a port, and that came out as code INTERNAL, "Invalid URL".
    await assert.rejects(startTestSidecar({ upstream: ['udp://[2001:db8::1]:99999'] }), { code: 'CONFIG_INVALID', message: 'upstream udp://[2001:db8::1]:99999: bad port 99999' });
    await assert.rejects(startTestSidecar({ upstream: ['udp://192.0.2.1:53'], bootstrapResolver: ['udp://192.0.2.2:70000'] }), {
      code: 'CONFIG_INVALID',
      message: 'bootstrap resolver udp://192.0.2.2:70000: bad port 70000',
    });
  });

  it('fromUrl: errors name the upstream without its user info, path or query', () => {
    const cases: [string, UpstreamOptions][] = [
      ['https://us3r:pa55@192.0.2.1/dns-query/profile-s3cr3t?api_key=k3y', {}],
      ['udp://us3r:pa55@192.0.2.1/profile-s3cr3t?api_key=k3y', {}],
      ['https://dns.example/profile-s3cr3t?api_key=k3y', {}],
      ['https://dns.example/profile-s3cr3t', { bootstrap: { 'dns.example': ['192.0.2.1'] }, bootstrapResolvers: ['udp://us3r:pa55@192.0.2.2/x?api_key=k3y'] }],
      ['https://dns.example/profile-s3cr3t', { bootstrap: { 'dns.example': ['192.0.2.1'] }, bootstrapResolvers: ['ftp://us3r:pa55@192.0.2.2/x?api_key=k3y'] }],
    ];
    for (const [url, options] of cases) {
      assert.throws(
        () => fromUrl(url, options),
        (err: Error) => (err as { code?: string }).code === 'CONFIG_INVALID' && !/us3r|pa55|s3cr3t|api_key|k3y/.test(err.message),
        url,
      );
    }
  });

  it('parseBootstrap: host=IP[,IP], normalized; errors are CONFIG_INVALID', () => {
    assert.deepEqual(parseBootstrap('DNS.Example.=192.0.2.1, [2001:db8::1]'), { host: 'dns.example', addresses: ['192.0.2.1', '2001:db8::1'] });
    assert.throws(() => parseBootstrap('dns.example'), { code: 'CONFIG_INVALID' });
    assert.throws(() => parseBootstrap('dns.example=resolver.local'), { code: 'CONFIG_INVALID' });
    assert.deepEqual(
      [...parseBootstrapList(['a=1.1.1.1', 'a=1.0.0.1,1.1.1.1', 'b=::1'])],
      [
        ['a', ['1.1.1.1', '1.0.0.1']],
        ['b', ['::1']],
      ],
    );
  });
});
