/**
 * The sidecar program's quick reading of its command line (sidecar/cli-args.ts) against commander's: whatever
 * the quick reading returns is exactly the options object commander hands the `sidecar` action, and it steps
 * aside (undefined) for everything commander answers otherwise (help, version, errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newProgram } from '../../bin/program.ts';
import { registerSidecarCommand } from '../../sidecar/cli.ts';
import { quickSidecarOptions, sidecarOptionForms } from '../../sidecar/cli-args.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { sidecarArgs } from '../../injector/sidecar-spec.ts';
import { fuzzSeed, pick, prng } from '../helpers/fuzz.ts';

/** What commander gives for `tenant-dns sidecar ARGS`: the action's options, or what it threw. */
function viaCommander(args: readonly string[]): { opts?: Record<string, unknown>; error?: string } {
  const program = newProgram();
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  let got: Record<string, unknown> | undefined;
  registerSidecarCommand(program, async (opts) => {
    got = opts;
  });
  try {
    program.parse(['node', 'tenant-dns', 'sidecar', ...args]);
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  assert.ok(got, `commander ran no action for ${JSON.stringify(args)}`);
  return { opts: { ...got } };
}

/** The quick reading agrees with commander on `args`; returns whether it read them (rather than stepping aside). */
function agrees(args: readonly string[]): boolean {
  const quick = quickSidecarOptions(args);
  if (quick === undefined) return false;
  const slow = viaCommander(args);
  assert.equal(slow.error, undefined, `quick read ${JSON.stringify(args)}, commander failed: ${slow.error}`);
  assert.deepEqual(quick, slow.opts, `options of ${JSON.stringify(args)}`);
  return true;
}

test('the arguments the injector writes are read without commander, as commander reads them', () => {
  const configs = [
    parseInjectorConfig({}),
    parseInjectorConfig({ upstreams: ['tls://dns.example:853', 'udp://10.0.0.10:53'], bootstrap: ['dns.example=10.0.0.53'], metricsPort: 9200, autopath: false, clusterSpecNamesOnly: true }),
  ];
  for (const config of configs) {
    for (const dns of [undefined, { searches: ['ns.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], ndots: 5 }]) {
      const args = sidecarArgs(config, dns);
      assert.ok(agrees(args), `the injector's ${JSON.stringify(args)} went to commander`);
    }
  }
});

test('every flag in each of its forms reads as commander reads it', () => {
  for (const f of sidecarOptionForms()) {
    const value = f.integer ? '42' : f.form === 'optional' ? 'false' : '127.0.0.1:53';
    if (f.form === 'switch') {
      assert.ok(agrees([f.flag]), f.flag);
      assert.ok(agrees([f.flag, f.flag]), `${f.flag} twice`);
      continue;
    }
    if (f.form === 'optional') {
      assert.ok(agrees([f.flag]), f.flag);
      assert.ok(agrees([f.flag, '--listen', '127.0.0.1:53']), `${f.flag} before another flag`);
      assert.ok(agrees([`${f.flag}=true`]), `${f.flag}=true`);
      assert.ok(agrees([f.flag, 'false']), `${f.flag} false`);
    }
    assert.ok(agrees([`${f.flag}=${value}`]), `${f.flag}=${value}`);
    if (f.form === 'required') {
      assert.ok(agrees([f.flag, value]), `${f.flag} ${value}`);
      assert.ok(agrees([f.flag, value, `${f.flag}=${f.integer ? '7' : 'x'}`]), `${f.flag} twice`);
      if (!f.integer) assert.ok(agrees([`${f.flag}=`]), `${f.flag}= (empty)`);
    }
  }
});

test('what needs commander goes to it: help, version, unknown and short flags, operands, bad or missing values', () => {
  const stepAside: string[][] = [
    ['--help'],
    ['-h'],
    ['--version'],
    ['-V'],
    ['--bogus'],
    ['--listen', '127.0.0.1:53', '--bogus', 'x'],
    ['-x'],
    ['extra'],
    ['--listen', '127.0.0.1:53', 'extra'],
    ['--listen'],
    ['--listen', '--tenant', 'a'],
    ['--cache-max-entries', 'ten'],
    ['--cache-max-entries=1.5'],
    ['--admin-allow-non-loopback=true'],
    ['--autopath', '-1'],
    ['--autopath=maybe'],
  ];
  for (const args of stepAside) {
    assert.equal(quickSidecarOptions(args), undefined, `quick read ${JSON.stringify(args)}`);
    // And commander does something else with them than run the sidecar with options: it answers or refuses.
    const slow = viaCommander(args);
    if (slow.error === undefined) assert.fail(`commander ran the sidecar for ${JSON.stringify(args)}: the quick reading could have read it`);
  }
  // Left to commander although it runs the sidecar with them: an end of options, a value that looks like a flag.
  for (const args of [['--'], ['--listen', '127.0.0.1:53', '--'], ['--tenant', '-a'], ['--listen', '-1']]) {
    assert.equal(quickSidecarOptions(args), undefined, `quick read ${JSON.stringify(args)}`);
    assert.equal(viaCommander(args).error, undefined, `commander refused ${JSON.stringify(args)}`);
  }
});

test('random command lines of the sidecar flags agree with commander whenever the quick reading takes them', () => {
  const forms = sidecarOptionForms();
  const values = ['127.0.0.1:53', 'x', '', '12', '-3', 'a=b', 'true', 'false', '--tenant', '0x10', ' 7 '];
  const rnd = prng(fuzzSeed(19));
  const rand = (n: number) => pick(rnd, n);
  let read = 0;
  for (let i = 0; i < 600; i++) {
    const args: string[] = [];
    for (let k = rand(6); k > 0; k--) {
      const f = forms[rand(forms.length)]!;
      const v = values[rand(values.length)]!;
      const shape = rand(3);
      if (shape === 0) args.push(f.flag);
      else if (shape === 1) args.push(f.flag, v);
      else args.push(`${f.flag}=${v}`);
    }
    if (agrees(args)) read++;
    else {
      // Stepped aside: commander either refuses the line or runs with it; both are its own behaviour.
      viaCommander(args);
    }
  }
  assert.ok(read > 100, `only ${read} of 600 random lines were read quickly: the comparison says little`);
});
