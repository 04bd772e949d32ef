/**
 * Operational logging: one JSON object per line on stderr (query logs are
 * separate, on stdout). Levels: debug < info < warn < error. Every URL in a
 * line shows scheme, host and port only (redact.ts): whatever a message or
 * an error's cause quotes, a URL's user info, path and query never reach the
 * log.
 */
import { redactUrls } from './redact.ts';

/** Log severity. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Writes one log line; `fields` must be JSON-serializable. */
export type Logger = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger writing JSON lines `{"time","level","msg",...base,...fields}` to
 * `write` (default: stderr), dropping lines below `minLevel`, with URLs
 * redacted (redactUrls).
 */
export function createLogger(
  base: Record<string, unknown> = {},
  minLevel: Level = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const min = RANK[minLevel];
  return (level, msg, fields) => {
    if (RANK[level] < min) return;
    write(redactUrls(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields })) + '\n');
  };
}

/** A logger that writes nothing (tests). */
export const silentLogger: Logger = () => {};

/** A log function that writes at most one line per key per interval. */
export type ThrottledLogger = (key: string, level: Level, msg: string, fields?: Record<string, unknown>) => void;

/**
 * Wraps `log` so that each `key` (an error code, an upstream) writes at most
 * one line per `intervalMs`; the lines held back meanwhile are counted and
 * the next line written for that key says how many (`suppressed`). An outage
 * under load thus writes a bounded number of lines, however many queries fail.
 * `now` is the clock in milliseconds (tests inject one).
 */
export function throttledLogger(log: Logger, intervalMs: number, now: () => number = Date.now): ThrottledLogger {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key, level, msg, fields) => {
    const t = now();
    const seen = last.get(key);
    if (seen !== undefined && t - seen.at < intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    last.set(key, { at: t, suppressed: 0 });
    log(level, msg, suppressed > 0 ? { ...fields, suppressed } : fields);
  };
}
