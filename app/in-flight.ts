/**
 * Work someone is owed an answer for, so that a stop can let it finish first: REST pushes the
 * broker has not yet taken (admission.ts), broker work of the RabbitMQ relay before it closes its
 * connections. A piece of work may stand for several (a REST batch: one promise for all its
 * messages), so `size` counts what it stands for, not promises.
 */
export class InFlight {
  private readonly pending = new Map<Promise<unknown>, number>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /**
   * Counts `work` as `weight` pieces in flight until it settles; resolves and rejects as `work`
   * does.
   */
  track<T>(work: Promise<T>, weight = 1): Promise<T> {
    this.pending.set(work, (this.pending.get(work) ?? 0) + weight);
    this.count += weight;
    const done = (): void => {
      const held = this.pending.get(work);
      if (held === undefined) return;
      this.pending.delete(work);
      this.count -= held;
    };
    work.then(done, done);
    return work;
  }

  /** Resolves once everything in flight now has settled, or after `timeoutMs`, whichever is first. */
  async settled(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([Promise.allSettled([...this.pending.keys()]), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
