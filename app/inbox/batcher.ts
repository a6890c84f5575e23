/**
 * Group commit: calls that arrive while a database round is in flight wait for it, then go
 * together in the next one. A lone call goes at once (no added latency when idle); under load one
 * commit carries many calls, since a commit costs about what a 1,000-row insert does.
 *
 * Each call's items stay together and in order; a round carries whole calls up to `maxItems`
 * (a larger call goes alone). At most one round is in flight per batcher. `maxQueued` bounds what
 * waits: beyond it a call is refused at once instead of queueing behind a slow database.
 */
import { ServiceError } from '../errors';

interface Pending<I, O> {
  items: I[];
  resolve(results: O[]): void;
  reject(err: unknown): void;
}

export interface BatcherOptions {
  maxItems: number;
  maxQueued: number;
  /** What the store is doing, for the refusal message. */
  what: string;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private queued = 0;
  private running = false;
  private closedReason?: ServiceError;

  /** `run` answers one result per item, in item order. */
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
  ) {}

  submit(items: I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    if (this.closedReason) return Promise.reject(this.closedReason);
    if (this.queued > 0 && this.queued + items.length > this.options.maxQueued) {
      return Promise.reject(
        new ServiceError(
          'inbox_unavailable',
          `the inbox store is behind: ${this.queued} ${this.options.what} are waiting`,
        ),
      );
    }
    return new Promise<O[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      this.queued += items.length;
      this.pump();
    });
  }

  /** Refuses new calls; resolves once the round in flight and everything queued are done. */
  async close(reason: ServiceError): Promise<void> {
    this.closedReason = reason;
    while (this.running || this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    const round = this.takeRound();
    this.running = true;
    void this.flush(round).finally(() => {
      this.running = false;
      this.pump();
    });
  }

  private takeRound(): Pending<I, O>[] {
    const round: Pending<I, O>[] = [];
    let size = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0];
      if (round.length > 0 && size + next.items.length > this.options.maxItems) break;
      round.push(next);
      size += next.items.length;
      this.queue.shift();
    }
    this.queued -= size;
    return round;
  }

  private async flush(round: Pending<I, O>[]): Promise<void> {
    try {
      const results = await this.run(round.flatMap((call) => call.items));
      let offset = 0;
      for (const call of round) {
        call.resolve(results.slice(offset, offset + call.items.length));
        offset += call.items.length;
      }
    } catch (err: unknown) {
      for (const call of round) call.reject(err);
    }
  }
}
