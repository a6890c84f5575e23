import { expect } from 'chai';
import { callAt, MAX_TIMER_MS, type Timers } from '../../app/timeout';

/** A clock that moves only when told, with the delays asked of it recorded. */
class FakeTimers implements Timers {
  time = 1_700_000_000_000;
  readonly delays: number[] = [];
  private pending: { due: number; fn: () => void }[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): () => void {
    // A real timer overflows past MAX_TIMER_MS and fires after 1 ms: model that, so a caller that
    // asks for more is caught by the test rather than trusted.
    this.delays.push(ms);
    const entry = { due: this.time + (ms > MAX_TIMER_MS ? 1 : ms), fn };
    this.pending.push(entry);
    return () => {
      this.pending = this.pending.filter((p) => p !== entry);
    };
  }

  /** Moves the clock forward by `ms`, running each timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.pending.filter((p) => p.due <= until).sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.pending = this.pending.filter((p) => p !== next);
      this.time = next.due;
      next.fn();
    }
    this.time = until;
  }
}

const DAY = 86_400_000;

describe('callAt: a deadline however far ahead', () => {
  it('fires at a deadline a few seconds ahead, once', () => {
    const timers = new FakeTimers();
    let fired = 0;
    callAt(timers.now() + 5000, () => fired++, timers);
    timers.advance(4999);
    expect(fired).to.equal(0);
    timers.advance(1);
    expect(fired).to.equal(1);
    timers.advance(DAY);
    expect(fired).to.equal(1);
  });

  it('fires exactly at a deadline 60 days ahead (past what one timer holds), not before', () => {
    const timers = new FakeTimers();
    const at = timers.now() + 60 * DAY;
    let firedAt: number | undefined;
    callAt(at, () => (firedAt = timers.now()), timers);
    timers.advance(60 * DAY - 1);
    expect(firedAt, 'not before the deadline').to.equal(undefined);
    timers.advance(1);
    expect(firedAt).to.equal(at);
    expect(Math.max(...timers.delays), 'no timer longer than Node can hold').to.be.at.most(MAX_TIMER_MS);
  });

  it('fires soon for a deadline already passed', () => {
    const timers = new FakeTimers();
    let fired = 0;
    callAt(timers.now() - 1000, () => fired++, timers);
    timers.advance(0);
    expect(fired).to.equal(1);
  });

  it('re-arms when a timer fires early by the clock, and fires once the clock has reached the deadline', () => {
    const timers = new FakeTimers();
    const at = timers.now() + 1000;
    let fired = 0;
    callAt(at, () => fired++, timers);
    timers.time -= 5; // the wall clock stepped back: the timer's 1000 ms end 5 ms short of `at`
    timers.advance(1000);
    expect(fired).to.equal(0);
    timers.advance(5);
    expect(fired).to.equal(1);
  });

  it('cancels whichever step is armed', () => {
    const timers = new FakeTimers();
    let fired = 0;
    const cancel = callAt(timers.now() + 40 * DAY, () => fired++, timers);
    timers.advance(30 * DAY); // past the first step: a later timer is armed now
    cancel();
    timers.advance(20 * DAY);
    expect(fired).to.equal(0);
  });
});
