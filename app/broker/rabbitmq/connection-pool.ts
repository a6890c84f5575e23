/**
 * A fixed number of STOMP connections to RabbitMQ, shared by every session of the instance. The
 * count is set once (BROKER_POOL_SIZE) and never grows with sessions or subscriptions: client
 * subscriptions are multiplexed onto these connections as broker subscriptions (see
 * rabbit-relay-broker.ts for the mapping).
 *
 * Each slot keeps the broker subscriptions that live on it. When its connection is lost the slot
 * reconnects with exponential backoff and full jitter (app/backoff.ts), moving on to the next failover
 * address each time, and re-sends every one of its SUBSCRIBE frames before it counts as up again,
 * so sessions keep receiving without doing anything themselves (what rabbitmq-client's consumers
 * do with their declarations). Delivery tags do not survive a connection, so a slot has a
 * `generation`: an ACK is only ever sent on the connection that delivered the message.
 */
import { ServiceError } from '../../errors';
import { header, type Frame } from '../../stomp/frame';
import { retryDelay } from '../../backoff';
import type { StompAddress } from './broker-url';
import { StompConnection } from './stomp-connection';

export interface RelayLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Something that owns one broker subscription (one SUBSCRIBE id) on a slot. */
export interface SlotSubscription {
  readonly id: string;
  /** The SUBSCRIBE frame, sent when the subscription is added and again after every reconnect. */
  subscribeFrame(): Frame;
  onMessage(message: Frame): void;
  /** The connection that carried the subscription is gone; its delivery tags are void. */
  onConnectionLost(): void;
  /**
   * Runs before the SUBSCRIBE is sent again (after a reconnect or a broker cancel): declares what
   * the broker may have lost, over AMQP, where a refusal costs nothing shared.
   */
  prepare?(): Promise<void>;
  /**
   * The broker cancelled this subscription (its queue was deleted). Its tags are void. Returns
   * true when it should be subscribed again.
   */
  onCancelled?(): boolean;
  /** The broker refused this subscription when it was restored; it has been dropped from the slot. */
  onRefused?(reason: ServiceError): void;
}

/** The broker's own word for why it refused a frame (`not_found` ...), when an ERROR said so. */
export function brokerRefusal(err: unknown): string | undefined {
  if (!(err instanceof ServiceError)) return undefined;
  const detail = err.detail as { brokerMessage?: unknown } | undefined;
  return typeof detail?.brokerMessage === 'string' ? detail.brokerMessage : undefined;
}

export interface PoolOptions {
  addresses: StompAddress[];
  size: number;
  heartbeatMs: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  logger: RelayLogger;
  /** A slot came back after losing its connection (for metrics). */
  onReconnect: () => void;
  /** Any slot went up or down. */
  onChange: () => void;
  random?: () => number;
}

type SlotState = 'connecting' | 'up' | 'down' | 'stopped';

export class PoolSlot {
  state: SlotState = 'connecting';
  /** Increases with every new connection; delivery tags belong to one generation. */
  generation = 0;
  lastError: string | undefined;
  readonly subscriptions = new Map<string, SlotSubscription>();
  private connection: StompConnection | undefined;
  private addressIndex: number;
  private attempt = 0;
  private everUp = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private firstAttempt: Promise<void> | undefined;

  constructor(
    readonly index: number,
    private readonly options: PoolOptions,
  ) {
    this.addressIndex = index % options.addresses.length;
  }

  get address(): StompAddress {
    return this.options.addresses[this.addressIndex];
  }

  /** The first connection attempt; rejects with its error (the slot keeps retrying regardless). */
  start(): Promise<void> {
    this.firstAttempt ??= this.connect();
    return this.firstAttempt;
  }

  /**
   * Sends on the current connection. With `generation`, only if the connection is still that one
   * (else rejects: what the frame refers to died with the old connection).
   */
  send(out: Frame, options: { receipt?: boolean; generation?: number } = {}): Promise<void> {
    const connection = this.connection;
    if (this.state !== 'up' || !connection) return Promise.reject(this.unavailable());
    if (options.generation !== undefined && options.generation !== this.generation) {
      return Promise.reject(new ServiceError('broker_unavailable', 'the broker connection was replaced'));
    }
    return connection.send(out, options);
  }

  /** Adds the subscription and subscribes on the broker; resolves on the broker's receipt. */
  async subscribe(subscription: SlotSubscription): Promise<void> {
    if (this.state !== 'up') throw this.unavailable();
    this.subscriptions.set(subscription.id, subscription);
    try {
      await this.send(subscription.subscribeFrame(), { receipt: true });
    } catch (err: unknown) {
      // Not subscribed (refused, or the connection went): forget it, so a reconnect does not
      // re-create a subscription whose caller was told it failed.
      this.subscriptions.delete(subscription.id);
      const why = brokerRefusal(err);
      // The client hears what the broker objected to, not the broker's address (issue 16.2).
      if (why !== undefined) {
        throw new ServiceError('bad_destination', `the broker refused the subscription: ${why}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * Unsubscribes on the broker (when connected) and forgets the subscription once the broker has
   * confirmed, so MESSAGE frames that were already on their way are still routed to it.
   */
  async unsubscribe(subscription: SlotSubscription, unsubscribeFrame: Frame): Promise<void> {
    if (this.subscriptions.get(subscription.id) !== subscription) return;
    try {
      if (this.state === 'up') await this.send(unsubscribeFrame, { receipt: true });
    } catch {
      // The connection died: the broker dropped the subscription with it; nothing to undo.
    } finally {
      this.subscriptions.delete(subscription.id);
    }
  }

  stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.retryTimer);
    const connection = this.connection;
    this.connection = undefined;
    this.subscriptions.clear();
    return connection ? connection.close() : Promise.resolve();
  }

  unavailable(): ServiceError {
    return new ServiceError(
      'broker_unavailable',
      `broker connection ${this.index + 1}/${this.options.size} is not up${this.lastError ? `: ${this.lastError}` : ''}`,
    );
  }

  private async connect(): Promise<void> {
    if (this.state === 'stopped') return;
    const address = this.address;
    let connection: StompConnection;
    try {
      connection = await StompConnection.open(address, {
        heartbeatMs: this.options.heartbeatMs,
        connectTimeoutMs: this.options.connectTimeoutMs,
      });
    } catch (err: unknown) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.retry();
      throw err;
    }
    if (this.isStopped()) {
      void connection.close();
      return;
    }
    this.generation++;
    this.connection = connection;
    connection.onMessage = (message) => this.toSubscription(message);
    connection.onCancel = (id) => this.cancelled(id, connection);
    connection.onClose((reason) => this.lost(connection, reason));
    // Re-establish everything that lived here before anyone may use the slot again. If this fails
    // the connection is closed, and lost() has already scheduled the next attempt.
    await this.restore(connection);
    if (connection.closed || this.isStopped()) return;
    this.attempt = 0;
    this.lastError = undefined;
    this.state = 'up';
    if (this.everUp) {
      this.options.logger.info(
        { broker: address.label, slot: this.index, subscriptions: this.subscriptions.size },
        'broker connection re-established; subscriptions restored',
      );
      this.options.onReconnect();
    }
    this.everUp = true;
    this.options.onChange();
  }

  /**
   * Sends every SUBSCRIBE of this slot again. The plugin handles them in order and closes the
   * connection at the first it refuses: that one (the first that failed, all before it having
   * succeeded) is dropped and its owner told, so the next attempt does not fail on it again and
   * one bad subscription cannot keep the shared connection down for everyone (issue 11.15).
   */
  private async restore(connection: StompConnection): Promise<void> {
    const subscriptions = [...this.subscriptions.values()];
    await Promise.all(
      subscriptions.map((s) =>
        s.prepare?.().catch((err: unknown) => {
          this.options.logger.warn({ err, slot: this.index }, 'could not prepare a subscription');
        }),
      ),
    );
    const results = await Promise.allSettled(
      subscriptions.map((s) => connection.send(s.subscribeFrame(), { receipt: true })),
    );
    const first = results.findIndex((r) => r.status === 'rejected');
    if (first === -1) return;
    const failed = results[first];
    const why = failed.status === 'rejected' ? brokerRefusal(failed.reason) : undefined;
    if (why === undefined) return;
    const culprit = subscriptions[first];
    this.subscriptions.delete(culprit.id);
    this.options.logger.warn(
      { slot: this.index, subscription: culprit.id, reason: why },
      'the broker refused a subscription when it was restored; dropped it',
    );
    culprit.onRefused?.(new ServiceError('bad_destination', `the broker refused the subscription: ${why}`));
  }

  /** The broker cancelled a subscription (queue deleted): subscribe again once it is declared. */
  private cancelled(id: string, connection: StompConnection): void {
    const subscription = this.subscriptions.get(id);
    if (!subscription) return;
    if (subscription.onCancelled?.() !== true) {
      // Not to be subscribed again: the broker has dropped it already, so no reconnect restores it.
      this.subscriptions.delete(id);
      return;
    }
    const generation = this.generation;
    void (async () => {
      try {
        await subscription.prepare?.();
        if (this.connection !== connection || this.subscriptions.get(id) !== subscription) return;
        await this.send(subscription.subscribeFrame(), { receipt: true, generation });
        this.options.logger.info({ slot: this.index, subscription: id }, 'cancelled subscription restored');
      } catch (err: unknown) {
        this.options.logger.warn(
          { err, slot: this.index, subscription: id },
          'cancelled subscription not restored',
        );
      }
    })();
  }

  /** A method, not a comparison, so that TypeScript does not narrow state across awaits. */
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private lost(connection: StompConnection, reason: ServiceError): void {
    if (this.connection !== connection || this.state === 'stopped') return;
    this.connection = undefined;
    this.lastError = reason.message;
    const wasUp = this.state === 'up';
    this.state = 'down';
    for (const subscription of this.subscriptions.values()) subscription.onConnectionLost();
    this.options.logger.warn(
      { broker: connection.address.label, slot: this.index, reason: reason.message },
      'broker connection lost; reconnecting',
    );
    if (wasUp) this.options.onChange();
    this.retry();
  }

  private retry(): void {
    if (this.state === 'stopped') return;
    this.state = 'down';
    this.addressIndex = (this.addressIndex + 1) % this.options.addresses.length;
    const delay = retryDelay(
      this.attempt++,
      { baseMs: this.options.reconnectBaseMs, maxMs: this.options.reconnectMaxMs },
      this.options.random,
    );
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.state = 'connecting';
      this.connect().catch(() => undefined); // failures are recorded in lastError and retried
    }, delay);
  }

  /** A MESSAGE to the slot subscription its `subscription` header names. */
  private toSubscription(message: Frame): void {
    const id = header(message, 'subscription');
    const subscription = id === undefined ? undefined : this.subscriptions.get(id);
    subscription?.onMessage(message);
  }
}

export class ConnectionPool {
  readonly slots: PoolSlot[];
  private nextSlot = 0;

  constructor(options: PoolOptions) {
    if (options.addresses.length === 0) throw new RangeError('the pool needs at least one broker address');
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError('pool size must be >= 1');
    this.slots = Array.from({ length: options.size }, (_, i) => new PoolSlot(i, options));
  }

  /** Resolves once at least one connection is up; rejects (and stops) if none could connect at all. */
  async start(): Promise<void> {
    const results = await Promise.allSettled(this.slots.map((slot) => slot.start()));
    if (results.some((r) => r.status === 'fulfilled') && this.slots.some((s) => s.state === 'up')) return;
    const reasons = [...new Set(this.slots.map((s) => s.lastError ?? 'unknown error'))];
    await this.stop();
    throw new ServiceError('broker_unavailable', `cannot reach the broker: ${reasons.join('; ')}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.stop()));
  }

  get upCount(): number {
    return this.slots.filter((s) => s.state === 'up').length;
  }

  /** Why the pool is not fully up, or undefined when it is. */
  downReason(): string | undefined {
    const down = this.slots.find((s) => s.state !== 'up');
    if (!down) return undefined;
    return `broker connection ${down.index + 1}/${this.slots.length} to ${down.address.label} is ${down.state}${down.lastError ? `: ${down.lastError}` : ''}`;
  }

  /** The slot for a keyed subscription: the same one for the same key while it is up. */
  slotFor(key: string): PoolSlot {
    let hash = 0;
    for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) >>> 0;
    const preferred = this.slots[hash % this.slots.length];
    return preferred.state === 'up' ? preferred : this.anyUp();
  }

  /** The up slot carrying the fewest subscriptions. */
  leastLoaded(): PoolSlot {
    const up = this.slots.filter((s) => s.state === 'up');
    if (up.length === 0) throw this.unavailable();
    return up.reduce((a, b) => (b.subscriptions.size < a.subscriptions.size ? b : a));
  }

  /** Round-robin over the up slots, for publishes. */
  anyUp(): PoolSlot {
    for (let i = 0; i < this.slots.length; i++) {
      const slot = this.slots[(this.nextSlot + i) % this.slots.length];
      if (slot.state === 'up') {
        this.nextSlot = (slot.index + 1) % this.slots.length;
        return slot;
      }
    }
    throw this.unavailable();
  }

  private unavailable(): ServiceError {
    return new ServiceError('broker_unavailable', this.downReason() ?? 'no broker connection is up');
  }
}
