/**
 * Time to wait before reconnect attempt `attempt` (0 for the first retry): exponential growth from
 * `baseMs`, capped at `maxMs`, with full jitter (a uniform draw in [0, cap)), so a broker restart
 * does not get every instance's pool knocking again in the same millisecond. Pure: `random` is
 * injectable for tests.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export function reconnectDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.floor(random() * cap);
}
