/**
 * A throwaway CA and server certificates made with openssl, for HTTPS tests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Files and PEM text of a generated CA and one server certificate. */
export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
  /** Issues another server certificate (new key) for the same names, into `certFile`/`keyFile` paths given, valid `days` (default 2). */
  issue(certFile: string, keyFile: string, cn?: string, days?: number): void;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a CA and a server certificate for `dnsNames` (plus 127.0.0.1) in a temp dir. */
export function makeTestPki(dnsNames: readonly string[] = ['localhost']): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-pki-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tenant-dns test CA'], dir);
  const san = [...dnsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  const issue = (certFile: string, keyFile: string, cn = dnsNames[0] ?? 'localhost', days = 2) => {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', 'server.csr', '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', certFile, '-days', String(days), '-extfile', 'ext.cnf'], dir);
  };
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  issue(certFile, keyFile);
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    ca: readFileSync(join(dir, 'ca.crt')),
    certFile,
    keyFile,
    issue,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
