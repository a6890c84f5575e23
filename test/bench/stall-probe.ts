/**
 * What stalls a service while pushes go at an easy rate (issue 18.3: measure, don't guess): the
 * event-loop delay and the GC time the service itself reports in /metrics (prom-client's default
 * metrics: the lag histogram restarts at each scrape; GC time is a running sum), read before and
 * after a phase. A p99 delivery latency far above the loop's p99 lag is not the service's loop.
 *
 * The lag figures are the delay itself: Node's histogram records each whole interval between two
 * samples, EVENT_LOOP_SAMPLE_MS of it the sampling period (an idle loop reads ~10 ms), which is
 * taken off here.
 */
import { EVENT_LOOP_SAMPLE_MS } from '../../app/observability/metrics';

export interface StallFigures {
  /** Event-loop delay over the phase, the worst instance's. */
  loopP99Ms: number | null;
  loopMaxMs: number | null;
  /** GC pause time summed over the phase and the instances, and how much of it was major GC. */
  gcMs: number | null;
  gcMajorMs: number | null;
}

async function scrape(url: string): Promise<string | null> {
  try {
    const res = await fetch(`${url}/metrics`);
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

function value(text: string, pattern: string): number | null {
  const m = new RegExp(`^${pattern}\\s+([\\d.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

function gcSums(text: string): { all: number; major: number } {
  let all = 0;
  let major = 0;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\}\s+([\d.e+-]+)$/gm)) {
    all += Number(m[2]);
    if (m[1] === 'major') major += Number(m[2]);
  }
  return { all, major };
}

const ms = (s: number | null): number | null => (s === null ? null : Math.round(s * 100_000) / 100);

/** A lag figure without the sampling period it includes. */
const delayMs = (s: number | null): number | null =>
  s === null ? null : ms(Math.max(0, s - EVENT_LOOP_SAMPLE_MS / 1000));

/** Starts a phase: scrapes every instance once (which also restarts their lag histograms). */
export async function startStallProbe(urls: string[]): Promise<() => Promise<StallFigures>> {
  const before = await Promise.all(urls.map(scrape));
  return async () => {
    const after = await Promise.all(urls.map(scrape));
    if (after.some((t) => t === null) || before.some((t) => t === null)) {
      return { loopP99Ms: null, loopMaxMs: null, gcMs: null, gcMajorMs: null };
    }
    const texts = after as string[];
    const worst = (name: string): number | null =>
      texts
        .map((t) => value(t, name))
        .reduce<number | null>((a, b) => (b === null ? a : Math.max(a ?? 0, b)), null);
    let gc = 0;
    let major = 0;
    texts.forEach((t, i) => {
      const a = gcSums(t);
      const b = gcSums(before[i] as string);
      gc += a.all - b.all;
      major += a.major - b.major;
    });
    return {
      loopP99Ms: delayMs(worst('nodejs_eventloop_lag_p99_seconds')),
      loopMaxMs: delayMs(worst('nodejs_eventloop_lag_max_seconds')),
      gcMs: ms(gc),
      gcMajorMs: ms(major),
    };
  };
}
