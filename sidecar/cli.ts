/**
 * The `tenant-dns sidecar` and `tenant-dns policy` commands.
 */
import { Command, Option } from 'commander';
import { describe, fieldSchema, SIDECAR_FLAGS } from './config/schema.ts';
import { optionKey } from './config/flags.ts';

/** Commander's argParser for a repeatable flag: each value appended. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function integer(flag: string) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new Error(`${flag} takes a whole number, got "${value}"`);
    return Number(value);
  };
}

function boolean(flag: string) {
  return (value: string): boolean => {
    if (value !== 'true' && value !== 'false') throw new Error(`${flag} takes true or false, got "${value}"`);
    return value === 'true';
  };
}

/** Help text for a flag: its schema description and default. */
function helpFor(field: string): string {
  const schema = fieldSchema(field);
  if (!schema) return '';
  const def = (schema as { default?: unknown }).default;
  const shown = def === undefined || (Array.isArray(def) && def.length === 0) ? '' : ` (default: ${Array.isArray(def) ? def.join(', ') : String(def)})`;
  return describe(schema) + shown;
}

/** Adds `sidecar` to `program`; `run` receives commander's options. */
export function registerSidecarCommand(program: Command, run: (opts: Record<string, unknown>) => Promise<void>): void {
  const cmd = program
    .command('sidecar')
    .description("Serve DNS for one pod: apply the tenant's policy and split zones, cache, and forward (cluster zone to kube-dns, the rest upstream).")
    .option('--config <file>', 'YAML file with the platform configuration (same fields as the flags, camelCase); flags override it');
  for (const spec of SIDECAR_FLAGS) {
    if (spec.boolean) {
      // A switch that is on by default takes a value, so it can be switched off: `--autopath=false`.
      const onByDefault = (fieldSchema(spec.field) as { default?: unknown } | undefined)?.default === true;
      cmd.addOption(onByDefault ? new Option(`${spec.flag} [bool]`, helpFor(spec.field)).argParser(boolean(spec.flag)) : new Option(spec.flag, helpFor(spec.field)));
      continue;
    }
    const placeholder = spec.flag.replace(/^--/, '').toUpperCase().replace(/-/g, '_');
    const opt = new Option(`${spec.flag} <${spec.integer ? 'n' : placeholder.toLowerCase()}>`, helpFor(spec.field) + (spec.repeatable ? ' Repeatable.' : ''));
    if (spec.repeatable) opt.argParser(collect);
    else if (spec.integer) opt.argParser(integer(spec.flag));
    cmd.addOption(opt);
  }
  cmd.action(async (opts: Record<string, unknown>) => run(opts));
}

export { optionKey };
