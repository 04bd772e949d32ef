/**
 * The exchange signal contract (sidecar/upstream/upstream.ts): a group's own
 * deadline signal reaches a library that wants an AbortSignal (undici, in the
 * DoH transport) through toAbortSignal, which follows it until released.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toAbortSignal, type AbortListener, type ExchangeSignal } from '../../../sidecar/upstream/upstream.ts';

/** A minimal ExchangeSignal that is not an AbortSignal, like a group's deadline. */
class PlainSignal implements ExchangeSignal {
  aborted = false;
  reason: unknown = undefined;
  readonly listeners = new Set<AbortListener>();
  addEventListener(_type: 'abort', l: AbortListener): void {
    this.listeners.add(l);
  }
  removeEventListener(_type: 'abort', l: AbortListener): void {
    this.listeners.delete(l);
  }
  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
    for (const l of this.listeners) l.handleEvent();
  }
}

describe('toAbortSignal', () => {
  it('gives an AbortSignal back as it is, with nothing to release', () => {
    const controller = new AbortController();
    const s = toAbortSignal(controller.signal);
    assert.equal(s.signal, controller.signal);
    s.release();
  });

  it('follows another signal: aborts with its reason (a timeout stays a TimeoutError)', () => {
    const plain = new PlainSignal();
    const s = toAbortSignal(plain);
    assert.equal(s.signal.aborted, false);
    const reason = new DOMException('no answer within 5 ms', 'TimeoutError');
    plain.abort(reason);
    assert.equal(s.signal.aborted, true);
    assert.equal(s.signal.reason, reason);
  });

  it('is aborted at once when the signal it follows already is', () => {
    const plain = new PlainSignal();
    plain.abort('gone');
    const s = toAbortSignal(plain);
    assert.equal(s.signal.aborted, true);
    assert.equal(s.signal.reason, 'gone');
  });

  it('stops following when released', () => {
    const plain = new PlainSignal();
    const s = toAbortSignal(plain);
    assert.equal(plain.listeners.size, 1);
    s.release();
    assert.equal(plain.listeners.size, 0);
    plain.abort('late');
    assert.equal(s.signal.aborted, false);
  });
});
