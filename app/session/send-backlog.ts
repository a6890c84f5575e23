/**
 * Spring's rule: a client that cannot keep up is cut off rather than buffered without bound. Past
 * SEND_BUFFER_LIMIT_BYTES waiting in the socket, or anything waiting for longer than
 * SEND_TIME_LIMIT_MS, the session is told its client is too slow.
 */
import type { Settings } from '../../config/settings';
import { ServiceError } from '../errors';
import type { ClientSocket } from '../transport/transport';

export type SendLimits = Pick<Settings, 'sendBufferLimitBytes' | 'sendTimeLimitMs'>;

export class SendBacklog {
  private behindSince = 0;
  /** Runs only while the client is behind: an idle session costs no timer for this. */
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly socket: ClientSocket,
    private readonly limits: SendLimits,
    /** False once the session no longer delivers (nothing more to watch). */
    private readonly active: () => boolean,
    private readonly tooSlow: (error: ServiceError) => void,
  ) {}

  /** Looks at what waits in the socket now; called after every MESSAGE written. */
  check(): void {
    if (!this.active()) return;
    const buffered = this.socket.bufferedAmount();
    const s = this.limits;
    if (buffered === 0) {
      this.behindSince = 0;
      this.stop();
      return;
    }
    if (this.behindSince === 0) this.behindSince = Date.now();
    // Nothing may be written for a while: keep looking until the buffer drains or the limit hits.
    this.timer ??= setInterval(() => this.check(), Math.min(1000, s.sendTimeLimitMs));
    const behindFor = Date.now() - this.behindSince;
    if (buffered > s.sendBufferLimitBytes || behindFor > s.sendTimeLimitMs) {
      this.tooSlow(
        new ServiceError(
          'slow_consumer',
          `client too slow: ${buffered} bytes waiting for ${behindFor} ms (limits ${s.sendBufferLimitBytes} bytes, ${s.sendTimeLimitMs} ms)`,
        ),
      );
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
