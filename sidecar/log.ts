/**
 * Operational logging: one JSON object per line on stderr (query logs are
 * separate, on stdout). Levels: debug < info < warn < error.
 */

/** Log severity. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Writes one log line; `fields` must be JSON-serializable. */
export type Logger = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger writing JSON lines `{"time","level","msg",...base,...fields}` to
 * `write` (default: stderr), dropping lines below `minLevel`.
 */
export function createLogger(
  base: Record<string, unknown> = {},
  minLevel: Level = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const min = RANK[minLevel];
  return (level, msg, fields) => {
    if (RANK[level] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }) + '\n');
  };
}

/** A logger that writes nothing (tests). */
export const silentLogger: Logger = () => {};
