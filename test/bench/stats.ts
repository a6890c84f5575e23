/**
 * What a load process counts about the messages its clients receive: how many, when the first and
 * last came, errors, connections the server closed, and the latency of each into one histogram.
 * Nothing per message is kept.
 *
 * A phase (reset) may say when it began and from when its latency counts: a message sent before
 * the phase began is a straggler of an earlier phase, counted as `stale` and nowhere else (its
 * wait would otherwise land in this phase's tail); one sent in the phase's warm-up counts as
 * received (so the phase still knows when all its pushes are in) but not in the latency.
 */
import { Histogram, type HistogramData } from './histogram';
import { nowMs, sentAtMs } from './payload';

/** When the phase a reset starts began, and from when its latency counts (ms, nowMs clock). */
export interface PhaseWindow {
  sentFromMs: number;
  measuredFromMs: number;
}

export interface StatsData {
  received: number;
  /** Sent before this phase began: an earlier phase's, not counted in `received` or the latency. */
  stale: number;
  /** Received but sent in the warm-up, before the latency counts; their latency apart. */
  warmup: number;
  warmupLatency: HistogramData;
  firstAt: number;
  lastAt: number;
  errors: number;
  errorSamples: string[];
  closedEarly: number;
  latency: HistogramData;
}

export class Stats {
  readonly hist = new Histogram();
  readonly warmupHist = new Histogram();
  received = 0;
  stale = 0;
  warmup = 0;
  private window: PhaseWindow = { sentFromMs: 0, measuredFromMs: 0 };
  firstAt = 0;
  lastAt = 0;
  errors = 0;
  closedEarly = 0;
  readonly errorSamples: string[] = [];

  /** A payload that starts at `start` in `buf` (STOMP frames, WebSocket messages). */
  onBody(buf: Buffer, start: number): void {
    this.onSentAt(sentAtMs(buf, start));
  }

  /** A payload that arrived as a string (Socket.IO event arguments). */
  onText(text: string): void {
    this.onSentAt(parseFloat(text.slice(0, 24)));
  }

  private onSentAt(sentAt: number): void {
    const now = nowMs();
    if (sentAt < this.window.sentFromMs) {
      this.stale++;
      return;
    }
    if (sentAt < this.window.measuredFromMs) {
      this.warmup++;
      this.warmupHist.record((now - sentAt) * 1000);
    } else this.hist.record((now - sentAt) * 1000);
    this.received++;
    if (this.firstAt === 0) this.firstAt = now;
    this.lastAt = now;
  }

  error(what: string): void {
    this.errors++;
    if (this.errorSamples.length < 5) this.errorSamples.push(what.slice(0, 300));
  }

  reset(window: PhaseWindow = { sentFromMs: 0, measuredFromMs: 0 }): void {
    this.window = window;
    this.hist.reset();
    this.warmupHist.reset();
    this.received = 0;
    this.stale = 0;
    this.warmup = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    this.errors = 0;
    this.closedEarly = 0;
    this.errorSamples.length = 0;
  }

  data(): StatsData {
    return {
      received: this.received,
      stale: this.stale,
      warmup: this.warmup,
      warmupLatency: this.warmupHist.data(),
      firstAt: this.firstAt,
      lastAt: this.lastAt,
      errors: this.errors,
      errorSamples: [...this.errorSamples],
      closedEarly: this.closedEarly,
      latency: this.hist.data(),
    };
  }
}
