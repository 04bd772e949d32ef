/**
 * The quick path of configuration loading: a valid file of plain YAML read
 * with js-yaml, which starts in a third of the time the `yaml` library takes
 * (test/bench/README.md, "Start-up and idle memory"). It only ever accepts:
 * whatever it cannot vouch for (a second document, a directive, a tag, an
 * anchor or alias, a key that is not a string, `__proto__`, a syntax error,
 * a schema or semantic problem) makes it return undefined, and load.ts then
 * runs the precise path with `yaml`, which stays the authority for values and
 * for every error message. test/sidecar/config/quick-yaml.test.ts checks
 * that the two paths agree on every YAML file of the repository and on a set
 * of tricky scalars, and that the quick path stepped aside wherever they
 * would not.
 */
import { createRequire } from 'node:module';
import type { Event, Schema } from 'js-yaml';

let library: typeof import('js-yaml') | undefined;

/**
 * js-yaml, loaded on the first call: a file the line-by-line reader takes (block-yaml.ts) never needs it. From
 * source through a require of the package; the image's sidecar bundle keeps it out of its file
 * (dist/vendor/js-yaml.cjs, deploy/scripts/bundle.sh), so its code is not read, compiled or run at a pod's
 * start; in the CLI's bundle the free `require` call is bundled.
 */
function jsYaml(): typeof import('js-yaml') {
  return (library ??= typeof require === 'function' ? (require('js-yaml') as typeof import('js-yaml')) : (createRequire(import.meta.url)('js-yaml') as typeof import('js-yaml')));
}

let schema: Schema | undefined;

/** YAML 1.2's core schema, as `yaml` reads it by default, with a `!!map` of plain objects, string keys only, `__proto__` refused. */
function quickSchema(): Schema {
  if (schema) return schema;
  const { CORE_SCHEMA, defineMappingTag, Schema } = jsYaml();
  const stringKeyedMap = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
    create: () => ({}),
    addPair: (map, key, value) => {
      // `yaml` turns a null key into "" and js-yaml into "null": refuse every key that is not a string.
      if (typeof key !== 'string' || key === '__proto__') return 'not a plain string key';
      map[key] = value;
      return '';
    },
    has: (map, key) => typeof key === 'string' && Object.hasOwn(map, key),
    keys: (map) => Object.keys(map),
    get: (map, key) => map[key as string],
    identify: () => false,
  });
  schema = new Schema([...CORE_SCHEMA.tags.filter((t) => !(t.nodeKind === 'mapping' && t.tagName === stringKeyedMap.tagName)), stringKeyedMap]);
  return schema;
}

/** Whether every event is of one document without directives, tags, anchors or aliases. */
function plain(events: readonly Event[]): boolean {
  const { EVENT_ID } = jsYaml();
  let documents = 0;
  for (const e of events) {
    switch (e.type) {
      case EVENT_ID.DOCUMENT:
        if (++documents > 1 || e.directives.length > 0) return false;
        break;
      case EVENT_ID.ALIAS:
        return false;
      case EVENT_ID.POP:
        break;
      default:
        if (e.tagStart !== -1 || e.anchorStart !== -1) return false;
    }
  }
  return documents === 1;
}

/**
 * The value of `text` when it is one plain YAML document (see the module
 * comment) whose root is a mapping; undefined otherwise, and whenever
 * js-yaml throws. The value is fresh: the caller may change it.
 */
export function quickYamlValue(text: string): Record<string, unknown> | undefined {
  try {
    const { constructFromEvents, parseEvents } = jsYaml();
    const events = parseEvents(text, {});
    if (!plain(events)) return undefined;
    const [value] = constructFromEvents(events, { source: text, schema: quickSchema(), json: false, maxAliases: 0 });
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
