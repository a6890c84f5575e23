import { expect } from 'chai';
import { ExpiryClock, type ExpiryTimers } from '../../../app/session/expiry-clock';

/** A clock that moves only when told, and the one interval the expiry clock may run. */
function fakeTimers(startMs: number): ExpiryTimers & { advance(ms: number): void; running: number } {
  let now = startMs;
  const intervals = new Set<{ fn: () => void }>();
  return {
    now: () => now,
    every: (_ms, fn) => {
      const entry = { fn };
      intervals.add(entry);
      return () => intervals.delete(entry);
    },
    get running() {
      return intervals.size;
    },
    // One tick per call, as the interval would run once the time has passed.
    advance(ms: number) {
      now += ms;
      for (const entry of [...intervals]) entry.fn();
    },
  };
}

const session = (log: string[], name: string) => ({ expire: () => log.push(name) });

describe('ExpiryClock: token expiry on one timer', () => {
  it('ends a session at the tick once its exp second has come, never before', () => {
    const timers = fakeTimers(1_000_000); // exactly second 1000
    const clock = new ExpiryClock(timers);
    const ended: string[] = [];
    clock.add(1_003_000, session(ended, 'a')); // exp = 1003
    timers.advance(1000);
    timers.advance(1000);
    timers.advance(999); // 1002.999 s
    expect(ended).to.deep.equal([]);
    timers.advance(1); // 1003 s
    expect(ended).to.deep.equal(['a']);
  });

  it('ends each session once, in the order of their seconds, however many share one', () => {
    const timers = fakeTimers(0);
    const clock = new ExpiryClock(timers);
    const ended: string[] = [];
    clock.add(2500, session(ended, 'late'));
    clock.add(1000, session(ended, 'x'));
    clock.add(1000, session(ended, 'y'));
    timers.advance(5000); // one stalled tick covers three seconds
    expect(ended).to.deep.equal(['x', 'y', 'late']);
    timers.advance(1000);
    expect(ended).to.have.length(3);
    expect(clock.size).to.equal(0);
  });

  it('forgets a removed session, and ticks only while some session waits', () => {
    const timers = fakeTimers(0);
    const clock = new ExpiryClock(timers);
    const ended: string[] = [];
    const a = session(ended, 'a');
    expect(timers.running).to.equal(0);
    const second = clock.add(3000, a);
    expect(timers.running).to.equal(1);
    clock.remove(second, a);
    expect(timers.running).to.equal(0);
    timers.advance(10_000);
    expect(ended).to.deep.equal([]);
  });

  it('ends a session whose exp has passed at the next tick', () => {
    const timers = fakeTimers(50_000);
    const clock = new ExpiryClock(timers);
    const ended: string[] = [];
    clock.add(10_000, session(ended, 'old'));
    expect(ended).to.deep.equal([]);
    timers.advance(1000);
    expect(ended).to.deep.equal(['old']);
  });

  it('reaches an exp years ahead after a clock jump, without walking every second', () => {
    const timers = fakeTimers(0);
    const clock = new ExpiryClock(timers);
    const ended: string[] = [];
    const year = 365 * 24 * 3600 * 1000;
    clock.add(3 * year, session(ended, 'far'));
    clock.add(1000, session(ended, 'near'));
    timers.advance(1000);
    expect(ended).to.deep.equal(['near']);
    timers.advance(3 * year); // the walk goes by the one waiting second, not by 94 million
    expect(ended).to.deep.equal(['near', 'far']);
  });
});
