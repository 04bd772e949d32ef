import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Registry from 'prom-client/lib/registry.js';
import { collectProcessMetrics } from '../../../sidecar/metrics/metrics.ts';

/** Runs on the CPU until this process has used `ms` more milliseconds of it (bounded: at most 5 s of wall time). */
function burn(ms: number): void {
  const start = process.cpuUsage();
  const deadline = Date.now() + 5000;
  let x = 0;
  while (Date.now() < deadline) {
    for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
  assert.fail(`no ${ms} ms of CPU within 5 s (${x})`);
}

const value = (text: string, name: string): number => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} is not exposed`);
  return Number(m[1]);
};

test('process metrics: at basic, process_cpu_seconds_total counts the CPU used since it was registered', async () => {
  const r = new Registry();
  await collectProcessMetrics(r, 'basic');
  burn(50);
  const text = await r.metrics();
  assert.ok(value(text, 'process_cpu_seconds_total') >= 0.05, text);
  assert.doesNotMatch(text, /^process_cpu_(user|system)_seconds_total/m);
  burn(20);
  assert.ok(value(await r.metrics(), 'process_cpu_seconds_total') >= 0.07);
});

test('process metrics: at full, the user and system counters too, adding up to the total', async () => {
  const r = new Registry();
  await collectProcessMetrics(r, 'full');
  burn(50);
  const text = await r.metrics();
  const user = value(text, 'process_cpu_user_seconds_total');
  const system = value(text, 'process_cpu_system_seconds_total');
  const total = value(text, 'process_cpu_seconds_total');
  assert.ok(user > 0 && total >= 0.05, text);
  // Each counter reads the clock at its own collect, a moment apart.
  assert.ok(Math.abs(user + system - total) < 0.02, `${user} + ${system} vs ${total}`);
});

test('process metrics: basic does not load node:v8 (only the metrics full adds do)', () => {
  // A fresh process: this one may have loaded node:v8 already.
  const script = `
    const { collectProcessMetrics } = await import(${JSON.stringify(new URL('../../../sidecar/metrics/metrics.ts', import.meta.url).href)});
    const { default: Registry } = await import('prom-client/lib/registry.js');
    const v8 = () => process.moduleLoadList.includes('NativeModule v8');
    await collectProcessMetrics(new Registry(), 'basic');
    const basic = v8();
    await collectProcessMetrics(new Registry(), 'full');
    console.log(JSON.stringify({ basic, full: v8() }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../../../', import.meta.url), encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { basic: false, full: true });
});
