/**
 * Just enough of Kubernetes' protobuf encoding to read what kubectl's typed
 * clients send (`kubectl create namespace`, `kubectl create configmap` post
 * `application/vnd.kubernetes.protobuf`): the `k8s\0` envelope around a
 * runtime.Unknown, and the Namespace, ConfigMap, Secret, ServiceAccount (no
 * secret references) and Lease messages with the
 * ObjectMeta fields a client sets (name, generateName, namespace, labels,
 * annotations, finalizers), and DeleteOptions (preconditions, dryRun). Field numbers are those of k8s.io/api's
 * generated.proto. Anything else is a 415, and answers are always JSON.
 */
import type { JsonObject } from '../../../injector/json.ts';
import { ApiError } from './status.ts';

interface Field {
  readonly no: number;
  readonly wire: number;
  /** Varint value (wire type 0). */
  readonly int: bigint;
  /** Bytes (wire type 2). */
  readonly bytes: Buffer;
}

function varint(buf: Buffer, at: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (at >= buf.length) throw new Error('truncated varint');
    const b = buf[at++];
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [v, at];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    const [key, next] = varint(buf, at);
    at = next;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, n] = varint(buf, at);
      at = n;
      out.push({ no, wire, int: v, bytes: Buffer.alloc(0) });
    } else if (wire === 2) {
      const [len, n] = varint(buf, at);
      const end = n + Number(len);
      if (end > buf.length) throw new Error('truncated field');
      out.push({ no, wire, int: 0n, bytes: buf.subarray(n, end) });
      at = end;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field) => f.bytes.toString('utf8');

function map(entries: Field[], bytes = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const kv = fields(e.bytes);
    const k = kv.find((f) => f.no === 1);
    const v = kv.find((f) => f.no === 2);
    out[k ? str(k) : ''] = v ? (bytes ? v.bytes.toString('base64') : str(v)) : '';
  }
  return out;
}

function objectMeta(buf: Buffer): JsonObject {
  const fs = fields(buf);
  const m: JsonObject = {};
  for (const [no, key] of [[1, 'name'], [2, 'generateName'], [3, 'namespace']] as const) {
    const f = fs.find((x) => x.no === no);
    if (f && f.bytes.length) m[key] = str(f);
  }
  const labels = fs.filter((f) => f.no === 11);
  if (labels.length) m.labels = map(labels);
  const annotations = fs.filter((f) => f.no === 12);
  if (annotations.length) m.annotations = map(annotations);
  const finalizers = fs.filter((f) => f.no === 14).map(str);
  if (finalizers.length) m.finalizers = finalizers;
  return m;
}

function microTime(buf: Buffer): string {
  const fs = fields(buf);
  const seconds = Number(fs.find((f) => f.no === 1)?.int ?? 0n);
  const nanos = Number(fs.find((f) => f.no === 2)?.int ?? 0n);
  const iso = new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, '');
  return `${iso}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z`;
}

function decodeKind(kind: string, raw: Buffer): JsonObject {
  const fs = fields(raw);
  const meta = fs.find((f) => f.no === 1);
  const o: JsonObject = { metadata: meta ? objectMeta(meta.bytes) : {} };
  if (kind === 'Namespace') {
    const spec = fs.find((f) => f.no === 2);
    const finalizers = spec ? fields(spec.bytes).filter((f) => f.no === 1).map(str) : [];
    if (finalizers.length) o.spec = { finalizers };
  } else if (kind === 'ConfigMap') {
    const data = fs.filter((f) => f.no === 2);
    if (data.length) o.data = map(data);
    const binary = fs.filter((f) => f.no === 3);
    if (binary.length) o.binaryData = map(binary, true);
    const immutable = fs.find((f) => f.no === 4);
    if (immutable) o.immutable = immutable.int !== 0n;
  } else if (kind === 'Lease') {
    const spec = fs.find((f) => f.no === 2);
    const s: JsonObject = {};
    for (const f of spec ? fields(spec.bytes) : []) {
      if (f.no === 1) s.holderIdentity = str(f);
      else if (f.no === 2) s.leaseDurationSeconds = Number(f.int);
      else if (f.no === 3) s.acquireTime = microTime(f.bytes);
      else if (f.no === 4) s.renewTime = microTime(f.bytes);
      else if (f.no === 5) s.leaseTransitions = Number(f.int);
      else if (f.no === 6) s.strategy = str(f);
      else if (f.no === 7) s.preferredHolder = str(f);
    }
    o.spec = s;
  } else if (kind === 'Secret') {
    const data = fs.filter((f) => f.no === 2);
    if (data.length) o.data = map(data, true);
    const type = fs.find((f) => f.no === 3);
    if (type) o.type = str(type);
    const stringData = fs.filter((f) => f.no === 4);
    if (stringData.length) o.stringData = map(stringData);
    const immutable = fs.find((f) => f.no === 5);
    if (immutable) o.immutable = immutable.int !== 0n;
  } else if (kind === 'ServiceAccount') {
    const automount = fs.find((f) => f.no === 4);
    if (automount) o.automountServiceAccountToken = automount.int !== 0n;
  } else if (kind === 'DeleteOptions') {
    delete o.metadata;
    for (const f of fs) {
      if (f.no === 2) {
        const pre: JsonObject = {};
        for (const p of fields(f.bytes)) pre[p.no === 1 ? 'uid' : 'resourceVersion'] = str(p);
        o.preconditions = pre;
      } else if (f.no === 4) o.propagationPolicy = str(f);
      else if (f.no === 5) o.dryRun = [...(o.dryRun as string[] | undefined ?? []), str(f)];
    }
  } else {
    throw new ApiError(415, 'UnsupportedMediaType', `the stand-in API server cannot decode ${kind} from protobuf; send application/json`);
  }
  return o;
}

/** Decodes a protobuf request body (`k8s\0` + runtime.Unknown) into the JSON object it encodes. */
export function decodeProtobuf(body: Buffer): JsonObject {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0') {
    throw new ApiError(400, 'BadRequest', 'provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]');
  }
  try {
    const unknown = fields(body.subarray(4));
    const typeMeta = unknown.find((f) => f.no === 1);
    const raw = unknown.find((f) => f.no === 2);
    const tm = typeMeta ? fields(typeMeta.bytes) : [];
    const apiVersion = str(tm.find((f) => f.no === 1) ?? { no: 0, wire: 2, int: 0n, bytes: Buffer.alloc(0) });
    const kind = str(tm.find((f) => f.no === 2) ?? { no: 0, wire: 2, int: 0n, bytes: Buffer.alloc(0) });
    return { apiVersion, kind, ...decodeKind(kind, raw?.bytes ?? Buffer.alloc(0)) };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(400, 'BadRequest', `error decoding protobuf request body: ${(e as Error).message}`);
  }
}
