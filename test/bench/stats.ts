/**
 * What a load process counts about the messages its clients receive: how many, when the first and
 * last came, errors, connections the server closed, and the latency of each into one histogram.
 * Nothing per message is kept.
 */
import { Histogram, type HistogramData } from './histogram';
import { nowMs, sentAtMs } from './payload';

export interface StatsData {
  received: number;
  firstAt: number;
  lastAt: number;
  errors: number;
  errorSamples: string[];
  closedEarly: number;
  latency: HistogramData;
}

export class Stats {
  readonly hist = new Histogram();
  received = 0;
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
    this.hist.record((now - sentAt) * 1000);
    this.received++;
    if (this.firstAt === 0) this.firstAt = now;
    this.lastAt = now;
  }

  error(what: string): void {
    this.errors++;
    if (this.errorSamples.length < 5) this.errorSamples.push(what.slice(0, 300));
  }

  reset(): void {
    this.hist.reset();
    this.received = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    this.errors = 0;
    this.closedEarly = 0;
    this.errorSamples.length = 0;
  }

  data(): StatsData {
    return {
      received: this.received,
      firstAt: this.firstAt,
      lastAt: this.lastAt,
      errors: this.errors,
      errorSamples: [...this.errorSamples],
      closedEarly: this.closedEarly,
      latency: this.hist.data(),
    };
  }
}
