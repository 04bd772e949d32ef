/**
 * Label and field selectors of list and watch requests, parsed from their
 * query-string form (`app=x,tier notin (a,b),!legacy`; `metadata.name=x`)
 * the way k8s.io/apimachinery/pkg/labels and pkg/fields read them.
 */
import { obj, type JsonObject } from '../../../injector/json.ts';
import { badRequest } from './status.ts';

/** A compiled selector: true when an object (its labels or fields) matches. */
export type ObjectMatcher = (o: JsonObject) => boolean;

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function labelsOf(o: JsonObject): Record<string, string> {
  return (obj(obj(o.metadata)?.labels) ?? {}) as Record<string, string>;
}

/** Parses a label selector; an empty string matches everything. Throws a 400 ApiError on bad syntax. */
export function parseLabelSelector(s: string | null): ObjectMatcher {
  if (!s) return () => true;
  const tests: ((l: Record<string, string>) => boolean)[] = [];
  for (const req of splitTopLevel(s)) {
    let m: RegExpMatchArray | null;
    if ((m = req.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const key = m[1];
      const values = new Set(m[3].split(',').map((v) => v.trim()));
      if (m[2] === 'in') tests.push((l) => Object.hasOwn(l, key) && values.has(l[key]));
      else tests.push((l) => !Object.hasOwn(l, key) || !values.has(l[key]));
    } else if ((m = req.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) {
      const [, key, op, value] = m;
      if (op === '!=') tests.push((l) => l[key] !== value);
      else tests.push((l) => Object.hasOwn(l, key) && l[key] === value);
    } else if ((m = req.match(/^!([\w./-]+)$/))) {
      const key = m[1];
      tests.push((l) => !Object.hasOwn(l, key));
    } else if ((m = req.match(/^([\w./-]+)$/))) {
      const key = m[1];
      tests.push((l) => Object.hasOwn(l, key));
    } else {
      throw badRequest(`unable to parse requirement: found '${req}', expected: valid label selector`);
    }
  }
  return (o) => {
    const l = labelsOf(o);
    return tests.every((t) => t(l));
  };
}

function fieldValue(o: JsonObject, path: string): string {
  let cur: unknown = o;
  for (const part of path.split('.')) cur = obj(cur)?.[part];
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

/**
 * Parses a field selector. `metadata.name` and `metadata.namespace` work for
 * every resource; `extraFields` names what else a resource accepts (for
 * events, `involvedObject.*`, `reason`, `type`). Anything else is the real
 * server's 400 "field label not supported".
 */
export function parseFieldSelector(s: string | null, extraFields: (field: string) => boolean = () => false): ObjectMatcher {
  if (!s) return () => true;
  const tests: ObjectMatcher[] = [];
  for (const req of splitTopLevel(s)) {
    const m = req.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${req}'`);
    const [, field, op, value] = m;
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !extraFields(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    tests.push(op === '!=' ? (o) => fieldValue(o, field) !== value : (o) => fieldValue(o, field) === value);
  }
  return (o) => tests.every((t) => t(o));
}
