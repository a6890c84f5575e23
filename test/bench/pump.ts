/**
 * The one sending loop every load generator uses: `total` sends, at most `window` unconfirmed at a
 * time, paced at `ratePerSec` (0: as fast as confirmations allow), and never longer than `maxMs`
 * (then it stops sending and gives what is in flight `graceMs` to finish). Bounded in count and time.
 */
export interface PumpOptions {
  total: number;
  ratePerSec: number;
  window: number;
  maxMs: number;
  graceMs?: number;
}

export interface PumpResult {
  sent: number;
  confirmed: number;
  failed: number;
  ms: number;
  /** True when maxMs ran out before all `total` were sent and confirmed. */
  timedOut: boolean;
  errorSamples: string[];
  /** REST user pushes: how many answers said `"online": true` and how many `false` (SPEC, REST). */
  online?: { yes: number; no: number };
}

/** How often a paced pump sends what has come due. */
export const PACED_TICK_MS = 2;

export function pump(options: PumpOptions, sendOne: (seq: number) => Promise<void>): Promise<PumpResult> {
  const { total, ratePerSec, window, maxMs } = options;
  const graceMs = options.graceMs ?? 5000;
  const started = Date.now();
  let sent = 0;
  let confirmed = 0;
  let failed = 0;
  let inFlight = 0;
  let finished = false;
  const errorSamples: string[] = [];

  return new Promise((resolve) => {
    const finish = (timedOut: boolean): void => {
      if (finished) return;
      finished = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      resolve({ sent, confirmed, failed, ms: Date.now() - started, timedOut, errorSamples });
    };
    const stopSendingAt = started + maxMs;
    const tick = (): void => {
      if (finished) return;
      const now = Date.now();
      const due =
        ratePerSec > 0 ? Math.min(total, Math.floor(((now - started) / 1000) * ratePerSec) + 1) : total;
      while (sent < due && inFlight < window && now < stopSendingAt) {
        const seq = ++sent;
        inFlight++;
        sendOne(seq).then(
          () => {
            confirmed++;
            inFlight--;
            if (ratePerSec === 0) tick();
            else if (sent >= total && inFlight === 0) finish(false);
          },
          (err: unknown) => {
            failed++;
            inFlight--;
            if (errorSamples.length < 5) errorSamples.push(err instanceof Error ? err.message : String(err));
            tick();
          },
        );
      }
      if (inFlight === 0 && (sent >= total || now >= stopSendingAt)) finish(sent < total);
    };
    const ticker = setInterval(tick, ratePerSec > 0 ? PACED_TICK_MS : 50);
    const deadline = setTimeout(() => finish(true), maxMs + graceMs);
    tick();
  });
}
