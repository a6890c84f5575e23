/**
 * Whether the instance still takes new work, and the accepted work it owes an answer for. Sessions,
 * REST and the ops endpoints ask `isDraining()`; REST pushes are `track()`ed from the moment they go
 * to the broker until it has taken them (or refused), so SIGTERM can wait for exactly those.
 */
import { InFlight } from './in-flight';

export class Admission {
  private draining = false;
  private readonly inFlight = new InFlight();

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

  /**
   * Counts `work` as in flight (`weight` pushes: a batch's messages) until it settles; resolves and
   * rejects as `work` does.
   */
  track<T>(work: Promise<T>, weight = 1): Promise<T> {
    return this.inFlight.track(work, weight);
  }

  /** Resolves once everything in flight now has settled, or after `timeoutMs`, whichever is first. */
  settled(timeoutMs: number): Promise<void> {
    return this.inFlight.settled(timeoutMs);
  }
}
