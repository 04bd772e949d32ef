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
import { constructFromEvents, CORE_SCHEMA, defineMappingTag, EVENT_ID, parseEvents, Schema, type Event } from 'js-yaml';

/** The `!!map` tag of the quick path: plain objects, string keys only, `__proto__` refused. */
const STRING_KEYED_MAP = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
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

/** YAML 1.2's core schema, as `yaml` reads it by default, with {@link STRING_KEYED_MAP}. */
const SCHEMA = new Schema([...CORE_SCHEMA.tags.filter((t) => !(t.nodeKind === 'mapping' && t.tagName === STRING_KEYED_MAP.tagName)), STRING_KEYED_MAP]);

/** Whether every event is of one document without directives, tags, anchors or aliases. */
function plain(events: readonly Event[]): boolean {
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
    const events = parseEvents(text, {});
    if (!plain(events)) return undefined;
    const [value] = constructFromEvents(events, { source: text, schema: SCHEMA, json: false, maxAliases: 0 });
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
