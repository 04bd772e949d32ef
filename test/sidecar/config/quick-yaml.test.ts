/**
 * The quick paths of configuration loading (sidecar/config/block-yaml.ts, line by line, and
 * sidecar/config/quick-yaml.ts, js-yaml) against the precise one (`yaml`): wherever a quick path returns
 * a value it is the precise path's value, and wherever they would differ it returns nothing, so load.ts
 * runs the next path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments, parse as parseYamlText, stringify } from 'yaml';
import { parseYaml, parseYamlPrecise, parseYamlQuick } from '../../../sidecar/config/load.ts';
import { DNSPolicySchema, checkPolicy } from '../../../sidecar/config/policy-schema.ts';
import { SidecarConfigSchema } from '../../../sidecar/config/schema.ts';
import { quickYamlValue } from '../../../sidecar/config/quick-yaml.ts';
import { blockYamlValue } from '../../../sidecar/config/block-yaml.ts';
import { benchPolicy } from '../../helpers/peers.ts';
import { repositoryFiles } from '../../helpers/repo-files.ts';
import { fuzzSeed, pick, prng } from '../../helpers/fuzz.ts';

const ROOT = join(import.meta.dirname, '../../..');

/** The precise path's plain value of `text`: undefined when `yaml` finds errors or not exactly one document. */
function preciseValue(text: string): { value: unknown } | undefined {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  if (!Array.isArray(docs) || docs.length !== 1 || docs[0]!.errors.length > 0) return undefined;
  try {
    return { value: docs[0]!.toJS({ maxAliasCount: 100 }) };
  } catch {
    return undefined;
  }
}

/** Asserts a quick path's value of `text` is the precise one, or that it stepped aside; returns whether it took it. */
function agrees(text: string, what: string, read: (text: string) => unknown = quickYamlValue): boolean {
  const quick = read(text);
  if (quick === undefined) return false;
  const precise = preciseValue(text);
  assert.ok(precise !== undefined, `${what}: the quick path read a value where yaml finds none: ${JSON.stringify(quick)}`);
  assert.ok(isDeepStrictEqual(quick, precise.value), `${what}: quick ${JSON.stringify(quick)} but precise ${JSON.stringify(precise.value)}`);
  return true;
}

/** Every YAML file of the repository and every ```yaml block of its Markdown, by name. */
function repositoryYaml(): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of repositoryFiles(ROOT)) {
    const name = relative(ROOT, f);
    if (/\.ya?ml$/.test(f)) out.set(name, readFileSync(f, 'utf8'));
    else if (f.endsWith('.md')) {
      let i = 0;
      for (const m of readFileSync(f, 'utf8').matchAll(/```ya?ml\n([\s\S]*?)```/g)) out.set(`${name} (yaml block ${++i})`, m[1]!);
    }
  }
  return out;
}

test('quick yaml: every YAML file and README block of the repository reads as yaml reads it, or is left to yaml', () => {
  const all = repositoryYaml();
  assert.ok(all.size > 50, `found only ${all.size} YAML texts`);
  let taken = 0;
  for (const [name, text] of all) if (agrees(text, name)) taken++;
  // Multi-document files (manifests) are left to yaml; every single-document file is read quickly.
  const single = [...all.values()].filter((t) => preciseValue(t) !== undefined && preciseValue(t)!.value !== null && typeof preciseValue(t)!.value === 'object').length;
  assert.equal(taken, single);
});

test('quick yaml: policies and configs load to the same frozen value on both paths, and the examples take the quick one', () => {
  const schemas = [
    ['policy', DNSPolicySchema, (p: never) => checkPolicy(p)],
    ['config', SidecarConfigSchema, undefined],
  ] as const;
  const quickExamples = new Set<string>();
  for (const [name, text] of repositoryYaml()) {
    for (const [kind, schema, check] of schemas) {
      let precise: unknown;
      let failed = false;
      try {
        precise = parseYamlPrecise(text, name, schema, check as never);
      } catch {
        failed = true;
      }
      const quick = parseYamlQuick(text, schema, check as never);
      if (quick === undefined) continue;
      assert.ok(!failed, `${name} as ${kind}: the quick path accepted a file the precise path rejects`);
      assert.deepEqual(quick, precise, `${name} as ${kind}`);
      assert.ok(Object.isFrozen(quick));
      if (name.startsWith('examples/') && kind === 'policy') quickExamples.add(name);
    }
  }
  const policies = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`);
  const valid = policies.filter((f) => {
    try {
      parseYamlPrecise(readFileSync(join(ROOT, f), 'utf8'), f, DNSPolicySchema, (p) => checkPolicy(p));
      return true;
    } catch {
      return false;
    }
  });
  assert.ok(valid.length >= 5, `only ${valid.length} valid example policies`);
  assert.deepEqual([...quickExamples].sort(), valid.sort());
});

/** Scalars whose reading differs between YAML 1.1, YAML 1.2 and the libraries' own choices. */
const SCALARS = [
  '0b101', '0o17', '0x1F', '0X1F', '017', '0017', '-017', '+12', '00', '0', '-0', '+0', '-0.0', '0.', '1.0', '1e3', '1E3', '1.5e-3',
  '.5', '5.', '+.5', '-.inf', '.inf', '.Inf', '.INF', '.nan', '.NaN', '1_000', '1,000', '12:30', '2001-12-14', '9007199254740993',
  '123456789012345678901234567890', '0x', '0o', '0b', 'yes', 'no', 'on', 'off', 'y', 'n', 'Yes', 'True', 'TRUE', 'true', 'False',
  '~', 'null', 'Null', 'NULL', '', '"~"', "'x'", '"*.a.b"', '*.a.b', '"a\\tb"', '"\\u00e9"', "'it''s'", '"\\x41"', "'\\x41'",
  'a #c', '"a #c"', 'a\tb', '@x', '`x', '%x', '!x', '!!str 12', '!!int "12"', '&a x', '*a', '? x', '-', '-1', '.', '..', '...',
  '---x', '=', '<<', '[a, b]', '{a: 1}', '- a', 'a: b', '"multi\n  line"', 'plain\n  continued', 'ads-*.example.com', '10.0.0.1',
  'fd00::1', 'udp://192.0.2.1:53#tls-name=x', '|\n  line1\n  line2\n', '>\n  fold1\n  fold2\n\n  p2\n', '|-\n  x\n', '|+\n  x\n\n',
  '>2\n   indented\n', '"trailing\\\n  escape"',
];

test('quick yaml: tricky scalars as values, list items and keys read as yaml reads them, or are left to yaml', () => {
  let taken = 0;
  for (const s of SCALARS) {
    for (const text of [`k: ${s}\n`, `k:\n  - ${s}\n`, `${s}: v\n`, `{k: ${s}}\n`]) if (agrees(text, JSON.stringify(text))) taken++;
  }
  assert.ok(taken > SCALARS.length * 2, `the quick path took only ${taken} texts`);
});

test('quick yaml: what only yaml reads right is left to it', () => {
  const leftToYaml = {
    'an alias': 'a: &x 1\nb: *x\n',
    'an anchor': 'a: &x 1\n',
    'a merge key': 'base: &b {x: 1}\nk:\n  <<: *b\n  y: 2\n',
    'a tag': 'k: !!str 12\n',
    'a local tag': 'k: !thing 12\n',
    'a YAML 1.1 directive': '%YAML 1.1\n---\nk: yes\n',
    'a tag directive': '%TAG !e! tag:example.com,2000:\n---\nk: 1\n',
    'two documents': 'a: 1\n---\nb: 2\n',
    'a trailing ---': 'a: 1\n---\n',
    'an empty file': '',
    'a comment only': '# nothing\n',
    'a duplicate key': 'a: 1\na: 2\n',
    'a null key': '~: v\n',
    'a number key': '1: v\n',
    'a boolean key': 'true: v\n',
    'a __proto__ key': '__proto__: {polluted: 1}\n',
    'a quoted __proto__ key': '"__proto__": 1\n',
    'a list at the root': '- a\n- b\n',
    'a scalar at the root': 'just text\n',
    'a syntax error': 'a: [1, 2\n',
    'a tab indentation': 'a:\n\tb: 1\n',
    'an unquoted glob': 'names:\n  - *.example.com\n',
  };
  for (const [what, text] of Object.entries(leftToYaml)) assert.equal(quickYamlValue(text), undefined, what);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('quick yaml: a byte order mark, CRLF line ends, comments and flow style read as yaml reads them', () => {
  const texts = ['\ufeffa: 1\n', 'a: 1\r\nb:\r\n  - x\r\n', '# c\na: 1 # c\n\n# c\n', 'a: {b: [1, "2", c], d: {}}\n', 'a: "x"\n...\n', '---\na: 1\n', 'a:\n  -\n    b: 1\n  - c\n'];
  for (const text of texts) assert.ok(agrees(text, JSON.stringify(text)), JSON.stringify(text));
});

test('quick yaml: a file either path rejects gets the precise path and its message', () => {
  const head = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\n';
  const invalid = [
    head + 'spec:\n  rules:\n    - name: r\n      action: block\n      names: [a.test]\n',
    head + 'spec:\n  rules:\n    - {name: r, action: deny, names: [a.test]}\n    - {name: r, action: deny, names: [b.test]}\n',
    head + 'spec:\n  defaultAction: deny\n  defaultAction: allow\n',
  ];
  for (const text of invalid) {
    assert.equal(parseYamlQuick(text, DNSPolicySchema, (p) => checkPolicy(p)), undefined);
    let precise = '';
    assert.throws(() => parseYamlPrecise(text, 'p.yaml', DNSPolicySchema, (p) => checkPolicy(p)), (err: Error) => ((precise = err.message), true));
    assert.throws(() => parseYaml(text, 'p.yaml', DNSPolicySchema, (p) => checkPolicy(p)), (err: Error) => err.message === precise);
  }
  // A checker that throws on the quick path's value leaves it to the precise path too.
  assert.equal(parseYamlQuick(head, DNSPolicySchema, () => { throw new Error('boom'); }), undefined);
});

test('quick yaml: loading a valid policy does not load the yaml library', () => {
  const script = [
    "import { createRequire } from 'node:module';",
    "import { loadYamlFile } from './sidecar/config/load.ts';",
    "import { DNSPolicySchema } from './sidecar/config/policy-schema.ts';",
    "loadYamlFile('examples/frontend-deny-com.yaml', DNSPolicySchema);",
    "const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/yaml/'));",
    'const before = loaded();',
    "try { loadYamlFile('README.md', DNSPolicySchema); } catch {}",
    'console.log(JSON.stringify([before, loaded()]));',
  ].join('\n');
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.deepEqual(JSON.parse(out), [false, true]);
});

test('block yaml: every YAML file and README block of the repository reads as yaml reads it, or is left to the next path', () => {
  let taken = 0;
  for (const [name, text] of repositoryYaml()) if (agrees(text, `${name} (block)`, blockYamlValue)) taken++;
  assert.ok(taken >= 30, `the block reader took only ${taken} texts`);
});

test("block yaml: the bench's policy, the example policies and the policies as the controller writes them are read line by line", () => {
  const texts = new Map<string, string>([['bench policy', readFileSync(benchPolicy(), 'utf8')]]);
  for (const f of readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'))) {
    const text = readFileSync(join(ROOT, 'examples', f), 'utf8');
    const value = preciseValue(text)?.value;
    if (value === null || typeof value !== 'object') continue;
    // What the controller writes into a ConfigMap (injector/render.ts): yaml's stringify after a comment line.
    texts.set(`examples/${f} as rendered`, `# rendered by tenant-dns-controller\n${stringify(value, { lineWidth: 0 })}`);
  }
  assert.ok(texts.size >= 6, `only ${texts.size} policies`);
  for (const [what, text] of texts) assert.ok(agrees(text, what, blockYamlValue), `${what}: left to the next path`);
});

test('block yaml: tricky scalars as values, list items and keys read as yaml reads them, or are left to the next path', () => {
  let taken = 0;
  for (const s of SCALARS) {
    for (const text of [`k: ${s}\n`, `k:\n  - ${s}\n`, `${s}: v\n`, `k:\n- ${s}\n`, `- k: ${s}\n`, `k: ${s} # c\n`]) if (agrees(text, JSON.stringify(text), blockYamlValue)) taken++;
  }
  assert.ok(taken > SCALARS.length, `the block reader took only ${taken} texts`);
});

test('block yaml: random edits of policies read as yaml reads them, or are left to the next path', () => {
  const bases = [readFileSync(benchPolicy(), 'utf8'), ...readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => stringify(parseYamlText(readFileSync(join(ROOT, 'examples', f), 'utf8')), { lineWidth: 0 }))];
  const pieces = [' ', '  ', '-', '- ', ':', ': ', '#', ' #', '"', "'", '\n', '\n  ', '\n- ', '*', '&', '!', '|', '>', '[', '{', '0', '1.5', '~', 'null', 'x: y', '\\'];
  const rnd = prng(fuzzSeed(7));
  const rand = (n: number) => pick(rnd, n);
  let taken = 0;
  for (let i = 0; i < 3000; i++) {
    let text = bases[rand(bases.length)]!;
    for (let k = 1 + rand(3); k > 0; k--) {
      const at = rand(text.length + 1);
      const op = rand(4);
      if (op === 0) text = text.slice(0, at) + text.slice(at + 1 + rand(3));
      else if (op === 1) text = text.slice(0, at) + pieces[rand(pieces.length)]! + text.slice(at);
      else if (op === 2) {
        const lines = text.split('\n');
        const j = rand(lines.length);
        lines.splice(j, 0, lines[rand(lines.length)]!);
        text = lines.join('\n');
      } else {
        const lines = text.split('\n');
        const j = rand(lines.length);
        lines[j] = rand(2) === 0 ? ` ${lines[j]}` : lines[j]!.replace(/^ /, '');
        text = lines.join('\n');
      }
    }
    if (agrees(text, `edit ${i}: ${JSON.stringify(text)}`, blockYamlValue)) taken++;
  }
  assert.ok(taken > 300, `the block reader took only ${taken} of 3000 edited texts`);
});

test('block yaml: what it does not read is left to the next path', () => {
  const left = [
    'a: &x 1\nb: *x\n', 'k: !!str 12\n', '%YAML 1.1\n---\nk: yes\n', 'a: 1\n---\nb: 2\n', '---\na: 1\n', '', '# nothing\n', 'a: 1\na: 2\n',
    '~: v\n', '1: v\n', 'true: v\n', '__proto__:\n  polluted: 1\n', '"k": v\n', '- a\n- b\n', 'just text\n', 'a: [1, 2]\n', 'a: {b: 1}\n',
    'a:\n\tb: 1\n', 'a: 1\r\nb: 2\r\n', '\ufeffa: 1\n', 'a: |\n  x\n', 'a: >\n  x\n', 'a: "x\\ty"\n', 'a: plain\n  continued\n',
    'a:\n  - x\n   - y\n', 'a: 0o17\n', 'a: 1.5\n', 'a: .inf\n', 'a: -1\n', 'a: b: c\n', 'a:\n  - - x\n', '? a\n: b\n', 'a: "open\n',
  ];
  for (const text of left) assert.equal(blockYamlValue(text), undefined, JSON.stringify(text));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
