/**
 * A real Prometheus (Debian's package) on a loopback port for integration
 * tests: a temporary config scraping the given targets every second (handed
 * over through a file_sd file, the way service discovery hands them over, so
 * that `__meta_*` labels reach the job's relabel_configs; more jobs beside,
 * over HTTPS too), a temporary TSDB, and the query API
 * (test/helpers/podmonitor.ts gives a job a PodMonitor's relabelings and TLS).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.ts';

/**
 * A scrape target: `host:port` and its labels as discovered: target labels
 * Prometheus adds as they are, and `__meta_*` labels (what Kubernetes service
 * discovery reports about a pod) that only relabel_configs see.
 */
export interface ScrapeTarget {
  readonly address: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** One series of a query result. */
export interface Series {
  readonly metric: Record<string, string>;
  /** Instant vectors: [time, value]. */
  readonly value?: [number, string];
}

/** A query result: the result type and its series (a scalar comes as one series without labels). */
export interface QueryResult {
  readonly resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  readonly series: readonly Series[];
}

/** A running Prometheus. */
export interface PrometheusServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Evaluates `expr` at `time` (seconds; default now) through /api/v1/query. Rejects on a parse or evaluation error. */
  query(expr: string, time?: number): Promise<QueryResult>;
  /** Resolves once every target is discovered and each one relabeling kept is up (scraped successfully), or rejects after `timeoutMs`. */
  waitForTargetsUp(timeoutMs?: number): Promise<void>;
  /** The targets kept and dropped by relabeling, now. */
  targets(): Promise<TargetsState>;
  /** Resolves once a scrape of every target has completed after this call (samples are then at least this fresh). */
  waitForFreshScrape(timeoutMs?: number): Promise<void>;
  /** Stops the process and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/** How a scrape job scrapes its targets: relabelings, label handling, and HTTPS. */
export interface ScrapeSettings {
  /** The scrape job's `relabel_configs`, in Prometheus's own form. */
  readonly relabelConfigs?: readonly Readonly<Record<string, unknown>>[];
  /** The scrape job's `honor_labels` (Prometheus's default: false, scraped labels that collide become `exported_*`). */
  readonly honorLabels?: boolean;
  /** `https` scrapes over TLS, verified as `tls` says; default `http`. */
  readonly scheme?: 'http' | 'https';
  /** The job's `tls_config`: the CA file to verify against and the name to verify (targets are addresses). */
  readonly tls?: { readonly caFile: string; readonly serverName: string };
}

/** One more scrape job beside the first: its name, targets and settings. */
export interface ScrapeJob extends ScrapeSettings {
  readonly name: string;
  readonly targets: readonly ScrapeTarget[];
}

/** Options of {@link startPrometheus}: the first job's settings, more jobs, rule files. */
export interface PrometheusOptions extends ScrapeSettings {
  /** Rule files to load (their expressions are then evaluated every second too). */
  readonly ruleFiles?: readonly string[];
  /** More scrape jobs (the first, `tenant-dns`, scrapes the targets given to {@link startPrometheus}). */
  readonly jobs?: readonly ScrapeJob[];
}

/** The targets as Prometheus sees them after relabeling. */
export interface TargetsState {
  /** Targets kept: their labels after relabeling. */
  readonly active: readonly Record<string, string>[];
  /** Targets relabeling dropped: their labels as discovered. */
  readonly dropped: readonly Record<string, string>[];
}

/** The values of the dashboard's variables (regular expressions, as Grafana substitutes them). */
export interface DashboardVariables {
  readonly tenant: string;
  readonly namespace: string;
  readonly pod: string;
}

/**
 * A dashboard query (dashboards/build.ts) as Grafana sends it: the tenant,
 * namespace and pod variables replaced, `$__rate_interval` 5m and `$__range`
 * 10m (windows covering a test).
 */
export function grafanaToPromql(expr: string, vars: DashboardVariables): string {
  return expr
    .replaceAll('$tenant', vars.tenant)
    .replaceAll('$namespace', vars.namespace)
    .replaceAll('$pod', vars.pod)
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__range', '10m');
}

async function api<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (body.status !== 'success') throw new Error(`${url}: ${body.errorType}: ${body.error}`);
  return body.data;
}

/** A job's scrape_config, its targets handed over in a file_sd file written into `dir`. */
function scrapeConfig(dir: string, job: ScrapeJob): Record<string, unknown> {
  const targetsFile = join(dir, `targets-${job.name}.json`);
  writeFileSync(targetsFile, JSON.stringify(job.targets.map((t) => ({ targets: [t.address], labels: { ...t.labels } }))));
  return {
    job_name: job.name,
    honor_labels: job.honorLabels ?? false,
    file_sd_configs: [{ files: [targetsFile] }],
    relabel_configs: [...(job.relabelConfigs ?? [])],
    ...(job.scheme === 'https' ? { scheme: 'https' } : {}),
    ...(job.tls ? { tls_config: { ca_file: job.tls.caFile, server_name: job.tls.serverName } } : {}),
  };
}

/** Starts Prometheus scraping `targets` (job `tenant-dns`) and those of `options.jobs` every second; resolves once it is ready. */
export async function startPrometheus(targets: readonly ScrapeTarget[], options: PrometheusOptions = {}): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-prometheus-'));
  const port = await freePort();
  const jobs: ScrapeJob[] = [{ ...options, name: 'tenant-dns', targets }, ...(options.jobs ?? [])];
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: [...(options.ruleFiles ?? [])],
    scrape_configs: jobs.map((job) => scrapeConfig(dir, job)),
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  let output = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      '--storage.tsdb.retention.time=1h',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`starting prometheus (is Debian's prometheus installed?): ${err.message}`))),
  );
  spawnError.catch(() => undefined);
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const discovered = jobs.reduce((n, job) => n + job.targets.length, 0);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`prometheus exited during start-up: ${output}`);
    }
    try {
      const res = await Promise.race([spawnError, fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })]);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within 30 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  type Target = { health: string; lastScrape: string; lastError: string; scrapeUrl: string; labels: Record<string, string> };
  type Targets = { activeTargets: Target[]; droppedTargets: { discoveredLabels: Record<string, string> }[] };
  const allTargets = () => api<Targets>(`${url}/api/v1/targets?state=any`);
  const targetsNow = async () => (await allTargets()).activeTargets;

  return {
    url,
    async query(expr, time) {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set('time', String(time));
      const data = await api<{ resultType: QueryResult['resultType']; result: unknown }>(`${url}/api/v1/query?${params}`);
      if (data.resultType === 'scalar' || data.resultType === 'string') {
        return { resultType: data.resultType, series: [{ metric: {}, value: data.result as [number, string] }] };
      }
      return { resultType: data.resultType, series: data.result as Series[] };
    },
    async waitForTargetsUp(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const { activeTargets: ts, droppedTargets: dropped } = await allTargets();
        if (ts.length + dropped.length === discovered && ts.every((t) => t.health === 'up')) return;
        if (Date.now() > until) throw new Error(`targets not up within ${timeoutMs} ms: ${JSON.stringify(ts)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async targets() {
      const { activeTargets, droppedTargets } = await allTargets();
      return { active: activeTargets.map((t) => t.labels), dropped: droppedTargets.map((t) => t.discoveredLabels) };
    },
    async waitForFreshScrape(timeoutMs = 10_000) {
      const since = Date.now();
      const until = since + timeoutMs;
      for (;;) {
        const ts = await targetsNow();
        // A scrape that started after `since` has seen everything done before this call.
        if (ts.length > 0 && ts.every((t) => t.health === 'up' && Date.parse(t.lastScrape) > since)) return;
        if (Date.now() > until) throw new Error(`no fresh scrape within ${timeoutMs} ms: ${JSON.stringify(ts)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
}
