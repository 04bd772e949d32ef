/**
 * The part of a listener that is the same for UDP and TCP: read the minimum
 * from the wire, build a QueryContext, run the chain, and turn the outcome
 * into the bytes to send.
 */
import { performance } from 'node:perf_hooks';
import { RCode } from '../dns/constants.ts';
import { errorReply, finishReply } from '../dns/reply.ts';
import { clientUdpLimit, LOOP_TAG_LENGTH, readQuery } from '../dns/wire.ts';
import { EDECode } from '../dns/constants.ts';
import type { Next, Proto, QueryContext } from '../pipeline/stage.ts';

/** The Extended DNS Error of a looped query's SERVFAIL. */
const LOOP_EDE = { code: EDECode.OTHER, text: 'forwarding loop: this query came back to the sidecar that sent it' } as const;

/** Counts queries the sidecar is working on, against a cap. */
export class InflightGate {
  /** Queries being answered now. */
  current = 0;
  /** Most queries in flight at once; at the cap, new ones are refused. */
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes a slot; false when the cap is reached. */
  enter(): boolean {
    if (this.current >= this.limit) return false;
    this.current++;
    return true;
  }

  /** Gives a slot back. */
  leave(): void {
    this.current--;
  }
}

/** What a listener needs to answer queries. */
export interface HandlerDeps {
  /** The composed pipeline. */
  readonly chain: Next;
  /** The cap on queries in flight across all listeners. */
  readonly gate: InflightGate;
  /** Aborted at shutdown: passed to every query's context. */
  readonly signal: AbortSignal;
  /** Called for messages the wire reader rejected (for metrics). */
  readonly onRejected?: (rcode: number, proto: Proto) => void;
  /**
   * This process's loop tag: a query carrying it is one of the sidecar's own
   * upstream queries come back (a forwarding loop) and is answered SERVFAIL
   * at once instead of being forwarded again.
   */
  readonly loopTag?: Buffer;
  /** Called for every looped query detected. */
  readonly onLoop?: (qname: string, qtype: number) => void;
}

/**
 * Answers one client message. Resolves with the reply bytes, or null when
 * nothing is to be sent (unreadable header, QR set, a `drop` outcome, or UDP
 * over the in-flight cap). Never rejects.
 */
export async function answer(wire: Buffer, proto: Proto, deps: HandlerDeps): Promise<Buffer | null> {
  const read = readQuery(wire);
  if (read.rejected) {
    const { rcode, questionEnd } = read.rejected;
    deps.onRejected?.(rcode, proto);
    if (rcode < 0) return null;
    return errorReplyWithOpt(wire, rcode, questionEnd);
  }
  const q = read.query;
  if (q.loopTagOffset >= 0 && deps.loopTag && wire.compare(deps.loopTag, 0, LOOP_TAG_LENGTH, q.loopTagOffset, q.loopTagOffset + LOOP_TAG_LENGTH) === 0) {
    deps.onLoop?.(q.qname, q.qtype);
    return finishReply(errorReply(wire, RCode.SERVFAIL, q.questionEnd), q, 0, RCode.SERVFAIL, LOOP_EDE);
  }
  if (!deps.gate.enter()) {
    // UDP: drop, the client retries; TCP: say so at once (RFC 7766 §6.2.4 lets a server refuse work).
    return proto === 'udp' ? null : finishReply(errorReply(wire, RCode.SERVFAIL, q.questionEnd), q, 0, RCode.SERVFAIL);
  }
  try {
    const ctx: QueryContext = {
      wire,
      query: q,
      proto,
      signal: deps.signal,
      startedAt: performance.now(),
      internal: false,
    };
    const outcome = await deps.chain(ctx);
    if (outcome.kind === 'drop') return null;
    return finishReply(outcome.body, q, proto === 'udp' ? clientUdpLimit(q) : 0, outcome.rcode, outcome.ede);
  } catch {
    // A reply that cannot be built is a SERVFAIL, never a rejection: the listeners do not expect one.
    return finishReply(errorReply(wire, RCode.SERVFAIL, q.questionEnd), q, 0, RCode.SERVFAIL);
  } finally {
    deps.gate.leave();
  }
}

/**
 * An error reply for a rejected message; BADVERS needs an OPT record to carry
 * its extended bits (RFC 6891 §6.1.3), the others echo the client's EDNS if
 * it had any readable OPT.
 */
function errorReplyWithOpt(wire: Buffer, rcode: number, questionEnd: number): Buffer {
  const body = errorReply(wire, rcode, questionEnd);
  if (rcode !== RCode.BADVERS) return body;
  const fake = {
    id: 0,
    flags: 0,
    qname: '',
    qtype: 0,
    qclass: 0,
    questionEnd: questionEnd > 0 ? questionEnd : 12,
    edns: true,
    ednsUdpSize: 512,
    dnssecOk: false,
    loopTagOffset: -1,
  };
  return finishReply(body, fake, 0, rcode);
}
