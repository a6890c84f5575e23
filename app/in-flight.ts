/**
 * Work someone is owed an answer for, so that a stop can let it finish first: REST pushes the
 * broker has not yet taken (admission.ts), broker work of the RabbitMQ relay before it closes its
 * connections.
 */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  get size(): number {
    return this.pending.size;
  }

  /** Counts `work` as in flight until it settles; resolves and rejects as `work` does. */
  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = (): void => {
      this.pending.delete(work);
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
      await Promise.race([Promise.allSettled([...this.pending]), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
