/**
 * Loading the injector's configuration (schema in config-schema.ts): from
 * YAML, validated with the failing field's path and line, defaulted, checked
 * against the flags of this sidecar version, and frozen.
 */
import { readFileSync } from 'node:fs';
import { Value } from '../sidecar/config/typebox.ts';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { deepFreeze } from '../sidecar/config/load.ts';
import { InjectorConfigSchema, type InjectorConfig } from './config-schema.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { obj } from './json.ts';
import { sidecarArgs } from './sidecar-spec.ts';

/**
 * Validates a plain object as injector configuration, applies defaults and
 * freezes it. `lineOf` maps a field path (`/resources/limits`) to a line for
 * the message.
 */
export function parseInjectorConfig(input: unknown, source = 'injector config', lineOf?: (path: string) => number | undefined): InjectorConfig {
  const raw = input ?? {};
  if (!obj(raw)) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading ${source}: expected a mapping at the top`);
  }
  const value = Value.Default(InjectorConfigSchema, structuredClone(raw));
  const first = Value.Errors(InjectorConfigSchema, value).First();
  if (first) {
    const line = lineOf?.(first.path);
    const where = first.path || '/';
    throw new InjectorError(
      InjectorErrorCodes.CONFIG_INVALID,
      `reading ${source}: ${where}${line ? ` (line ${line})` : ''}: ${first.message}`,
    );
  }
  const config = value as InjectorConfig;
  // Every setting must be expressible as a flag of this sidecar version: fail at load, not per pod.
  try {
    sidecarArgs(config);
  } catch (err) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading ${source}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return deepFreeze(config);
}

/** Parses injector configuration from YAML text. */
export function parseInjectorConfigYaml(text: string, source = 'injector config'): InjectorConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `parsing ${source}: ${doc.errors[0].message}`, { cause: doc.errors[0] });
  }
  const lineOf = (path: string): number | undefined => {
    const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    for (let n = keys.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return parseInjectorConfig(doc.toJS(), source, lineOf);
}

/** Reads and parses the injector configuration file; no file means all defaults. */
export function loadInjectorConfig(file?: string): InjectorConfig {
  if (!file) return parseInjectorConfig({});
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading injector config ${file}`, { cause: err });
  }
  return parseInjectorConfigYaml(text, file);
}
