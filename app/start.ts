/**
 * How an instance starts and stops: as a list of parts, each owning what it opens. `start()` starts
 * them in order; when one fails, every part already asked to start (the failing one included, since
 * it may have opened something before failing) is stopped in reverse before the error goes on, so a
 * failed start leaves no socket listening and no broker connection open. `drain()` and `stop()` walk
 * the same list in reverse: the last part started is the first told to drain and the first stopped.
 *
 * Building a part opens nothing; only its `start` does. Anything that merely reads (settings, rule
 * files) is done before the list runs, so a bad file fails before anything is open.
 */

export interface Part {
  /** Names the part in logs: 'broker', 'http listener'. */
  readonly name: string;
  start?(): Promise<void>;
  /**
   * SIGTERM, before any part stops: stop taking new work and finish what was accepted. Called on
   * started parts only, in reverse order, each awaited before the next.
   */
  drain?(): Promise<void>;
  /** Releases what start opened; must cope with a start that failed half-way. */
  stop?(): Promise<void>;
}

export interface PartsLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class Parts {
  /** Parts asked to start, in order; only these are drained and stopped. */
  private readonly started: Part[] = [];
  private drained: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly parts: readonly Part[],
    private readonly logger: PartsLogger,
  ) {}

  /** Starts every part in order; on a failure stops what it started, then rethrows that failure. */
  async start(): Promise<void> {
    for (const part of this.parts) {
      this.started.push(part);
      try {
        await part.start?.();
      } catch (err: unknown) {
        this.logger.info({ part: part.name }, `start-up failed at ${part.name}: stopping what started`);
        // The start failure is what the caller must see; a stop failure on top of it is only logged.
        await this.stop().catch(() => undefined);
        throw err;
      }
    }
  }

  /** Drains the started parts in reverse, once; later calls share the first one's outcome. */
  drain(): Promise<void> {
    this.drained ??= this.inReverse('drain');
    return this.drained;
  }

  /**
   * Drains (if not yet done), then stops the started parts in reverse, once. A part that fails to
   * stop is logged and the rest are still stopped; the first failure is then rethrown.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      // A drain that failed must not leave the broker connections open: stop regardless.
      const drainFailure = await this.drain().then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      await this.inReverse('stop');
      if (drainFailure) throw drainFailure.err;
    })();
    return this.stopped;
  }

  private async inReverse(phase: 'drain' | 'stop'): Promise<void> {
    let failure: { err: unknown } | undefined;
    for (const part of [...this.started].reverse()) {
      try {
        await part[phase]?.();
      } catch (err: unknown) {
        this.logger.error({ err, part: part.name }, `${part.name} failed to ${phase}`);
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}
