/**
 * Latency histogram with log buckets 1 % wide (1 µs to ~20 min), so that millions of deliveries
 * cost a fixed 2 k counters per process and histograms from several processes merge by addition.
 * Percentiles are the upper edge of their bucket: at most 1 % above the true value.
 */
const GROWTH = Math.log(1.01);
const BUCKETS = 2100;

/** What crosses the IPC channel: only the non-empty buckets. */
export interface HistogramData {
  buckets: [number, number][];
  count: number;
  sumUs: number;
  maxUs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(us: number): void {
    if (!(us >= 0)) return; // NaN: a body we could not read a timestamp from
    const index = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / GROWTH));
    this.counts[index]++;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }

  add(data: HistogramData): void {
    for (const [index, n] of data.buckets) this.counts[index] += n;
    this.count += data.count;
    this.sumUs += data.sumUs;
    this.maxUs = Math.max(this.maxUs, data.maxUs);
  }

  /** `p` in 0..1; in milliseconds; undefined when empty. */
  percentileMs(p: number): number | undefined {
    if (this.count === 0) return undefined;
    const target = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= target) return Math.min(Math.exp(i * GROWTH), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  data(): HistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) buckets.push([i, this.counts[i]]);
    return { buckets, count: this.count, sumUs: this.sumUs, maxUs: this.maxUs };
  }
}
