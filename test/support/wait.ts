/**
 * Waiting in tests: poll a condition against a deadline instead of sleeping a fixed, hopefully
 * long enough time. Fast when things work, a clear message naming what never happened when not.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves once `predicate` returns true (it may be async); rejects after `timeoutMs` with an error
 * naming `what` was awaited. A predicate that throws is treated as "not yet", and its last error is
 * reported if the deadline passes, so assertion-style predicates work too.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (error: unknown) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? ` (last check failed: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
    }
    await sleep(10);
  }
}
