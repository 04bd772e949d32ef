/**
 * What the libraries cost before any tenant-dns code runs (issue 19): the
 * Node ceiling (test/bench/ceiling.ts) started with one library the sidecar
 * loads at start-up, loaded and used once the way the sidecar uses it, each
 * bundled and run as the sidecar is (esbuild, the compile cache, the image's
 * ENV, the injector's NODE_OPTIONS); then all of them together, then the
 * sidecar itself with the bench's policy. Start to first answer (median of
 * alternating starts, the server on CPU 0, this process on CPU 1) and private
 * memory (USS) of processes idling side by side, each ÷ the bare ceiling's in
 * the same run. Every variant but the bare ceiling also runs the sidecar's
 * start-up heap compaction, so the libraries are weighed as the sidecar
 * carries them.
 *
 * Run:    node test/bench/floor.ts [--rounds 9] [--count 4] [--app DIR]
 *         --app: a sidecar bundle built before (deploy/scripts/bundle.sh DIR) instead of this tree's.
 * Output: a markdown table on stdout.
 */
import { buildSync } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { imageEntrypoint, imageEnvAt } from '../helpers/image.ts';
import { freePort } from '../helpers/ports.ts';
import { ROOT } from '../helpers/sidecar.ts';
import { benchPolicy, podNodeOptions, sidecarBundle, startAuthoritative, startDaemon, startTenantDns, type BenchServer, type UpstreamInfo } from '../helpers/peers.ts';
import { smapsRollup } from './memory.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, count: { type: 'string', default: '4' }, app: { type: 'string' } } });
const ROUNDS = Number(args.rounds);
const COUNT = Number(args.count);

/** One library as the sidecar loads and uses it at start-up: imports, then a statement or two. */
const LIBRARIES: Readonly<Record<string, { imports: string; use: string }>> = {
  commander: {
    imports: "import { Command, Option } from 'commander';",
    use: "const c = new Command('sidecar'); for (let i = 0; i < 45; i++) c.addOption(new Option(`--flag-${i} <v>`, `flag ${i}`).default(String(i))); c.parse(['node', 'x', '--flag-3', 'a'], { from: 'node' });",
  },
  typebox: {
    imports: "import { Object as TObject, String as TString, Integer, Optional, Array as TArray } from '@sinclair/typebox'; import { Check, Default } from '@sinclair/typebox/value'; import { Errors } from '@sinclair/typebox/errors';",
    use: "const s = TObject({ name: TString(), n: Optional(Integer({ minimum: 0, default: 1 })), list: TArray(TString()) }); const v = Default(s, { name: 'a', list: ['b'] }); if (!Check(s, v)) throw new Error(String([...Errors(s, v)]));",
  },
  'js-yaml': {
    imports: "import { CORE_SCHEMA, load } from 'js-yaml';",
    use: "load('rules:\\n  - name: a\\n    action: deny\\n    names: [\"*.example\"]\\n', { schema: CORE_SCHEMA });",
  },
  'prom-client': {
    imports: "import Registry from 'prom-client/lib/registry.js'; import Counter from 'prom-client/lib/counter.js'; import Gauge from 'prom-client/lib/gauge.js'; import Histogram from 'prom-client/lib/histogram.js'; import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';",
    use: "const r = new Registry(); for (let i = 0; i < 8; i++) new Counter({ name: `c${i}`, help: 'h', labelNames: ['a'], registers: [r] }); for (let i = 0; i < 4; i++) new Gauge({ name: `g${i}`, help: 'h', registers: [r] }); new Histogram({ name: 'h', help: 'h', buckets: [0.001, 0.01, 0.1], registers: [r] }); eventLoopLag(r, {});",
  },
  'dns-packet': {
    imports: "import * as packet from 'dns-packet';",
    use: "packet.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'x.example' }], authorities: [{ type: 'SOA', name: 'example', ttl: 30, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } }] });",
  },
};

/** Not loaded by the sidecar since its random bytes come from /dev/urandom (sidecar/runtime/random.ts): what that saves. */
const CRYPTO = { imports: '', use: "process.getBuiltinModule('node:crypto').randomFillSync(new Uint16Array(4096));" };

/** The sidecar's start-up heap compaction (sidecar/runtime/heap.ts), so that the libraries are weighed after it, as the sidecar is. */
const COMPACTION = {
  imports: `import { compactHeapAfterStartup } from ${JSON.stringify(join(ROOT, 'sidecar/runtime/heap.ts'))};`,
  use: 'compactHeapAfterStartup(() => {});',
};

const work = mkdtempSync(join(tmpdir(), 'tenant-dns-floor-'));
const image = imageEntrypoint();
const ceilingSource = join(ROOT, 'test/bench/ceiling.ts');

/**
 * Bundles one variant (its imports and uses, then the ceiling's server) the way bundle.sh bundles the CLI into
 * work/NAME/floor.mjs, and fills its compile cache, work/NAME/cache: laid out as bundle.sh lays out /app, so that
 * imageEnvAt points the image's ENV at it.
 */
function build(name: string, parts: readonly { imports: string; use: string }[]): string {
  const out = join(work, name, 'floor.mjs');
  buildSync({
    stdin: { contents: [...parts.map((p) => p.imports), ...parts.map((p) => p.use), `import ${JSON.stringify(ceilingSource)};`].join('\n'), resolveDir: ROOT, sourcefile: `${name}.ts`, loader: 'ts' },
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    legalComments: 'none',
    minifyWhitespace: true,
    logLevel: 'warning',
    banner: { js: "import { createRequire as __tdnsCreateRequire } from 'node:module'; const require = __tdnsCreateRequire(import.meta.url);" },
    outfile: out,
  });
  // The ceiling answers until SIGTERM: run it long enough to load, which is when Node writes the cache.
  try {
    execFileSync(process.execPath, [out, '0'], { env: { ...process.env, NODE_COMPILE_CACHE: join(work, name, 'cache'), NODE_COMPILE_CACHE_PORTABLE: '1' }, timeout: 1500, stdio: 'ignore' });
  } catch {
    // killed by the timeout, as intended
  }
  return out;
}

interface Variant {
  readonly name: string;
  start(up: UpstreamInfo, cpu?: string): Promise<BenchServer>;
}

function floorVariant(name: string, parts: readonly { imports: string; use: string }[]): Variant {
  const script = build(name, parts);
  return {
    name,
    async start(_up, cpu) {
      const port = await freePort();
      const env = { ...process.env, ...imageEnvAt(image, dirname(script)) };
      return startDaemon(name, port, process.execPath, [...image.nodeFlags, ...podNodeOptions(), script, String(port)], { cpu, env });
    },
  };
}

const variants: Variant[] = [
  floorVariant('node', []),
  floorVariant('the heap compaction', [COMPACTION]),
  ...Object.entries(LIBRARIES).map(([name, lib]) => floorVariant(name, [lib, COMPACTION])),
  floorVariant('node:crypto', [CRYPTO, COMPACTION]),
  floorVariant('all five libraries', [...Object.values(LIBRARIES), COMPACTION]),
  { name: 'tenant-dns', start: (up, cpu) => startTenantDns(up, { cpu, extraArgs: ['--policy', benchPolicy()], ...(args.app ? { app: args.app } : {}) }) },
];
if (!args.app) sidecarBundle();

// This process probes and reads; the servers start on CPU 0, so it keeps off that core.
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const auth = await startAuthoritative({ names: 100 });
try {
  const start = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of variants) {
      const s = await v.start(auth.upstream, '0');
      start.get(v.name)!.push(s.startMs);
      await s.stop();
    }
  }
  const uss = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const running: BenchServer[] = [];
  try {
    for (let i = 0; i < COUNT; i++) for (const v of variants) running.push(await v.start(auth.upstream));
    await new Promise((r) => setTimeout(r, 6000));
    running.forEach((s, i) => uss.get(variants[i % variants.length]!.name)!.push(smapsRollup(s.pid).uss / 1024));
  } finally {
    await Promise.all(running.map((s) => s.stop()));
  }
  const base = { start: median(start.get('node')!), uss: median(uss.get('node')!) };
  console.log(`What the libraries cost (${ROUNDS} alternating starts each on CPU 0; USS of ${COUNT} of each idling side by side, 6 s after the last start)\n`);
  console.log('| process | start to first answer, ms | ÷ node | USS idle, MiB | ÷ node |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const v of variants) {
    const s = median(start.get(v.name)!);
    const u = median(uss.get(v.name)!);
    console.log(`| ${v.name === 'node' ? 'the ceiling alone' : v.name === 'tenant-dns' ? 'tenant-dns sidecar (the bench\'s policy)' : `+ ${v.name}`} | ${s.toFixed(1)} | ${(s / base.start).toFixed(2)}× | ${u.toFixed(2)} | ${(u / base.uss).toFixed(2)}× |`);
  }
} finally {
  await auth.stop();
  rmSync(work, { recursive: true, force: true });
}
