/**
 * Contexts a stage makes for questions the client did not send but would
 * have (autopath's search-walk names, the other address family of a name):
 * the client's header and EDNS facts, another question.
 */
import { HEADER_LENGTH } from '../dns/constants.ts';
import type { Route } from '../route/classify.ts';
import type { QueryContext } from './stage.ts';

/**
 * A context for the question (`nameWire`, `qtype`) asked as the client of
 * `ctx` would ask it: its ID, RD and CD, its DO and EDNS size, its class and
 * signal, `route` as the router classifies `name` (the sidecar form of
 * `nameWire`), so the question is decided, cached and coalesced exactly as
 * the client's own would be. Not internal: its answer is the client's.
 */
export function clientQuestion(ctx: QueryContext, name: string, nameWire: Buffer, qtype: number, route: Route): QueryContext {
  const q = ctx.query;
  const wire = Buffer.alloc(HEADER_LENGTH + nameWire.length + 4);
  ctx.wire.copy(wire, 0, 0, 4);
  wire.writeUInt16BE(1, 4);
  nameWire.copy(wire, HEADER_LENGTH);
  wire.writeUInt16BE(qtype, HEADER_LENGTH + nameWire.length);
  wire.writeUInt16BE(q.qclass, HEADER_LENGTH + nameWire.length + 2);
  return {
    wire,
    query: { ...q, qname: name, qtype, questionEnd: wire.length, loopTagOffset: -1 },
    proto: ctx.proto,
    signal: ctx.signal,
    startedAt: ctx.startedAt,
    route,
    decision: route.evaluation.decision,
    internal: false,
  };
}

/** The wire form of the question name of `ctx` as the client wrote it (without type and class). */
export function questionName(ctx: QueryContext): Buffer {
  return ctx.wire.subarray(HEADER_LENGTH, ctx.query.questionEnd - 4);
}
