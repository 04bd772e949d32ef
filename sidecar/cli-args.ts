/**
 * The `sidecar` command's flags as commander takes them (sidecar/cli.ts builds its options from
 * {@link sidecarOptionForms}), and a quick reading of a command line that needs none of commander's
 * work: {@link quickSidecarOptions}. The image's sidecar program (bin/sidecar-program.ts) starts with the
 * quick reading and loads commander only when it steps aside (help, a bad or unknown flag, anything
 * unusual), so a pod's start does not build the 50 options of the help text, and commander's code is
 * neither run nor in the code cache V8 reads at start (test/bench/README.md, "Start: what the first
 * answer waits for"). No commander import here: it would load commander as this module loads.
 */
import { fieldSchema, SIDECAR_FLAGS } from './config/schema.ts';
import { optionKey } from './config/flags.ts';

/** Commander's argParser for a repeatable flag: each value appended. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The argParser of an integer flag: a whole number, or an Error naming the flag. */
export function integer(flag: string): (value: string) => number {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new Error(`${flag} takes a whole number, got "${value}"`);
    return Number(value);
  };
}

/** The argParser of a switch that is on by default: true or false, or an Error naming the flag. */
export function boolean(flag: string): (value: string) => boolean {
  return (value: string): boolean => {
    if (value !== 'true' && value !== 'false') throw new Error(`${flag} takes true or false, got "${value}"`);
    return value === 'true';
  };
}

/**
 * How commander takes one flag of the sidecar's: a `switch` (`--flag`, true when given), an `optional` value
 * (`--flag [bool]`: a switch on by default, which `--flag=false` turns off) or a `required` one
 * (`--flag <value>`); `parse` is its argParser, `field` its config field (undefined for `--config`).
 */
export interface OptionForm {
  readonly flag: string;
  /** Commander's attribute name, the key of the flag's value in the options object. */
  readonly key: string;
  readonly form: 'switch' | 'optional' | 'required';
  readonly field?: string;
  readonly integer?: boolean;
  readonly repeatable?: boolean;
  readonly parse?: (value: string, previous: unknown) => unknown;
}

let forms: readonly OptionForm[] | undefined;

/** Every flag of `tenant-dns sidecar`: `--config`, then one per config field ({@link SIDECAR_FLAGS}). */
export function sidecarOptionForms(): readonly OptionForm[] {
  if (forms) return forms;
  const out: OptionForm[] = [{ flag: '--config', key: 'config', form: 'required' }];
  for (const spec of SIDECAR_FLAGS) {
    const key = optionKey(spec.flag);
    if (spec.boolean) {
      // A switch that is on by default takes a value, so it can be switched off: `--autopath=false`.
      const onByDefault = (fieldSchema(spec.field) as { default?: unknown } | undefined)?.default === true;
      out.push(onByDefault ? { flag: spec.flag, key, form: 'optional', field: spec.field, parse: boolean(spec.flag) } : { flag: spec.flag, key, form: 'switch', field: spec.field });
      continue;
    }
    const parse = spec.repeatable ? (collect as OptionForm['parse']) : spec.integer ? integer(spec.flag) : undefined;
    out.push({ flag: spec.flag, key, form: 'required', field: spec.field, integer: spec.integer, repeatable: spec.repeatable, ...(parse ? { parse } : {}) });
  }
  forms = Object.freeze(out);
  return forms;
}

let byFlag: Map<string, OptionForm> | undefined;

/**
 * The options object commander's `sidecar` action would receive for `args` (the arguments after
 * `sidecar`), or undefined when reading them needs commander: an argument that is not one of the
 * sidecar's long flags (`--help`, `--version`, a short or unknown flag, an operand, `--`), a value that
 * starts with `-` or is missing, a switch given a value, or a value the flag's parser refuses. So whatever it returns is what commander gives, and everything
 * else (help, errors and their messages) is commander's (test/sidecar/cli-args.test.ts compares the two).
 */
export function quickSidecarOptions(args: readonly string[]): Record<string, unknown> | undefined {
  byFlag ??= new Map(sidecarOptionForms().map((f) => [f.flag, f]));
  const opts: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) return undefined;
    const eq = arg.indexOf('=');
    const form = byFlag.get(eq === -1 ? arg : arg.slice(0, eq));
    if (form === undefined) return undefined;
    let value: string | undefined;
    if (eq !== -1) {
      if (form.form === 'switch') return undefined;
      value = arg.slice(eq + 1);
    } else if (form.form === 'required') {
      value = args[++i];
      if (value === undefined || value.startsWith('-')) return undefined;
    } else if (form.form === 'optional' && i + 1 < args.length && !args[i + 1]!.startsWith('--')) {
      // Commander takes the next argument as the value unless it looks like an option; a negative number would be one.
      if (args[i + 1]!.length > 1 && args[i + 1]!.startsWith('-')) return undefined;
      value = args[++i];
    }
    if (value === undefined) {
      opts[form.key] = true;
      continue;
    }
    try {
      opts[form.key] = form.parse ? form.parse(value, opts[form.key]) : value;
    } catch {
      return undefined;
    }
  }
  return opts;
}
