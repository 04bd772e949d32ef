/**
 * The text exposition `/metrics` serves, rendered so that scrapes cannot
 * crowd out DNS on the sidecar's one thread (measured in test/bench/README.md,
 * "The metrics port under a flood"):
 *
 * - every scrape gets a rendering that started after it arrived (nothing
 *   older than the request), and every scrape waiting at that moment shares
 *   it: one rendering at a time however many scrapers there are;
 * - a rendering starts at most once per `minIntervalMs`; a scrape that comes
 *   sooner waits for the next one;
 * - a rendering yields to the event loop whenever it has run for `sliceMs`,
 *   between metric families, so a DNS query waits for one slice at most, not
 *   for a whole rendering;
 * - at most `maxWaiting` scrapes wait at once; one more is turned away at
 *   once (`render` returns undefined; the server answers 503).
 *
 * The text is what prom-client's `registry.metrics()` gives, family by family
 * in the same order (Prometheus' text format, version 0.0.4).
 */
import { monotonicMs } from '../runtime/clock.ts';
import { timersPromises } from '../runtime/builtins.ts';
import type { Registry } from 'prom-client';

/** Options of {@link ExpositionRenderer}. */
export interface ExpositionOptions {
  /** Milliseconds between the starts of two renderings; 0: one may start as soon as the last one ends. */
  readonly minIntervalMs: number;
  /** Milliseconds a rendering runs before it yields to the event loop. */
  readonly sliceMs: number;
  /** Most scrapes waiting for a rendering at once. */
  readonly maxWaiting: number;
}

/** Default {@link ExpositionOptions}: a rendering a second at most, 1 ms slices, 64 scrapes waiting. */
export const DEFAULT_EXPOSITION: ExpositionOptions = { minIntervalMs: 1_000, sliceMs: 1, maxWaiting: 64 };

/** Renders one registry for scrapes: shared, spaced and sliced renderings (see the module comment). */
export class ExpositionRenderer {
  readonly #registry: Registry;
  readonly #options: ExpositionOptions;
  /** The rendering in progress. */
  #running: Promise<string> | undefined;
  /** The rendering that starts after the one in progress (or after the interval): what a new scrape waits for. */
  #next: Promise<string> | undefined;
  /** When the last rendering started (monotonicMs()). */
  #lastStart = -Infinity;
  #waiting = 0;
  #renderings = 0;

  constructor(registry: Registry, options: ExpositionOptions = DEFAULT_EXPOSITION) {
    this.#registry = registry;
    this.#options = options;
  }

  /** Scrapes waiting for a rendering now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Renderings started so far. */
  get renderings(): number {
    return this.#renderings;
  }

  /** The exposition as of a moment after this call; undefined when `maxWaiting` scrapes wait already. */
  render(): Promise<string> | undefined {
    if (this.#waiting >= this.#options.maxWaiting) return undefined;
    this.#next ??= this.#schedule();
    this.#waiting++;
    return this.#next.finally(() => this.#waiting--);
  }

  /** The next rendering: after the one in progress has ended and the interval since its start has passed. */
  async #schedule(): Promise<string> {
    await this.#running?.catch(() => {});
    const wait = this.#lastStart + this.#options.minIntervalMs - monotonicMs();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref());
    this.#next = undefined;
    this.#running = this.#renderNow();
    return this.#running;
  }

  async #renderNow(): Promise<string> {
    this.#lastStart = monotonicMs();
    this.#renderings++;
    const parts: string[] = [];
    let sliceStart = this.#lastStart;
    for (const metric of this.#registry.getMetricsAsArray()) {
      parts.push(await this.#registry.getSingleMetricAsString(metric.name));
      if (monotonicMs() - sliceStart >= this.#options.sliceMs) {
        await timersPromises().setImmediate();
        sliceStart = monotonicMs();
      }
    }
    return `${parts.join('\n\n')}\n`;
  }
}
