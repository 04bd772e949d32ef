/**
 * The quickest path of configuration loading: a file in the plain block style that people and
 * `yaml.stringify` write (block mappings and sequences, `- key: value` entries, plain and one-line
 * quoted scalars, comments) read line by line. js-yaml's reader, the next path (quick-yaml.ts), runs
 * character by character through many small functions, and at a pod's start every one of them runs in
 * V8's interpreter for the first time: it took 4.7 ms of the sidecar's start on the bench's policy, this
 * reader a fraction of it (test/bench/README.md, "Start: what the first answer waits for").
 *
 * Like the quick path it only ever accepts. Anything outside that subset returns undefined and load.ts
 * tries the next path: tabs, carriage returns, document markers and directives, flow collections, block
 * scalars, anchors, aliases and tags, quoted keys, escapes, multi-line scalars, a duplicate key or
 * `__proto__`, a plain scalar that could be a number other than a plain decimal integer, or one that starts
 * with an indicator. test/sidecar/config/quick-yaml.test.ts checks that whatever it returns is the value
 * the `yaml` library gives, on every YAML file and README block of the repository, on tricky scalars and on
 * random edits of policies.
 */

interface Line {
  readonly indent: number;
  /** The line after its indentation; never empty, never a comment line. */
  readonly text: string;
}

/** Thrown inside the reader when the text leaves the subset; never escapes {@link blockYamlValue}. */
class Outside extends Error {}

const outside = (): never => {
  throw new Outside();
};

/** The value of `text` when it is one block-style YAML document of the subset whose root is a mapping; else undefined. */
export function blockYamlValue(text: string): Record<string, unknown> | undefined {
  if (text.includes('\t') || text.includes('\r') || text.charCodeAt(0) === 0xfeff) return undefined;
  const lines: Line[] = [];
  for (const raw of text.split('\n')) {
    let indent = 0;
    while (raw.charCodeAt(indent) === 32) indent++;
    if (indent === raw.length || raw[indent] === '#') continue;
    const body = raw.slice(indent);
    if (indent === 0 && (body.startsWith('---') || body.startsWith('...') || body[0] === '%')) return undefined;
    lines.push({ indent, text: body });
  }
  if (lines.length === 0) return undefined;
  try {
    const reader = new Reader(lines);
    const root = reader.node(lines[0]!.indent);
    if (reader.pos !== lines.length || root === null || typeof root !== 'object' || Array.isArray(root)) return undefined;
    return root as Record<string, unknown>;
  } catch (err) {
    if (err instanceof Outside) return undefined;
    throw err;
  }
}

/** Whether a line (after its indentation) is a sequence entry. */
function isEntry(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

/** A mapping entry's key and the rest after `: ` (without a trailing comment); undefined when the line is no `key:` of the subset. */
function mappingEntry(text: string): { key: string; rest: string } | undefined {
  const m = /^([A-Za-z_][A-Za-z0-9_./-]*):(?: +(.*))?$/.exec(text);
  if (!m) return undefined;
  const key = m[1]!;
  if (key === '__proto__' || typeof plainValue(key) !== 'string') return outside();
  const rest = m[2] ?? '';
  return { key, rest: rest.startsWith('#') ? '' : rest };
}

class Reader {
  pos = 0;
  private readonly lines: Line[];

  constructor(lines: Line[]) {
    this.lines = lines;
  }

  /** The block node starting at the current line, which must be indented at least `min`. */
  node(min: number): unknown {
    const line = this.lines[this.pos]!;
    if (line.indent < min) return outside();
    return isEntry(line.text) ? this.sequence(line.indent) : this.mapping(line.indent);
  }

  private sequence(indent: number): unknown[] {
    const out: unknown[] = [];
    while (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      if (line.indent !== indent || !isEntry(line.text)) break;
      if (line.text === '-') {
        this.pos++;
        out.push(this.blockOrNull(indent, true));
        continue;
      }
      let k = 1;
      while (line.text.charCodeAt(k) === 32) k++;
      const content = line.text.slice(k);
      if (isEntry(content)) return outside();
      if (mappingEntry(content)) {
        // `- key: value`: a mapping whose keys line up with this first key.
        this.lines[this.pos] = { indent: indent + k, text: content };
        out.push(this.mapping(indent + k));
        continue;
      }
      this.pos++;
      out.push(scalar(content));
      this.nothingDeeper(indent);
    }
    this.nothingDeeper(indent);
    return out;
  }

  private mapping(indent: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    while (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      if (line.indent !== indent) break;
      if (isEntry(line.text)) return outside();
      const entry = mappingEntry(line.text) ?? outside();
      if (Object.hasOwn(out, entry.key)) return outside();
      this.pos++;
      if (entry.rest === '') {
        out[entry.key] = this.blockOrNull(indent, false);
        continue;
      }
      out[entry.key] = scalar(entry.rest);
      this.nothingDeeper(indent);
    }
    this.nothingDeeper(indent);
    return out;
  }

  /** The value of an entry with nothing after its indicator: the block below it, or null. */
  private blockOrNull(indent: number, inSequence: boolean): unknown {
    const next = this.lines[this.pos];
    if (next === undefined || next.indent < indent) return null;
    if (next.indent > indent) return this.node(indent + 1);
    // A mapping's value may be a sequence at the mapping's own indentation (`key:` then `- a`).
    return !inSequence && isEntry(next.text) ? this.sequence(indent) : null;
  }

  /**
   * After a scalar value or a whole block at `indent`: a deeper line next would continue the scalar (a
   * multi-line scalar) or lie inside no entry of the block (an error); either is outside the subset.
   */
  private nothingDeeper(indent: number): void {
    const next = this.lines[this.pos];
    if (next !== undefined && next.indent > indent) outside();
  }
}

/** A scalar written on one line after an indicator: quoted, or plain with an optional trailing comment. */
function scalar(text: string): unknown {
  const q = text[0];
  if (q === '"' || q === "'") {
    let value = '';
    let i = 1;
    for (;;) {
      const end = text.indexOf(q, i);
      if (end === -1) return outside();
      value += text.slice(i, end);
      if (q === "'" && text[end + 1] === "'") {
        value += "'";
        i = end + 2;
        continue;
      }
      i = end + 1;
      break;
    }
    if (q === '"' && value.includes('\\')) return outside();
    const rest = text.slice(i);
    if (rest !== '' && !/^ +(#.*)?$/.test(rest)) return outside();
    return value;
  }
  const hash = text.indexOf(' #');
  const plain = (hash === -1 ? text : text.slice(0, hash)).trimEnd();
  return plainValue(plain);
}

/**
 * A plain scalar as YAML 1.2's core schema resolves it: null, a boolean, a plain decimal integer, or a
 * string; anything else that could be a number, and anything that starts with an indicator or holds `: `,
 * is outside the subset.
 */
function plainValue(s: string): unknown {
  if (s === '' || '-?:,[]{}#&*!|>\'"%@`'.includes(s[0]!) || s.includes(': ') || s.endsWith(':')) return outside();
  if (s === '~' || s === 'null' || s === 'Null' || s === 'NULL') return null;
  if (s === 'true' || s === 'True' || s === 'TRUE') return true;
  if (s === 'false' || s === 'False' || s === 'FALSE') return false;
  if (/^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$/.test(s)) return outside();
  const c = s.charCodeAt(0);
  if ((c >= 48 && c <= 57) || s[0] === '+' || s[0] === '.') {
    if (/^(0|[1-9][0-9]{0,14})$/.test(s)) return Number(s);
    // No core-schema number has a letter beyond these, two dots, or a colon (`10.in-addr.arpa`, an address).
    if (/[^0-9a-fA-F.xXoOeE+_-]/.test(s) || /^[0-9]+(\.[0-9]+){2,}$/.test(s) || /^[0-9a-fA-F]*:[0-9a-fA-F:.]*$/.test(s)) return s;
    return outside();
  }
  return s;
}
