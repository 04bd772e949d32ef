/**
 * The benchmark harness in smoke mode (tiny durations, one round): it starts
 * every system, drives each with dnsperf and writes a table with a row for
 * every system, tenant-dns gateway and nsd included. Timings are not asserted;
 * a CI machine's figures mean nothing.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const RUN = fileURLToPath(new URL('./run.ts', import.meta.url));
const SYSTEMS = ['node-ceiling', 'tenant-dns', 'unbound', 'dnsdist', 'kresd', 'dnsmasq'];

test('bench smoke: the harness writes a table with a row for every system', { timeout: 240_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'tenant-dns-bench-smoke-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [RUN, '--smoke', '--out', out], { timeout: 230_000, maxBuffer: 16 << 20 }, (err, so, se) =>
      err ? reject(new Error(`bench --smoke failed: ${err.message}\n${se.slice(-3000)}`)) : resolve(so),
    );
  });
  const md = readFileSync(join(out, 'smoke.md'), 'utf8');
  assert.equal(stdout, md, 'the table printed is the table written');
  const json = JSON.parse(readFileSync(join(out, 'smoke.json'), 'utf8')) as {
    systems: string[];
    metrics: Record<string, { bySystem: Record<string, { median: number }> }>;
    errors: Record<string, string>;
  };
  assert.deepEqual(json.errors, {}, 'no system failed');
  for (const system of SYSTEMS) {
    const rows = md.split('\n').filter((l) => l.startsWith(`| ${system} |`));
    assert.ok(rows.length >= 4, `${system} has a row in every table (found ${rows.length})`);
    for (const row of rows) assert.doesNotMatch(row, /\| error/, `${system} row reports an error: ${row}`);
    for (const metric of ['hit_sat_qps', 'miss_sat_qps', 'hit_fixed_p50', 'start_ms', 'idle_rss_mib']) {
      assert.ok(Number.isFinite(json.metrics[metric]?.bySystem[system]?.median), `${system} has a figure for ${metric}`);
    }
  }
  // The forwarding floor runs the miss workloads only, and the report splits the miss targets by it.
  for (const metric of ['miss_fixed_p99', 'miss_sat_qps', 'miss_fixed_cpu']) {
    assert.ok(Number.isFinite(json.metrics[metric]?.bySystem['node-forwarder']?.median), `node-forwarder has a figure for ${metric}`);
  }
  assert.equal(json.metrics.hit_sat_qps?.bySystem['node-forwarder'], undefined, 'node-forwarder runs no hit workload');
  assert.match(md, /^\| miss p99 at 1000 QPS \(peer: \w+\) \| [0-9.]+× \| [0-9.]+× \| [0-9.]+× \|$/m);
  assert.match(md, /## Issue 7 targets/);
  assert.match(md, /## Issue 19 targets/);
  // Marginal memory: the sidecar, the ceiling and one peer (dnsmasq), USS read idle and after the load.
  const memory = md.slice(md.indexOf('### Marginal memory'));
  for (const system of ['tenant-dns', 'node-ceiling', 'dnsmasq']) assert.match(memory, new RegExp(`^\\| ${system} \\|( [0-9.]+ \\([0-9.]+–[0-9.]+\\) \\|){7}$`, 'm'), `${system} has a memory row`);
  assert.match(md, /\| private memory \(USS\) per sidecar, 2 running, idle ≤ 1\.25× the Node ceiling's \| [0-9.]+× \|/);
  // The authoritative table: tenant-dns gateway and nsd, the same zone, each with its figures.
  assert.match(md, /### Authoritative: tenant-dns gateway against nsd/);
  for (const system of ['tenant-dns gateway', 'nsd']) {
    assert.ok(md.split('\n').some((l) => l.startsWith(`| ${system} |`) && !l.includes('| error')), `a row for ${system}`);
    for (const metric of ['gw_sat_qps', 'gw_fixed_p99']) assert.ok(Number.isFinite(json.metrics[metric]?.bySystem[system]?.median), `${system} has a figure for ${metric}`);
  }
});

const STARTUP = fileURLToPath(new URL('./startup.ts', import.meta.url));
const hasValgrind = (() => {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('bench smoke: startup.ts counts the instructions to the first answer of both systems', { skip: !hasValgrind && 'needs valgrind', timeout: 240_000 }, async () => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [STARTUP, '--runs', '1'], { timeout: 230_000 }, (err, so, se) => (err ? reject(new Error(`startup.ts failed: ${err.message}\n${se.slice(-3000)}`)) : resolve(so)));
  });
  const count = (system: string): number => {
    const m = new RegExp(`^\\| ${system} \\| (\\d+)M `, 'm').exec(stdout);
    assert.ok(m, `a row for ${system}:\n${stdout}`);
    return Number(m[1]);
  };
  // Node alone executes tens of millions of instructions before it runs a line of JavaScript.
  assert.ok(count('node-ceiling') >= 10, stdout);
  assert.ok(count('tenant-dns') > count('node-ceiling'), `the sidecar does more than the ceiling before answering:\n${stdout}`);
});
