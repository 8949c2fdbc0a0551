// Exponential backoff with jitter, the shape client-go uses everywhere (wait.Backoff + wait.Jitter): the delay
// doubles from `baseMs` up to `maxMs`, then a random extra of up to `jitter` x delay is added so that many clients
// failing together (an API server restart) don't come back in lockstep.

export interface BackoffConfig {
  /** First delay. */
  baseMs: number;
  /** Cap on the delay before jitter. */
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /** Extra random fraction in [0, jitter) of the delay; default 0 (none). client-go's reflector uses 1.0. */
  jitter?: number;
}

/** The delay before retry number `attempt` (0 = the first retry), random in [d, d x (1 + jitter)). */
export function backoffDelay(attempt: number, config: BackoffConfig, random: () => number = Math.random): number {
  const factor = config.factor ?? 2;
  const exp = Math.min(Math.max(0, attempt), 1000);
  const raw = config.baseMs * Math.pow(factor, exp);
  const capped = Number.isFinite(raw) ? Math.min(raw, config.maxMs) : config.maxMs;
  const jitter = config.jitter ?? 0;
  return Math.round(capped + (jitter > 0 ? random() * jitter * capped : 0));
}

/** Stateful form: `next()` gives the next delay and counts the attempt; `reset()` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly config: BackoffConfig, private readonly random: () => number = Math.random) {}

  next(): number {
    return backoffDelay(this.attempt++, this.config, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }
}

/** Reads a Retry-After header (seconds or an HTTP date) into seconds; undefined when absent or unparsable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
