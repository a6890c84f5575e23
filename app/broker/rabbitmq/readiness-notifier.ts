/**
 * Tells readiness listeners (the /readyz probe, the drain logic) when the relay's readiness flips,
 * once per flip: the relay re-checks on every connection event, most of which change nothing.
 */
import type { Readiness } from '../broker';
import type { RelayLogger } from './connection-pool';

export class ReadinessNotifier {
  private readonly listeners: ((readiness: Readiness) => void)[] = [];
  private last = false;

  constructor(private readonly logger: RelayLogger) {}

  listen(listener: (readiness: Readiness) => void): void {
    this.listeners.push(listener);
  }

  update(readiness: Readiness): void {
    if (readiness.ready === this.last) return;
    this.last = readiness.ready;
    if (readiness.ready) this.logger.info({}, 'broker relay ready');
    else this.logger.warn({ reason: readiness.reason }, 'broker relay not ready');
    for (const listener of this.listeners) {
      try {
        listener(readiness);
      } catch (err: unknown) {
        this.logger.error({ err }, 'readiness listener failed');
      }
    }
  }
}
