/**
 * Runs dnsperf (Debian's package, 2.x) against a loopback server and parses
 * its report. dnsperf has no percentile output, so for latency runs it is
 * started with `-v`, which prints one line per answered query
 * (`> NOERROR name type 0.000123`); the latencies are collected and sorted
 * here. Lost queries (timed out) have no latency and are counted apart.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One dnsperf run. */
export interface DnsperfOptions {
  /** Server port on 127.0.0.1. */
  readonly port: number;
  /** Query file, `name type` per line. */
  readonly queryFile: string;
  /** Seconds to run (`-l`). */
  readonly seconds: number;
  /** Query rate cap (`-Q`); saturation when absent. */
  readonly qps?: number;
  /** Simulated clients (`-c`), each its own socket; default 4. */
  readonly clients?: number;
  /**
   * Most queries outstanding (`-q`); default 100 (dnsperf's own). More overflows the 208 KiB default
   * receive buffer of servers that cannot set theirs (each datagram costs ~768 bytes of it), and every
   * dropped query then holds its slot until the timeout, which measures the buffer rather than the server.
   */
  readonly outstanding?: number;
  /** Seconds before a query counts as lost (`-t`); default 1. */
  readonly timeoutSeconds?: number;
  /** Stop after this many passes through the file (`-n`); 1 keeps unique names unique. */
  readonly maxRuns?: number;
  /** Collect per-query latencies (`-v`) for percentiles. */
  readonly latencies?: boolean;
  /** taskset CPU list for dnsperf itself. */
  readonly cpu?: string;
}

/** What one run measured. */
export interface DnsperfResult {
  readonly sent: number;
  readonly completed: number;
  readonly lost: number;
  /** Answered queries per second over the run (any rcode). */
  readonly qps: number;
  /** NOERROR answers per second over the run: what a client got resolved. */
  readonly okQps: number;
  /** Seconds the run took. */
  readonly runSeconds: number;
  /** Milliseconds. */
  readonly avgMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Response codes and their counts. */
  readonly rcodes: Readonly<Record<string, number>>;
  /** Percentiles in milliseconds, with `latencies`. */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly p999Ms?: number;
}

/** The value at quantile `q` (0…1) of sorted `values` (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Parses dnsperf's final statistics block. Throws when it is missing. */
export function parseDnsperfReport(text: string): Omit<DnsperfResult, 'p50Ms' | 'p99Ms' | 'p999Ms'> {
  const num = (re: RegExp, what: string): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf output has no ${what}:\n${text.slice(-2000)}`);
    return Number(m[1]);
  };
  const rcodes: Record<string, number> = {};
  const rc = /Response codes:\s+(.*)/.exec(text);
  if (rc) for (const m of rc[1]!.matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]!] = Number(m[2]);
  const completed = num(/Queries completed:\s+(\d+)/, 'queries completed');
  const qps = num(/Queries per second:\s+([\d.]+)/, 'queries per second');
  const lat = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(text);
  return {
    sent: num(/Queries sent:\s+(\d+)/, 'queries sent'),
    completed,
    lost: num(/Queries lost:\s+(\d+)/, 'queries lost'),
    qps,
    okQps: completed > 0 ? (qps * (rcodes['NOERROR'] ?? 0)) / completed : 0,
    runSeconds: num(/Run time \(s\):\s+([\d.]+)/, 'run time'),
    avgMs: lat ? Number(lat[1]) * 1000 : NaN,
    minMs: lat ? Number(lat[2]) * 1000 : NaN,
    maxMs: lat ? Number(lat[3]) * 1000 : NaN,
    rcodes,
  };
}

/** Runs dnsperf; killed if it outlives its time limit by 15 s. */
export function runDnsperf(o: DnsperfOptions): Promise<DnsperfResult> {
  const args = [
    '-s', '127.0.0.1', '-p', String(o.port), '-d', o.queryFile, '-l', String(o.seconds),
    '-c', String(o.clients ?? 4), '-q', String(o.outstanding ?? 100), '-t', String(o.timeoutSeconds ?? 1),
    '-O', 'suppress=timeout,congestion,sendfailed,sockready,unexpected',
  ];
  if (o.qps !== undefined) args.push('-Q', String(o.qps));
  if (o.maxRuns !== undefined) args.push('-n', String(o.maxRuns));
  if (o.latencies) args.push('-v');
  const argv = o.cpu !== undefined ? ['taskset', '-c', o.cpu, 'dnsperf', ...args] : ['dnsperf', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const latencies: number[] = [];
    let report = '';
    let stderr = '';
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('> ')) {
        const s = line.lastIndexOf(' ');
        latencies.push(Number(line.slice(s + 1)) * 1000);
      } else report += line + '\n';
    });
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const killer = setTimeout(() => child.kill('SIGKILL'), (o.seconds + (o.timeoutSeconds ?? 1) + 15) * 1000);
    child.once('error', (err) => reject(new Error(`starting dnsperf (is Debian's dnsperf installed?): ${err.message}`)));
    child.once('close', (code) => {
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`dnsperf exited ${code}: ${stderr}${report.slice(-2000)}`));
      try {
        const base = parseDnsperfReport(report);
        if (!o.latencies) return resolve(base);
        const sorted = Float64Array.from(latencies).sort();
        resolve({ ...base, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), p999Ms: quantile(sorted, 0.999) });
      } catch (err) {
        reject(err);
      }
    });
  });
}
