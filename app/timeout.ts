/**
 * A promise that rejects if `promise` has not settled within `ms`, with `timedOut()` (a plain Error
 * naming `what` unless the caller has a typed one to give); the timer never outlives it.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  timedOut: () => Error = () => new Error(`${what}: no answer within ${ms} ms`),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The longest delay one Node timer holds (~24.8 days); a longer one fires after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What callAt() needs of a clock: the time, and a cancellable timer. Tests pass a fake one. */
export interface Timers {
  now(): number;
  /** Runs `fn` after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * Calls `fn` once, at epoch milliseconds `at` (soon, if that has passed), however far ahead it is:
 * a deadline past MAX_TIMER_MS is reached in steps, each timer re-arming the next, and `fn` runs only
 * once the clock says `at` has come. Returns a function that cancels whatever is armed.
 */
export function callAt(at: number, fn: () => void, timers: Timers = systemTimers): () => void {
  let cancel: () => void = () => undefined;
  const arm = (): void => {
    const wait = Math.max(0, at - timers.now());
    cancel = timers.after(Math.min(wait, MAX_TIMER_MS), () => {
      if (timers.now() >= at) fn();
      else arm();
    });
  };
  arm();
  return () => cancel();
}
