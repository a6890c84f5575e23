/**
 * Items that arrive one per event-loop callback, handed on together in the next turn.
 *
 * rabbitmq-client calls a consumer's handler for each delivery in a setImmediate of its own, with
 * the microtask queue drained between them, and the WebSocket transport writes what one turn queued
 * for a client once the microtasks are done (transport/websocket.ts). Handed over as they come, a
 * burst of N topic messages would cost every subscriber N WebSocket messages and N socket writes,
 * and its client N reads, and the socket write is what a fan-out spends most of its time on.
 * Gathered here, the deliveries of one read go out in one turn: one write per subscriber, in the
 * order they came.
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private handedOver: Promise<void> | undefined;

  constructor(
    /** Hands on one item; called in arrival order, all of a turn's items in one turn. */
    private readonly handOn: (item: T) => void,
    /** `handOn` threw for `item`: the items after it are still handed on. */
    private readonly onError: (err: unknown, item: T) => void,
  ) {}

  /** Queues `item`; resolves once it (and the rest of its batch) has been handed on. */
  add(item: T): Promise<void> {
    this.items.push(item);
    this.handedOver ??= new Promise<void>((resolve) => {
      // Scheduled from within rabbitmq-client's own setImmediates, so it runs after all of them.
      setImmediate(() => {
        this.flush();
        resolve();
      });
    });
    return this.handedOver;
  }

  private flush(): void {
    const items = this.items;
    this.items = [];
    this.handedOver = undefined;
    for (const item of items) {
      try {
        this.handOn(item);
      } catch (err: unknown) {
        this.onError(err, item);
      }
    }
  }
}
