/**
 * Hostile packets (issue 6 item 1): a seeded, reproducible fuzz of the wire
 * against a running sidecar (in process, with a policy that denies, sinkholes
 * and answers split zones, so synthesized answers are fuzzed too; upstream =
 * a byte-exact raw test server so that every readable question really gets
 * an answer, whatever bytes its name holds).
 *
 * FUZZ_SEED=<n> replays a run (the seed is printed as a diagnostic);
 * FUZZ_COUNT=<n> sets the number of client messages (default 200 000, split
 * 3:1 between UDP and TCP). Each phase also stops at a time budget, so a slow
 * machine runs fewer messages instead of timing out (the count sent is printed).
 *
 * Checked for every message: the sidecar is alive and keeps serving; every
 * reply is a well-formed DNS message with QR set and the query's ID; a
 * message with a readable header, QR clear and opcode ≠ 0 gets NOTIMP;
 * opcode 0 with QDCOUNT ≠ 1, or a question that is not readable, gets
 * FORMERR; a message shorter than a header or with QR set gets nothing;
 * every other message gets an answer. Then a normal query over UDP and TCP
 * gets the right answer.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.ts';
import { fuzzSeed, pick, prng, randomBytesFrom } from '../helpers/fuzz.ts';
import {
  addressesOf,
  checkMessage,
  echoAnswer,
  plainQuestionEnd,
  rawQuery,
  startRawUpstream,
  tcpClient,
  udpAsk,
  type RawUpstream,
} from './lib.ts';

const SEED = fuzzSeed(0x5eed_0006);
const COUNT = Number(process.env.FUZZ_COUNT ?? 200_000);
const UDP_COUNT = Math.round(COUNT * 0.75);
const TCP_COUNT = COUNT - UDP_COUNT;
/** Wall-clock budgets per phase (ms): the run stops sending when one is spent. */
const UDP_BUDGET_MS = 35_000;
const TCP_BUDGET_MS = 15_000;

const QTYPES = [1, 28, 5, 15, 16, 33, 65, 255, 252, 0, 41, 6, 12, 65535];
const WORDS = ['a', 'www', 'example', 'com', 'test', 'x1', 'cluster', 'svc', 'Mixed', 'very-long-label-'.repeat(3)];

/** Zones of the fuzz policy: deny, sinkhole, static split, CNAME split, and a plain upstream name. */
const ZONES = ['com', 'sink.example', 'split.example', 'cn.example', 'up.example'];

/** A well-formed query with a random name and type, EDNS or not; a third of them in a policy zone with a label of any bytes. */
function validQuery(rnd: () => number): Buffer {
  const qtype = QTYPES[pick(rnd, QTYPES.length)]!;
  const edns = rnd() < 0.5 ? 512 + pick(rnd, 4000) : 0;
  if (rnd() < 0.33) {
    const label = randomBytesFrom(rnd, 1 + pick(rnd, 63));
    const zone = ZONES[pick(rnd, ZONES.length)]!;
    const q = rawQuery(`${'x'.repeat(label.length)}.${zone}`, qtype, 0, edns);
    label.copy(q, 13);
    return q;
  }
  const labels = 1 + pick(rnd, 4);
  const name = Array.from({ length: labels }, () => WORDS[pick(rnd, WORDS.length)]! + pick(rnd, 1000)).join('.');
  return rawQuery(name, qtype, 0, edns);
}

/** The policy the fuzzed sidecar runs, so synthesized answers are fuzzed too. */
const FUZZ_POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: fuzz }
spec:
  rules:
    - { name: no-com, action: deny, names: ["*.com"] }
    - { name: sink, action: deny, names: ["*.sink.example"], response: { type: sinkhole, addresses: ["0.0.0.0", "::"] } }
  splitZones:
    - { name: static, names: ["*.split.example"], addresses: ["10.0.0.1", "fd00::1"] }
    - { name: cname, names: ["*.cn.example"], cname: target.example }
`;

/** Appends records (already encoded) to a query and fixes the counts. */
function withRecords(q: Buffer, records: Buffer[], section: 'an' | 'ns' | 'ar'): Buffer {
  const out = Buffer.concat([q, ...records]);
  const at = section === 'an' ? 6 : section === 'ns' ? 8 : 10;
  out.writeUInt16BE(out.readUInt16BE(at) + records.length, at);
  return out;
}

/** An OPT record: owner, version, rdata. */
function opt(rnd: () => number, o: { owner?: Buffer; version?: number; rdata?: Buffer; rdlength?: number } = {}): Buffer {
  const owner = o.owner ?? Buffer.from([0]);
  const rdata = o.rdata ?? Buffer.alloc(0);
  const rr = Buffer.alloc(owner.length + 10);
  owner.copy(rr);
  const p = owner.length;
  rr.writeUInt16BE(41, p);
  rr.writeUInt16BE(512 + pick(rnd, 4000), p + 2);
  rr[p + 5] = o.version ?? 0;
  rr.writeUInt16BE(o.rdlength ?? rdata.length, p + 8);
  return Buffer.concat([rr, rdata]);
}

/** An EDNS option whose length field may lie. */
function ednsOption(rnd: () => number): Buffer {
  const len = pick(rnd, 12);
  const out = Buffer.alloc(4 + len);
  out.writeUInt16BE(pick(rnd, 4) === 0 ? 65_101 : pick(rnd, 65536), 0);
  out.writeUInt16BE(rnd() < 0.3 ? pick(rnd, 64) : len, 2);
  return out;
}

/** One fuzz message. */
function generate(rnd: () => number): Buffer {
  const kind = pick(rnd, 14);
  switch (kind) {
    case 0: // random bytes, mostly short
      return randomBytesFrom(rnd, rnd() < 0.7 ? pick(rnd, 40) : pick(rnd, 600));
    case 1: {
      // a valid query with bytes flipped
      const q = validQuery(rnd);
      const flips = 1 + pick(rnd, 4);
      for (let i = 0; i < flips; i++) q[pick(rnd, q.length)] = pick(rnd, 256);
      return q;
    }
    case 2: // truncated anywhere
      return validQuery(rnd).subarray(0, pick(rnd, 40));
    case 3: {
      // every opcode, QR either way
      const q = validQuery(rnd);
      q.writeUInt16BE((q.readUInt16BE(2) & 0x87ff) | (pick(rnd, 16) << 11) | (rnd() < 0.2 ? 0x8000 : 0), 2);
      return q;
    }
    case 4: {
      // QDCOUNT games
      const q = validQuery(rnd);
      q.writeUInt16BE([0, 2, 3, 255, 65535][pick(rnd, 5)]!, 4);
      return q;
    }
    case 5: {
      // a label length past the end
      const q = rawQuery('abc.example', 1);
      q[12 + (rnd() < 0.5 ? 0 : 4)] = 20 + pick(rnd, 43);
      return q.subarray(0, 12 + pick(rnd, q.length - 12) + 1);
    }
    case 6: {
      // compression pointers in the question: to itself, forward, into the header, chains
      const q = Buffer.alloc(12 + 2 + 4);
      q.writeUInt16BE(0x0100, 2);
      q.writeUInt16BE(1, 4);
      const target = [12, 13, 0, 2, 200, 0x3fff][pick(rnd, 6)]!;
      q.writeUInt16BE(0xc000 | target, 12);
      q.writeUInt16BE(1, 14);
      q.writeUInt16BE(1, 16);
      if (rnd() < 0.5) return Buffer.concat([q.subarray(0, 12), Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12, 0, 1, 0, 1])]);
      return q;
    }
    case 7: {
      // compression pointers in the additional section (loops, forward)
      const q = validQuery(rnd);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc000 | [q.length, q.length + 20, 12, 0][pick(rnd, 4)]!, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt16BE(rnd() < 0.5 ? 0 : 9, 10);
      return withRecords(q, [rr], ['an', 'ns', 'ar'][pick(rnd, 3)] as 'an');
    }
    case 8: {
      // huge section counts with a short body
      const q = validQuery(rnd);
      q.writeUInt16BE(65535, 6 + 2 * pick(rnd, 3));
      return q;
    }
    case 9: {
      // malformed and repeated OPT records
      const base = rawQuery('opt.example', 1);
      const variant = pick(rnd, 7);
      if (variant === 0) return withRecords(base, [opt(rnd), opt(rnd)], 'ar');
      if (variant === 1) return withRecords(base, [opt(rnd)], rnd() < 0.5 ? 'an' : 'ns');
      if (variant === 2) return withRecords(base, [opt(rnd, { owner: Buffer.from([1, 0x61, 0]) })], 'ar');
      if (variant === 3) return withRecords(base, [opt(rnd, { version: 1 + pick(rnd, 255) })], 'ar');
      if (variant === 4) return withRecords(base, [opt(rnd, { rdata: Buffer.concat([ednsOption(rnd), ednsOption(rnd)]) })], 'ar');
      if (variant === 5) return withRecords(base, [opt(rnd, { rdata: Buffer.alloc(3), rdlength: 3 + pick(rnd, 100) })], 'ar');
      return withRecords(base, [opt(rnd, { rdata: randomBytesFrom(rnd, pick(rnd, 30)) })], 'ar');
    }
    case 10: {
      // reserved label types and over-long names
      if (rnd() < 0.5) {
        const q = rawQuery('x.example', 1);
        q[12] = [0x40, 0x80, 0x41, 0xbf][pick(rnd, 4)]!;
        return q;
      }
      return rawQuery(Array.from({ length: 5 + pick(rnd, 4) }, () => 'l'.repeat(60)).join('.'), 1);
    }
    case 11: {
      // random header on a valid question
      const q = validQuery(rnd);
      randomBytesFrom(rnd, 12).copy(q, 0);
      return q;
    }
    case 12: // random tail appended
      return Buffer.concat([validQuery(rnd), randomBytesFrom(rnd, 1 + pick(rnd, 30))]);
    default:
      return validQuery(rnd);
  }
}

/** What the sidecar must do with `msg`. */
type Expect = 'none' | 'NOTIMP' | 'FORMERR' | 'answer';

function expectation(msg: Buffer): Expect {
  if (msg.length < 12) return 'none';
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return 'none';
  if (((flags >>> 11) & 0x0f) !== 0) return 'NOTIMP';
  if (msg.readUInt16BE(4) !== 1) return 'FORMERR';
  if (plainQuestionEnd(msg) < 0) return 'FORMERR';
  return 'answer';
}

/** Checks one reply against its message; returns a problem or null. */
function judge(msg: Buffer, exp: Expect, reply: Buffer): string | null {
  const layout = checkMessage(reply);
  if (typeof layout === 'string') return `malformed reply: ${layout}`;
  if (!(layout.flags & 0x8000)) return 'reply without QR';
  if (layout.id !== msg.readUInt16BE(0)) return `reply ID ${layout.id} for query ID ${msg.readUInt16BE(0)}`;
  if (exp === 'none') return 'a reply to a message that deserves none';
  if (exp === 'NOTIMP' && layout.rcode !== 4) return `rcode ${layout.rcode}, expected NOTIMP`;
  if (exp === 'FORMERR' && layout.rcode !== 1) return `rcode ${layout.rcode}, expected FORMERR`;
  return null;
}

const hex = (b: Buffer) => b.subarray(0, 64).toString('hex');

interface Tally {
  sent: number;
  answered: number;
  byExpect: Record<Expect, number>;
  problems: string[];
}

function newTally(): Tally {
  return { sent: 0, answered: 0, byExpect: { none: 0, NOTIMP: 0, FORMERR: 0, answer: 0 }, problems: [] };
}

function problem(t: Tally, what: string) {
  if (t.problems.length < 20) t.problems.push(what);
}

describe('wire fuzz against a running sidecar', () => {
  let upstream: RawUpstream;
  let sc: TestSidecar;
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-fuzz-'));
  before(async () => {
    upstream = await startRawUpstream();
    upstream.keep = 0;
    writeFileSync(join(dir, 'policy.yaml'), FUZZ_POLICY);
    sc = await startTestSidecar({
      policy: join(dir, 'policy.yaml'),
      upstream: [`udp://127.0.0.1:${upstream.port}`],
      upstreamAttemptTimeoutMs: 500,
      upstreamDeadlineMs: 1000,
      tcpIdleTimeoutMs: 2000,
      // 2048 queries per connection: the fuzz pipelines far more than a resolver would.
      tcpMaxPipelined: 2048,
    });
  }, { timeout: 60_000 });
  after(async () => {
    await sc?.stop();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  }, { timeout: 60_000 });

  async function assertServing(label: string) {
    const u = await udpAsk(sc.port, rawQuery('canary.example', 1, 0x1234, 1232), 2000);
    assert.ok(u, `${label}: no UDP answer to a normal query`);
    assert.equal(u.readUInt16BE(0), 0x1234);
    assert.deepEqual(addressesOf(u), ['192.0.2.1'], `${label}: wrong UDP answer`);
    const c = await tcpClient(sc.port);
    try {
      c.send(rawQuery('canary-tcp.example', 1, 0x4321));
      assert.ok(await c.until(() => c.replies.length > 0, 2000), `${label}: no TCP answer to a normal query`);
      assert.equal(c.replies[0]!.readUInt16BE(0), 0x4321);
      assert.deepEqual(addressesOf(c.replies[0]!), ['192.0.2.1'], `${label}: wrong TCP answer`);
    } finally {
      c.close();
    }
  }

  test('udp: random and mutated messages get the right rcode or nothing, never a crash', async (t) => {
    t.diagnostic(`FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT} (udp ${UDP_COUNT})`);
    const rnd = prng(SEED);
    const tally = newTally();
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    sock.setRecvBufferSize(4 * 1024 * 1024);
    /** In flight by ID: the message, what it deserves, when sent, tries. */
    const inflight = new Map<number, { msg: Buffer; exp: Expect; at: number; tries: number }>();
    /** IDs of recent messages that deserve no reply, with their message. */
    const silent = new Map<number, Buffer>();
    let waiting: (() => void) | undefined;
    sock.on('message', (reply) => {
      if (reply.length < 2) return problem(tally, `a ${reply.length}-byte datagram`);
      const id = reply.readUInt16BE(0);
      const entry = inflight.get(id);
      if (!entry) {
        const quiet = silent.get(id);
        if (quiet) problem(tally, `reply to a message that deserves none: ${hex(quiet)} → ${hex(reply)}`);
        return; // a late duplicate after a resend
      }
      inflight.delete(id);
      tally.answered++;
      const why = judge(entry.msg, entry.exp, reply);
      if (why) problem(tally, `${why}: ${hex(entry.msg)} → ${hex(reply)}`);
      waiting?.();
    });
    const WINDOW = 256;
    const start = Date.now();
    let seq = 0;
    let unanswered = 0;
    const resend = setInterval(() => {
      const now = Date.now();
      for (const [id, e] of inflight) {
        if (now - e.at < 1500) continue;
        if (e.tries >= 3) {
          inflight.delete(id);
          unanswered++;
          problem(tally, `no reply after 3 tries (${e.exp}): ${hex(e.msg)}`);
          continue;
        }
        e.tries++;
        e.at = now;
        sock.send(e.msg, sc.port, '127.0.0.1');
      }
      waiting?.();
    }, 250);
    try {
      while (seq < UDP_COUNT && Date.now() - start < UDP_BUDGET_MS) {
        while (inflight.size >= WINDOW) await new Promise<void>((r) => (waiting = r));
        const msg = generate(rnd);
        const id = seq++ & 0xffff;
        if (msg.length >= 2) msg.writeUInt16BE(id, 0);
        const exp = expectation(msg);
        tally.byExpect[exp]++;
        tally.sent++;
        if (exp === 'none') {
          if (msg.length >= 2) silent.set(id, msg);
        } else {
          silent.delete(id);
          // An ID still waiting (only after 65 536 messages): let its slot go.
          inflight.set(id, { msg, exp, at: Date.now(), tries: 1 });
        }
        sock.send(msg, sc.port, '127.0.0.1');
        if ((seq & 1023) === 0) await new Promise((r) => setImmediate(r));
      }
      const drainUntil = Date.now() + 6000;
      while (inflight.size > 0 && Date.now() < drainUntil) await sleep(50);
    } finally {
      clearInterval(resend);
      sock.close();
    }
    const secs = (Date.now() - start) / 1000;
    t.diagnostic(`udp: sent ${tally.sent} in ${secs.toFixed(1)} s (${Math.round(tally.sent / secs)}/s), by expectation ${JSON.stringify(tally.byExpect)}, answered ${tally.answered}, unanswered ${unanswered + inflight.size}`);
    assert.deepEqual(tally.problems, [], `seed ${SEED}`);
    assert.equal(inflight.size, 0, 'messages still unanswered after the drain');
    await assertServing('after the UDP fuzz');
  });

  test('tcp: random and mutated messages on pipelined connections, zero-length frames included', async (t) => {
    t.diagnostic(`FUZZ_SEED=${SEED} (tcp ${TCP_COUNT})`);
    const rnd = prng(SEED ^ 0x7c7c7c7c);
    const tally = newTally();
    const CONNS = 4;
    const WINDOW = 64;
    const start = Date.now();
    let seq = 0;
    const conns = await Promise.all(Array.from({ length: CONNS }, () => tcpClient(sc.port)));
    try {
      await Promise.all(
        conns.map(async (c, ci) => {
          const inflight = new Map<number, { msg: Buffer; exp: Expect }>();
          let seen = 0;
          const take = () => {
            for (; seen < c.replies.length; seen++) {
              const reply = c.replies[seen]!;
              if (reply.length < 2) {
                problem(tally, `tcp: a ${reply.length}-byte reply`);
                continue;
              }
              const entry = inflight.get(reply.readUInt16BE(0));
              if (!entry) {
                problem(tally, `tcp: reply with an ID nothing waits for: ${hex(reply)}`);
                continue;
              }
              inflight.delete(reply.readUInt16BE(0));
              tally.answered++;
              const why = judge(entry.msg, entry.exp, reply);
              if (why) problem(tally, `tcp: ${why}: ${hex(entry.msg)} → ${hex(reply)}`);
            }
            c.replies.length = 0;
            seen = 0;
          };
          let local = 0;
          while (seq < TCP_COUNT && Date.now() - start < TCP_BUDGET_MS && !c.closed()) {
            if (inflight.size >= WINDOW) {
              await c.until(() => c.replies.length > 0 || c.closed(), 3000);
              take();
              if (inflight.size >= WINDOW) break;
              continue;
            }
            seq++;
            const msg = rnd() < 0.02 ? Buffer.alloc(0) : generate(rnd);
            // IDs are per connection: the connection index in the top bits.
            const id = ((ci << 14) | (local++ & 0x3fff)) & 0xffff;
            if (msg.length >= 2) msg.writeUInt16BE(id, 0);
            const exp = expectation(msg);
            tally.byExpect[exp]++;
            tally.sent++;
            if (exp !== 'none') inflight.set(id, { msg, exp });
            c.send(msg);
            if ((local & 255) === 0) await new Promise((r) => setImmediate(r));
            take();
          }
          await c.until(() => {
            take();
            return inflight.size === 0 || c.closed();
          }, 5000);
          take();
          assert.equal(c.closed(), false, `connection ${ci} was closed by the sidecar`);
          for (const e of inflight.values()) problem(tally, `tcp: no reply (${e.exp}): ${hex(e.msg)}`);
        }),
      );
    } finally {
      for (const c of conns) c.close();
    }
    const secs = (Date.now() - start) / 1000;
    t.diagnostic(`tcp: sent ${tally.sent} in ${secs.toFixed(1)} s, by expectation ${JSON.stringify(tally.byExpect)}, answered ${tally.answered}`);
    assert.deepEqual(tally.problems, [], `seed ${SEED}`);
    await assertServing('after the TCP fuzz');
  });

  test('tcp: length prefixes that lie, half frames, slow drip and abrupt closes leave the sidecar serving', async () => {
    const rnd = prng(SEED ^ 0x1e1e);
    const good = rawQuery('lying.example', 1, 0x0101);
    // Longer than the data, then the client ends its side: the sidecar closes without answering.
    const a = await tcpClient(sc.port);
    a.write(Buffer.from([0xff, 0xff]));
    a.write(good);
    a.sock.end();
    assert.ok(await a.until(() => a.closed(), 3000), 'a half frame followed by FIN must close the connection');
    assert.equal(a.replies.length, 0);
    // Shorter than the data: the rest is read as further (garbage) frames; whatever comes back is well-formed.
    const b = await tcpClient(sc.port);
    for (let i = 0; i < 200; i++) b.send(generate(rnd), pick(rnd, 40));
    b.send(good);
    // Our FIN: the sidecar answers what it has read, then closes; every reply is in when the connection is.
    b.sock.end();
    assert.ok(await b.until(() => b.closed(), 3000), 'the sidecar closes the connection after our FIN');
    for (const r of b.replies) assert.equal(typeof checkMessage(r), 'object', `malformed reply ${hex(r)}`);
    // Random bytes written raw (prefixes included), then reset.
    for (let i = 0; i < 20; i++) {
      const c = await tcpClient(sc.port);
      c.write(randomBytesFrom(rnd, 1 + pick(rnd, 3000)));
      if (rnd() < 0.5) c.sock.resetAndDestroy();
      else c.close();
    }
    // Slow drip of a valid query within the idle timeout is still answered.
    const d = await tcpClient(sc.port);
    const framed = Buffer.concat([Buffer.from([0, good.length]), good]);
    for (const byte of framed) {
      d.write(Buffer.from([byte]));
      await sleep(10);
    }
    assert.ok(await d.until(() => d.replies.length === 1, 2000), 'a slowly dripped query within the idle timeout is answered');
    assert.deepEqual(addressesOf(d.replies[0]!), ['192.0.2.1']);
    d.close();
    await assertServing('after lying TCP prefixes');
  });
});

describe('upstream reply fuzz through the sidecar', () => {
  /** Mutates a correct reply: byte flips, truncation, junk, counts, pointer loops, wrong ID or question. */
  function hostileReply(rnd: () => number, query: Buffer): Buffer[] {
    const good = echoAnswer(query)!;
    const out = Buffer.from(good);
    switch (pick(rnd, 10)) {
      case 0:
        for (let i = 0, n = 1 + pick(rnd, 4); i < n; i++) out[pick(rnd, out.length)] = pick(rnd, 256);
        return [out];
      case 1:
        return [out.subarray(0, pick(rnd, out.length))];
      case 2:
        return [Buffer.concat([out, randomBytesFrom(rnd, 1 + pick(rnd, 40))])];
      case 3:
        out.writeUInt16BE(pick(rnd, 4) === 0 ? 65535 : pick(rnd, 4), 4 + 2 * pick(rnd, 4));
        return [out];
      case 4: {
        // the answer's owner becomes a pointer to itself or forward
        const at = out.length - 16;
        if (at > 12) out.writeUInt16BE(0xc000 | (rnd() < 0.5 ? at : at + 2 + pick(rnd, 10)), at);
        return [out];
      }
      case 5:
        return [randomBytesFrom(rnd, pick(rnd, 100))];
      case 6: {
        const wrong = Buffer.from(good);
        wrong.writeUInt16BE((query.readUInt16BE(0) + 1) & 0xffff, 0);
        return [wrong, rnd() < 0.5 ? good : out.subarray(0, 5)];
      }
      case 7: {
        // an extra record whose owner is a pointer loop, appended with ARCOUNT bumped
        const rr = Buffer.alloc(16);
        rr.writeUInt16BE(0xc000 | out.length, 0);
        rr.writeUInt16BE(1, 2);
        rr.writeUInt16BE(1, 4);
        rr.writeUInt16BE(4, 10);
        const o = Buffer.concat([out, rr]);
        o.writeUInt16BE(o.readUInt16BE(10) + 1, 10);
        return [o];
      }
      case 8: {
        // an A record with rdlength past the end
        if (out.length >= 16) out.writeUInt16BE(200, out.length - 6);
        return [out];
      }
      default:
        return [good];
    }
  }

  for (const proto of ['udp', 'tcp'] as const) {
    test(`${proto} upstream: every client query gets a well-formed answer or SERVFAIL, never a crash`, async (t) => {
      const seed = SEED ^ (proto === 'udp' ? 0xabc : 0xdef);
      t.diagnostic(`FUZZ_SEED=${SEED} (derived ${seed})`);
      const rnd = prng(seed);
      const upstream = await startRawUpstream((q) => {
        if (q.wire.length < 12) return null;
        return hostileReply(rnd, q.wire);
      });
      upstream.keep = 0;
      const sc = await startTestSidecar({
        upstream: [`${proto}://127.0.0.1:${upstream.port}`],
        upstreamAttemptTimeoutMs: 150,
        upstreamDeadlineMs: 300,
      });
      t.after(async () => {
        await sc.stop();
        await upstream.close();
      });
      const N = 1500;
      const CONCURRENCY = 64;
      const problems: string[] = [];
      const rcodes: Record<number, number> = {};
      let next = 0;
      const worker = async () => {
        while (next < N) {
          const i = next++;
          const q = rawQuery(`q${i}.fuzz.example`, 1, i & 0xffff, 1232);
          const reply = await udpAsk(sc.port, q, 3000);
          if (!reply) {
            problems.push(`query ${i}: no reply`);
            continue;
          }
          const layout = checkMessage(reply);
          if (typeof layout === 'string') {
            problems.push(`query ${i}: malformed reply (${layout}): ${hex(reply)}`);
            continue;
          }
          if (!(layout.flags & 0x8000) || layout.id !== (i & 0xffff)) problems.push(`query ${i}: bad header ${hex(reply)}`);
          rcodes[layout.rcode] = (rcodes[layout.rcode] ?? 0) + 1;
          if (layout.rcode === 0 && layout.ancount > 0 && addressesOf(reply).some((a) => a !== '192.0.2.1')) {
            // A flipped address byte passes every check a resolver can make; it is still well-formed.
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      t.diagnostic(`${proto}: ${N} queries, rcodes ${JSON.stringify(rcodes)}`);
      assert.deepEqual(problems.slice(0, 10), [], `seed ${seed}`);
      // Still serving: a good upstream answer goes through.
      upstream.setHandler((q) => {
        const a = echoAnswer(q.wire);
        return a ? [a] : null;
      });
      const ok = await udpAsk(sc.port, rawQuery('after.fuzz.example', 1, 7, 1232), 2000);
      assert.ok(ok);
      assert.deepEqual(addressesOf(ok), ['192.0.2.1']);
    });
  }
});
