import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../sidecar/log.ts';
import { redactUrl, redactUrls, showUrl } from '../../sidecar/redact.ts';

test('redactUrl: scheme, host and port only, with the default port filled in', () => {
  const cases: [string, string][] = [
    ['https://u:p@dns.example/dns-query/profile-SECRET?api_key=SECRET', 'https://dns.example:443'],
    ['https://DNS.Example:8443/x#tls-name=a', 'https://dns.example:8443'],
    ['tls://user@dns.example', 'tls://dns.example:853'],
    ['udp://10.0.0.1', 'udp://10.0.0.1:53'],
    ['tcp://[fd00::1]:5353/path', 'tcp://[fd00::1]:5353'],
    ['udp://u:p@10.0.0.1:70000/x?y', 'udp://10.0.0.1:70000'],
    ['ftp://u:p@files.example/secret', 'ftp://files.example'],
    ['not a url ?key=SECRET', '[redacted]'],
  ];
  for (const [url, shown] of cases) assert.equal(redactUrl(url), shown, url);
});

test('showUrl: a URL with nothing to hide stays as written, any other is redacted', () => {
  assert.equal(showUrl('udp://10.0.0.53:70000'), 'udp://10.0.0.53:70000');
  assert.equal(showUrl('tls://dns.example/'), 'tls://dns.example/');
  assert.equal(showUrl('https://dns.example/dns-query'), 'https://dns.example:443');
});

test('redactUrls: every URL in a text, punctuation around it kept', () => {
  assert.equal(
    redactUrls('group g mixes encrypted (https://u:p@a.example/x?k=1, tls://b.example) and plain (udp://10.0.0.1/p): refused'),
    'group g mixes encrypted (https://a.example:443, tls://b.example) and plain (udp://10.0.0.1:53): refused',
  );
  assert.equal(redactUrls('upstream https://a.example/q?k=SECRET: timeout.'), 'upstream https://a.example:443: timeout.');
  assert.equal(redactUrls('read file:///etc/tenant-dns/ca.pem'), 'read file:///etc/tenant-dns/ca.pem', 'file paths are no secret');
  assert.equal(redactUrls('{"u":"https://a.example/p?k=1","v":"tcp://[::1]:53"}'), '{"u":"https://a.example:443","v":"tcp://[::1]:53"}');
  assert.equal(redactUrls('https://a.example/p#tls-name=x', () => true), 'https://a.example:443#tls-name=x');
  assert.equal(redactUrls('no urls here'), 'no urls here');
});

test('log: a line never shows a URL\'s user info, path or query, wherever it is', () => {
  const lines: string[] = [];
  const log = createLogger({ component: 'test' }, 'info', (l) => lines.push(l));
  log('error', 'upstream https://us3r:pa55@dns.example/profile-s3cr3t?api_key=k3y failed', {
    error: 'exchanging with tls://us3r@dns.example/x: refused',
    upstreams: ['https://dns.example/dns-query?token=k3y'],
  });
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0]!, /us3r|pa55|s3cr3t|api_key|k3y|dns-query/);
  const parsed = JSON.parse(lines[0]!) as { msg: string; error: string; upstreams: string[] };
  assert.equal(parsed.msg, 'upstream https://dns.example:443 failed');
  assert.equal(parsed.error, 'exchanging with tls://dns.example:853: refused');
  assert.deepEqual(parsed.upstreams, ['https://dns.example:443']);
});
