/** Broker work callers are waiting on, so that stop() can let it finish before closing connections. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();

  track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise);
    const forget = (): void => {
      this.pending.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  /** Resolves once everything tracked now has settled, or after `graceMs`, whichever is first. */
  async settled(graceMs: number): Promise<void> {
    const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.pending]), grace]);
  }
}
