/**
 * What the bench's scripts share: the variants of its comparison scripts (quiet-burst.ts, starts.ts,
 * warmup.ts), `label` alone (this tree's bundle) or `label|app=DIR|node=--flag --flag|env=K=V,K=V` (any of the
 * parts: a bundle of deploy/scripts/bundle.sh, extra node flags, extra environment); the rotation of systems
 * from round to round (those and run.ts); and the median of a sample.
 */
import { startTenantDns, type BenchServer, type StartOptions, type Transport, type UpstreamInfo } from './peers.ts';

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

/** A system of a comparison script: its label, and how to start a fresh one. */
export type Starter = [label: string, start: () => Promise<BenchServer>];

/**
 * The tenant-dns variants named by `texts` (this tree's bundle, labelled `tenant-dns`, when there are none), each
 * started towards `up` with `opts` and the bench's policy file `policy`.
 */
export function tenantDnsStarters(texts: readonly string[], up: UpstreamInfo, opts: StartOptions & { transport?: Transport }, policy: string): Starter[] {
  return (texts.length > 0 ? texts : ['tenant-dns']).map(parseVariant).map((v): Starter => [
    v.label,
    () => startTenantDns(up, { ...opts, app: v.app, nodeArgs: v.nodeArgs, env: v.env, extraArgs: ['--policy', policy] }),
  ]);
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** `list` rotated left by `by` (modulo its length): each round starts with another system. */
export function rotate<T>(list: readonly T[], by: number): T[] {
  const k = by % Math.max(1, list.length);
  return [...list.slice(k), ...list.slice(0, k)];
}
