/**
 * Turns command-line flags (and an optional `--config FILE` of the same
 * shape) into the validated, frozen {@link SidecarConfig}.
 */
import { Value } from './typebox.ts';
import { deepFreeze } from './load.ts';
import { applyDefaults } from './defaults.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { SIDECAR_FLAGS, SidecarConfigSchema, type SidecarConfig } from './schema.ts';

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof cur[key] !== 'object' || cur[key] === null) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]!] = value;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Commander's option key for a flag (`--cache-max-entries` → `cacheMaxEntries`). */
export function optionKey(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Builds the sidecar configuration: defaults, then `file` (the parsed
 * `--config` document, already validated for shape by its loader), then the
 * flags the user gave (`flags` is commander's opts object). Throws
 * CONFIG_INVALID naming each bad flag or field.
 */
export function buildConfig(flags: Record<string, unknown>, file: Record<string, unknown> = {}): SidecarConfig {
  const fromFlags: Record<string, unknown> = {};
  const flagOf = new Map<string, string>();
  for (const spec of SIDECAR_FLAGS) {
    flagOf.set('/' + spec.field.replace(/\./g, '/'), spec.flag);
    const v = flags[optionKey(spec.flag)];
    if (v !== undefined) setPath(fromFlags, spec.field, v);
  }
  const merged = merge(file, fromFlags);
  const withDefaults = applyDefaults(SidecarConfigSchema, Value.Clone(merged));
  // Check first: Errors walks the schema in generator functions, whose code V8 keeps for good (it never flushes
  // a generator's bytecode), and a valid configuration needs none of it (test/bench/README.md, "Marginal memory").
  const errors = Value.Check(SidecarConfigSchema, withDefaults) ? [] : [...Value.Errors(SidecarConfigSchema, withDefaults)];
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const base = e.path.replace(/\/\d+$/, '');
      const name = flagOf.get(e.path) ?? flagOf.get(base) ?? (e.path || '(config)');
      const value = e.value === undefined ? '' : ` (got ${JSON.stringify(e.value)})`;
      return `${name}: ${e.message}${value}`;
    });
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, `invalid sidecar configuration:\n  ${[...new Set(lines)].join('\n  ')}`);
  }
  return deepFreeze(withDefaults as SidecarConfig);
}
