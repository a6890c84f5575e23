/**
 * Time to wait before retry `attempt` (0 for the first): exponential growth from `baseMs`, capped
 * at `maxMs`, with full jitter (a uniform draw in [0, cap)), so that many waiting on one thing that
 * comes back (every instance's broker pool after a RabbitMQ restart, every durable subscription
 * after PostgreSQL's) do not all knock again in the same millisecond. Pure: `random` is injectable
 * for tests.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export function retryDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.floor(random() * cap);
}
