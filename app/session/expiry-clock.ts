/**
 * When the sessions' tokens expire, on one timer for the whole instance. A timer per session (and
 * the closures around it) would cost every idle session hundreds of bytes, for an event a JWT states
 * in whole seconds (`exp`): so sessions are kept here by the second their token expires in, and one
 * tick a second, running only while some session waits, ends those whose second has come. A session
 * ends within a second after its `exp`, never before: its token is refused from `exp` on anyway.
 *
 * The tick walks the seconds since the last one; after a long stall or a clock jump it walks the
 * waiting seconds instead, whichever is fewer. Nothing here keeps the process alive (unref).
 */
export interface Expiring {
  /** Its token's time is up. Called once, unless removed first. */
  expire(): void;
}

export interface ExpiryTimers {
  now(): number;
  every(ms: number, fn: () => void): () => void;
}

const systemTimers: ExpiryTimers = {
  now: () => Date.now(),
  every: (ms, fn) => {
    const timer = setInterval(fn, ms).unref();
    return () => clearInterval(timer);
  },
};

const TICK_MS = 1000;

export class ExpiryClock {
  /** Waiting sessions by the second (epoch ms / 1000, rounded up) their token expires in. */
  private readonly due = new Map<number, Set<Expiring>>();
  /** The last second whose sessions were ended. */
  private checked = 0;
  private stopTicking: (() => void) | undefined;

  constructor(private readonly timers: ExpiryTimers = systemTimers) {}

  /** Sessions waiting. */
  get size(): number {
    let n = 0;
    for (const set of this.due.values()) n += set.size;
    return n;
  }

  /**
   * `who` expires at epoch milliseconds `at` (at the next tick, if that has passed). Returns the
   * second it waits for, which remove() takes.
   */
  add(at: number, who: Expiring): number {
    if (!this.stopTicking) this.checked = Math.floor(this.timers.now() / 1000);
    const second = Math.max(Math.ceil(at / 1000), this.checked + 1);
    let set = this.due.get(second);
    if (!set) {
      set = new Set();
      this.due.set(second, set);
    }
    set.add(who);
    this.stopTicking ??= this.timers.every(TICK_MS, () => this.tick());
    return second;
  }

  /** `who`, waiting for `second` (what add() returned), no longer waits. */
  remove(second: number, who: Expiring): void {
    const set = this.due.get(second);
    if (!set?.delete(who) || set.size > 0) return;
    this.due.delete(second);
    this.stopIfIdle();
  }

  /** Ends every session whose second has come. */
  tick(): void {
    const now = Math.floor(this.timers.now() / 1000);
    const seconds: number[] = [];
    if (now - this.checked <= this.due.size) {
      for (let s = this.checked + 1; s <= now; s++) if (this.due.has(s)) seconds.push(s);
    } else {
      for (const s of this.due.keys()) if (s <= now) seconds.push(s);
    }
    this.checked = Math.max(this.checked, now);
    for (const second of seconds.sort((a, b) => a - b)) {
      const set = this.due.get(second);
      this.due.delete(second);
      for (const who of set ?? []) who.expire();
    }
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.due.size > 0 || !this.stopTicking) return;
    this.stopTicking();
    this.stopTicking = undefined;
  }
}
