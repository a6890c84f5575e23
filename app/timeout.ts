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
