/**
 * A slow echo upstream in a process of its own, for the overload test: the
 * flooding test process must not starve the upstream's event loop (a starved
 * upstream loses queries, and the sidecar then waits its whole upstream
 * deadline, which would be measured as the sidecar's recovery time).
 *
 * Run: `node test/reliability/upstream-process.ts <delayMs>`. Prints one JSON
 * line `{"port":N}` when listening; then reads commands on stdin, one per
 * line: `stats` prints `{"count":N,"maxHolding":N,"holding":N}`, `delay <ms>`
 * changes the delay (0: answer at once).
 */
import { createInterface } from 'node:readline';
import { echoAnswer, startRawUpstream } from './lib.ts';

let delayMs = Number(process.argv[2] ?? 200);
let holding = 0;
let maxHolding = 0;
const upstream = await startRawUpstream((q) => {
  const a = echoAnswer(q.wire);
  if (!a) return null;
  if (delayMs === 0) return [a];
  holding++;
  maxHolding = Math.max(maxHolding, holding);
  setTimeout(() => {
    holding--;
    upstream.sendFrom(a, q.port);
  }, delayMs);
  return null;
});
upstream.keep = 0;
process.stdout.write(JSON.stringify({ port: upstream.port }) + '\n');
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'stats') process.stdout.write(JSON.stringify({ count: upstream.count, maxHolding, holding }) + '\n');
  else if (cmd === 'delay') {
    delayMs = Number(arg);
    process.stdout.write(JSON.stringify({ delayMs }) + '\n');
  }
});
rl.on('close', () => void upstream.close().then(() => process.exit(0)));
