/**
 * commander, loaded on the first call: the image's sidecar program reads a plain command line without it
 * (sidecar/cli-args.ts), and a module that imported it would run commander's module code at every start.
 * From source through a require of the package; in the esbuild bundles the free `require` call is bundled
 * and runs commander's module code only now (esbuild's lazy `__commonJS`), as config/load.ts does for yaml.
 */
import { createRequire } from 'node:module';
import type { CommanderError } from 'commander';

let library: typeof import('commander') | undefined;

/** The commander package. */
export function commander(): typeof import('commander') {
  return (library ??= typeof require === 'function' ? (require('commander') as typeof import('commander')) : (createRequire(import.meta.url)('commander') as typeof import('commander')));
}

/** Whether `err` is commander's (an exit it asked for, help or a usage error); false while commander is not loaded. */
export function isCommanderError(err: unknown): err is CommanderError {
  return library !== undefined && err instanceof library.CommanderError;
}
