/**
 * MAX_FRAMES_PER_SECOND as a token bucket: a client may send up to twice the rate in a burst (a
 * reconnect that re-subscribes everything at once), and on average no more than the rate.
 */
export class FrameRate {
  private tokens: number;
  private refilledAt = Date.now();

  constructor(private readonly perSecond: number) {
    this.tokens = perSecond * 2;
  }

  /** True when one more frame fits now (and counts it). */
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      this.perSecond * 2,
      this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
