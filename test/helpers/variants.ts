/**
 * The variants of the bench's comparison scripts (quiet-burst.ts, starts.ts): `label` alone (this tree's
 * bundle), or `label|app=DIR|node=--flag --flag|env=K=V,K=V` (any of the parts: a bundle of
 * deploy/scripts/bundle.sh, extra node flags, extra environment).
 */

/** One sidecar variant to compare. */
export interface Variant {
  readonly label: string;
  readonly app?: string;
  readonly nodeArgs: string[];
  readonly env: Record<string, string>;
}

/** Reads a variant from its text (see the module comment); throws on an unknown part. */
export function parseVariant(text: string): Variant {
  const [label, ...parts] = text.split('|');
  let app: string | undefined;
  let nodeArgs: string[] = [];
  let env: Record<string, string> = {};
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === 'app') app = value;
    else if (key === 'node') nodeArgs = value.split(/\s+/).filter(Boolean);
    else if (key === 'env') env = Object.fromEntries(value.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    else throw new Error(`variant ${text}: unknown part ${part} (app=, node= or env=)`);
  }
  return { label: label!, app, nodeArgs, env };
}

