/**
 * FRAME_TIMEOUT_MS: a frame must end within that long of the chunk that began it, however its bytes
 * trickle in (a byte every few seconds also keeps heart-beat checks satisfied, so nothing else would
 * ever end such a connection). The deadline belongs to one frame: the next frame gets its own, so a
 * busy stream whose every chunk ends mid-frame is never cut. The parser only says where it is
 * (app/stomp/ keeps no clocks); the session owns this timer and stops it in its one teardown.
 */
export interface FrameProgress {
  /** A frame has begun and not ended. */
  readonly midFrame: boolean;
  /** Frames completed so far: the number of the frame in progress. */
  readonly framesCompleted: number;
}

export class FrameDeadline {
  private current?: { frame: number; timer: NodeJS.Timeout };

  constructor(
    private readonly ms: number,
    private readonly onExpired: () => void,
  ) {}

  /** After each chunk: arms a deadline for a frame just begun, keeps it, or clears it. */
  update(progress: FrameProgress): void {
    if (!progress.midFrame) {
      this.stop();
      return;
    }
    if (this.current?.frame === progress.framesCompleted) return;
    this.stop();
    this.current = { frame: progress.framesCompleted, timer: setTimeout(this.onExpired, this.ms) };
  }

  stop(): void {
    clearTimeout(this.current?.timer);
    this.current = undefined;
  }
}
