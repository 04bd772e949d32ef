/**
 * A test PKI made with the openssl CLI in a temporary directory: a CA, a good
 * certificate for `dns.test` (with SANs dns.test, 127.0.0.1 and ::1), one for
 * the wrong name, an expired one, and one from a CA nobody trusts. EC P-256
 * keys, so generation takes well under a second. Generated once per process.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its private key, as PEM, with their file paths. */
export interface KeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
}

/** The test PKI. */
export interface TestPki {
  readonly dir: string;
  /** The trusted test CA's certificate (PEM) and its file. */
  readonly ca: Buffer;
  readonly caFile: string;
  /** dns.test, 127.0.0.1, ::1; signed by the test CA; valid now. */
  readonly good: KeyPair;
  /** other.test only; signed by the test CA. */
  readonly wrongName: KeyPair;
  /** dns.test, 127.0.0.1; signed by the test CA; expired in 2020. */
  readonly expired: KeyPair;
  /** dns.test, 127.0.0.1; signed by another CA. */
  readonly unknownCa: KeyPair;
}

let cached: TestPki | undefined;

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newCa(dir: string, name: string): void {
  openssl(dir, [
    'req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '30', '-subj', `/CN=tenant-dns ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function csr(dir: string, name: string, cn: string, san: string): void {
  openssl(dir, [
    'req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`,
  ]);
}

function sign(dir: string, name: string, ca: string, san: string): void {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '30', '-sha256', '-extfile', `${name}.ext`,
  ]);
}

function pair(dir: string, name: string): KeyPair {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}

/** The process-wide test PKI, generated on first use (removed at exit). */
export function testPki(): TestPki {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-pki-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const goodSan = 'DNS:dns.test,IP:127.0.0.1,IP:::1';
  newCa(dir, 'ca');
  newCa(dir, 'other-ca');
  csr(dir, 'good', 'dns.test', goodSan);
  sign(dir, 'good', 'ca', goodSan);
  csr(dir, 'wrong-name', 'other.test', 'DNS:other.test');
  sign(dir, 'wrong-name', 'ca', 'DNS:other.test');
  csr(dir, 'unknown-ca', 'dns.test', goodSan);
  sign(dir, 'unknown-ca', 'other-ca', goodSan);
  // An expired certificate needs explicit dates: `openssl ca` with a throwaway database.
  csr(dir, 'expired', 'dns.test', goodSan);
  mkdirSync(join(dir, 'newcerts'));
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]', 'default_ca = test', '[test]', `dir = ${dir}`, `database = ${join(dir, 'index.txt')}`,
      `new_certs_dir = ${join(dir, 'newcerts')}`, `serial = ${join(dir, 'serial')}`, 'default_md = sha256',
      'policy = any', 'copy_extensions = copy', 'unique_subject = no', '[any]', 'commonName = supplied', '',
    ].join('\n'),
  );
  openssl(dir, [
    'ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', 'expired.csr',
    '-out', 'expired.pem', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-notext',
  ]);
  cached = {
    dir,
    ca: readFileSync(join(dir, 'ca.pem')),
    caFile: join(dir, 'ca.pem'),
    good: pair(dir, 'good'),
    wrongName: pair(dir, 'wrong-name'),
    expired: pair(dir, 'expired'),
    unknownCa: pair(dir, 'unknown-ca'),
  };
  return cached;
}
