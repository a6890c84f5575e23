/**
 * The order a session works through its client's frames in.
 *
 * Answers (RECEIPT, ERROR) go out strictly in the order the frames came, and most frames are also
 * handled strictly one after another: a frame starts once the frame before it has been answered, so
 * a SEND after a SUBSCRIBE reaches the broker only once that subscription exists, and a COMMIT or
 * DISCONNECT sees everything before it settled.
 *
 * A frame that *overlaps* (commands.ts overlapsOthers: SENDs to `/queue/`) may start earlier, once
 * the frames before it have started: its publish goes to the broker while the confirms of the
 * SENDs before it are still on their way. Waiting for each confirm before reading the next SEND
 * held one session to one publish per broker round trip (240-300 persistent `/queue/` SENDs a
 * second here); the publishes still leave in the order they came, on one confirm channel. At most
 * `maxOverlapping` overlapping frames are started and not answered at once.
 *
 * A frame whose own work fails (a refused destination, a bad header) is still answered in its
 * place, after the frames before it, and nothing after it starts before then: by the time it is
 * answered with its ERROR the session is closing, so a bad frame never lets a later one through.
 * What can differ from one-at-a-time handling is a SEND the broker refuses after it was sent (its
 * confirm fails): the overlapping SENDs after it may already be with the broker. Like any frame
 * the client got no RECEIPT for, they are not promised either way.
 */

export type Outcome = { ok: true } | { ok: false; error: unknown };

/** What a frame's start leaves to wait for before the frame is answered: its broker confirm, if any. */
export interface Started {
  confirmed?: Promise<unknown>;
}

const DONE: Promise<void> = Promise.resolve();
const OK: Outcome = { ok: true };
const ok = (): Outcome => OK;
const failed = (error: unknown): Outcome => ({ ok: false, error });

export class FrameOrder {
  /** Settles once an overlapping frame may start: every frame before it has started. */
  private started: Promise<void> = DONE;
  /** Settles once every frame queued so far has been answered. */
  private answered: Promise<void> = DONE;
  /** Answers still due of the overlapping frames started, oldest first; made on first use. */
  private unanswered?: Promise<void>[];

  constructor(private readonly maxOverlapping: number) {}

  /**
   * Queues one frame. `start` does its work once it may; what it resolves with is waited for too.
   * `answer` runs once that has settled and every frame queued before has been answered, with the
   * frame's outcome. Resolves once `answer` has run.
   */
  add(
    overlaps: boolean,
    start: () => Promise<Started | undefined>,
    answer: (outcome: Outcome) => void,
  ): Promise<void> {
    const ahead = this.answered;
    const ran = (overlaps ? this.room() : ahead).then(start);
    const outcome = ran.then(
      (started) => (started?.confirmed ? started.confirmed.then(ok, failed) : OK),
      failed,
    );
    const answered = ahead.then(() => outcome).then(answer);
    this.answered = answered;
    if (!overlaps) {
      this.started = answered;
      return answered;
    }
    // After a frame that could not even start, nothing starts before its answer has been written.
    this.started = ran.then(
      () => undefined,
      () => answered,
    );
    const unanswered = (this.unanswered ??= []);
    unanswered.push(answered);
    void answered.then(() => {
      // Answers come in queue order, so the one answered is always the oldest.
      this.unanswered?.shift();
      if (this.unanswered?.length === 0) this.unanswered = undefined;
    });
    return answered;
  }

  /** When the next overlapping frame may start: after the frames before it started, within the cap. */
  private room(): Promise<void> {
    const unanswered = this.unanswered;
    if (!unanswered || unanswered.length < this.maxOverlapping) return this.started;
    const oldest = unanswered[unanswered.length - this.maxOverlapping];
    const started = this.started;
    return oldest.then(() => started);
  }
}
