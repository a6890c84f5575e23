/**
 * FRAME_TIMEOUT_MS: a frame must end within that long of the chunk that began it, however its bytes
 * trickle in (a byte every few seconds also keeps heart-beat checks satisfied, so nothing else would
 * ever end such a connection). The deadline belongs to one frame: the next frame gets its own, so a
 * busy stream whose every chunk ends mid-frame is never cut. The parser only says where it is
 * (app/stomp/ keeps no clocks); the session owns this timer and stops it in its one teardown.
 */
import { ServiceError } from '../errors';
import type { SessionContext } from './session-context';

export interface FrameProgress {
  /** A frame has begun and not ended. */
  readonly midFrame: boolean;
  /** Frames completed so far: the number of the frame in progress. */
  readonly framesCompleted: number;
}

export class FrameDeadline {
  private current?: { frame: number; startedAt: number; timer: NodeJS.Timeout };

  /**
   * `clientClock`: milliseconds that count against the client. The session's leaves out the time
   * it was not reading (flow control): a frame whose rest waits unread because of us is not late.
   */
  constructor(
    private readonly ms: number,
    private readonly onExpired: () => void,
    private readonly clientClock: () => number = Date.now,
  ) {}

  /** After each chunk: arms a deadline for a frame just begun, keeps it, or clears it. */
  update(progress: FrameProgress): void {
    if (!progress.midFrame) {
      this.stop();
      return;
    }
    if (this.current?.frame === progress.framesCompleted) return;
    this.stop();
    const startedAt = this.clientClock();
    this.current = { frame: progress.framesCompleted, startedAt, timer: this.arm(this.ms) };
  }

  stop(): void {
    clearTimeout(this.current?.timer);
    this.current = undefined;
  }

  /** Fires once the client has had `ms` of its own time; until then it waits for what is left. */
  private arm(wait: number): NodeJS.Timeout {
    return setTimeout(() => {
      const current = this.current;
      if (!current) return;
      const left = this.ms - (this.clientClock() - current.startedAt);
      if (left > 0) current.timer = this.arm(left);
      else this.onExpired();
    }, wait);
  }
}

/** A session's deadline: counted as `frame_time` in /metrics, and the session failed with it. */
export function sessionFrameDeadline(
  ctx: Pick<SessionContext, 'settings' | 'metrics'>,
  fail: (error: ServiceError) => void,
  clientClock: () => number,
): FrameDeadline {
  const ms = ctx.settings.frameTimeoutMs;
  return new FrameDeadline(
    ms,
    () => {
      ctx.metrics.limitsHit.inc({ limit: 'frame_time' });
      fail(new ServiceError('frame_timeout', `frame not completed within ${ms} ms of its first byte`));
    },
    clientClock,
  );
}
