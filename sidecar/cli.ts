/**
 * The `tenant-dns sidecar` and `tenant-dns policy` commands.
 */
import type { Command } from 'commander';
import { commander } from './commander.ts';
import { describe, fieldSchema } from './config/schema.ts';
import { optionKey } from './config/flags.ts';
import { sidecarOptionForms } from './cli-args.ts';

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
  const { Option } = commander();
  const cmd = program
    .command('sidecar')
    .description("Serve DNS for one pod: apply the tenant's policy and split zones, cache, and forward (cluster zone to kube-dns, the rest upstream).");
  for (const f of sidecarOptionForms()) {
    if (f.field === undefined) {
      cmd.option(`${f.flag} <file>`, 'YAML file with the platform configuration (same fields as the flags, camelCase); flags override it');
      continue;
    }
    if (f.form === 'switch') {
      cmd.addOption(new Option(f.flag, helpFor(f.field)));
      continue;
    }
    if (f.form === 'optional') {
      cmd.addOption(new Option(`${f.flag} [bool]`, helpFor(f.field)).argParser(f.parse!));
      continue;
    }
    const placeholder = f.flag.replace(/^--/, '').toUpperCase().replace(/-/g, '_');
    const opt = new Option(`${f.flag} <${f.integer ? 'n' : placeholder.toLowerCase()}>`, helpFor(f.field) + (f.repeatable ? ' Repeatable.' : ''));
    if (f.parse) opt.argParser(f.parse);
    cmd.addOption(opt);
  }
  cmd.action(async (opts: Record<string, unknown>) => run(opts));
}

export { optionKey };
