/**
 * Whether the instance still takes new work, and the accepted work it owes an answer for. Sessions,
 * REST and the ops endpoints ask `isDraining()`; REST pushes are `track()`ed from the moment they go
 * to the broker until it has taken them (or refused), so SIGTERM can wait for exactly those.
 */
export class Admission {
  private draining = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  isDraining(): boolean {
    return this.draining;
  }

  /** From now on new sessions, CONNECTs and pushes are refused. There is no way back. */
  refuseNewWork(): void {
    this.draining = true;
  }

  /** Pushes handed to the broker and not yet settled. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Counts `work` as in flight until it settles; resolves and rejects as `work` does. */
  track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    const done = (): void => {
      this.inFlight.delete(work);
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
      await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
