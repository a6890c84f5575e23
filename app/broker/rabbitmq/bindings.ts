/**
 * The bindings of one instance queue: one per routing key (a user's key, a topic's name) while
 * something on this instance holds it, none otherwise. This is what keeps an instance's queue
 * count constant: a user or a topic costs a binding, not a queue.
 *
 * Each key is a small state machine: `holders` is what is wanted, `bound` what RabbitMQ has. At
 * most one bind or unbind per key is in flight, and when it returns the key is reconciled again, so
 * a release and a re-acquire that come while a bind is on the wire cost nothing more, and the binds
 * and unbinds of one key can never overtake each other. Different keys go out at once, spread over a
 * few channels (rabbitmq-client runs one RPC at a time per channel): a reconnect storm of 20,000
 * users is that many binds in flight, not 20,000 round trips one after another.
 *
 * The queue is exclusive, so its bindings die with the connection. `reset()` (the queue was declared
 * again on a new connection) marks every key unbound and binds again each one still held. While the
 * connection is down nothing is sent: holders are told at once that the broker is unavailable, and
 * the key is bound again at the next reset.
 */
import type { Channel, Connection } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import type { RelayLogger } from './connection-pool';

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface KeyState {
  holders: number;
  /** RabbitMQ has the binding, made in `generation`. */
  bound: boolean;
  generation: number;
  busy: boolean;
  /** The last bind failed in this generation: not retried until the next reset(). */
  failedIn: number | undefined;
  waiters: Waiter[];
}

/** Channels binds are spread over. More adds little: RabbitMQ applies bindings one at a time. */
const CHANNELS = 8;

export class BindingSet {
  private readonly keys = new Map<string, KeyState>();
  private readonly channels: (Promise<Channel> | undefined)[] = new Array<Promise<Channel> | undefined>(
    CHANNELS,
  );
  private nextChannel = 0;
  /** Counts resets: a binding made in an earlier generation is gone with its connection. */
  private generation = 0;
  private open = false;
  /** Every key held at the last reset() has been bound again (or refused): the queue is whole. */
  private whole = false;

  constructor(
    private readonly connection: Connection,
    private readonly queue: string,
    private readonly exchange: string,
    private readonly logger: RelayLogger,
    /** Called when `settled` changes. */
    private readonly onSettledChange: () => void = () => undefined,
  ) {}

  /** Whether every key held when the queue was last (re)declared is bound again. */
  get settled(): boolean {
    return this.whole;
  }

  /** A new connection is coming up: the bindings are gone until the next reset() re-makes them. */
  invalidate(): void {
    if (!this.whole) return;
    this.whole = false;
    this.onSettledChange();
  }

  /** Keys held right now. */
  get size(): number {
    let held = 0;
    for (const state of this.keys.values()) if (state.holders > 0) held += 1;
    return held;
  }

  /** Holds `key`; resolves once the binding is in place (at once if it already is). */
  acquire(key: string): Promise<void> {
    let state = this.keys.get(key);
    if (!state) {
      state = { holders: 0, bound: false, generation: -1, busy: false, failedIn: undefined, waiters: [] };
      this.keys.set(key, state);
    }
    state.holders += 1;
    if (this.isBound(state)) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => state.waiters.push({ resolve, reject }));
    this.reconcile(key, state);
    return done;
  }

  /** Gives `key` back; the last holder's release unbinds it. */
  release(key: string): void {
    const state = this.keys.get(key);
    if (!state || state.holders === 0) return;
    state.holders -= 1;
    this.reconcile(key, state);
  }

  /** The queue is new (first start or a reconnect): nothing is bound; bind all that is held. */
  reset(): void {
    this.generation += 1;
    const generation = this.generation;
    this.open = true;
    this.whole = false;
    this.channels.fill(undefined);
    const rebound: Promise<void>[] = [];
    for (const [key, state] of this.keys) {
      state.bound = false;
      state.failedIn = undefined;
      if (state.holders > 0)
        rebound.push(new Promise((resolve, reject) => state.waiters.push({ resolve, reject })));
      this.reconcile(key, state);
    }
    void Promise.allSettled(rebound).then(() => {
      if (generation !== this.generation || this.whole) return;
      this.whole = true;
      this.onSettledChange();
    });
  }

  /** The queue is going (stop): fail whoever waits, send nothing until reset(). */
  suspend(why: string): void {
    this.open = false;
    this.whole = false;
    for (const [key, state] of this.keys) {
      this.fail(state, new ServiceError('broker_unavailable', `binding '${key}' waits for RabbitMQ: ${why}`));
      if (state.holders === 0 && !state.busy) this.keys.delete(key);
    }
  }

  private isBound(state: KeyState): boolean {
    return state.bound && state.generation === this.generation;
  }

  private reconcile(key: string, state: KeyState): void {
    if (state.busy) return; // the op in flight reconciles again when it returns
    const wanted = state.holders > 0;
    const bound = this.isBound(state);
    if (wanted === bound) {
      if (wanted) for (const waiter of state.waiters.splice(0)) waiter.resolve();
      else this.keys.delete(key);
      return;
    }
    if (!wanted && !state.bound) {
      this.keys.delete(key); // bound on a connection that is gone: nothing to undo
      return;
    }
    if (!this.open || !this.connection.ready) {
      if (wanted) this.fail(state, new ServiceError('broker_unavailable', 'the AMQP connection is down'));
      else this.keys.delete(key);
      return;
    }
    if (wanted && state.failedIn === this.generation) return;
    state.busy = true;
    const generation = this.generation;
    this.apply(wanted ? 'bind' : 'unbind', key)
      .then(
        () => {
          if (generation === this.generation) {
            state.bound = wanted;
            state.generation = generation;
          }
        },
        (err: unknown) => {
          if (generation !== this.generation) return; // the connection went; reset() starts over
          if (wanted) {
            state.failedIn = generation;
            this.logger.warn({ err, queue: this.queue, key }, 'binding failed');
            this.fail(state, new ServiceError('broker_unavailable', `RabbitMQ refused binding '${key}'`));
          } else {
            // Left bound: messages for the key arrive and find no subscriber, which costs a lookup.
            this.logger.warn({ err, queue: this.queue, key }, 'unbinding failed');
            state.bound = false;
          }
        },
      )
      .finally(() => {
        state.busy = false;
        this.reconcile(key, state);
      });
  }

  private fail(state: KeyState, err: ServiceError): void {
    for (const waiter of state.waiters.splice(0)) waiter.reject(err);
  }

  private async apply(op: 'bind' | 'unbind', routingKey: string): Promise<void> {
    const channel = await this.channel();
    const params = { queue: this.queue, exchange: this.exchange, routingKey };
    if (op === 'bind') await channel.queueBind(params);
    else await channel.queueUnbind(params);
  }

  /** The next of the CHANNELS channels, opened (again) if it is missing or was closed by an error. */
  private async channel(): Promise<Channel> {
    const index = this.nextChannel;
    this.nextChannel = (index + 1) % CHANNELS;
    const existing = this.channels[index];
    if (existing) {
      const channel = await existing.catch(() => undefined);
      if (channel?.active) return channel;
      // Someone else is already replacing it: use theirs.
      const current = this.channels[index];
      if (current !== existing && current !== undefined) return current;
    }
    const opening = this.connection.acquire().then((channel) => {
      channel.on('error', (err: unknown) =>
        this.logger.warn({ err, queue: this.queue }, 'binding channel error'),
      );
      return channel;
    });
    this.channels[index] = opening;
    return opening;
  }
}
