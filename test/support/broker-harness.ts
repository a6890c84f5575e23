/**
 * The harness behind broker-suite.ts: the brokers of one service under test, subscriptions that
 * record what they receive, and the small builders the tests share. Everything it creates it
 * closes in tearDown(), so a run against a shared RabbitMQ leaves nothing behind but what the
 * implementation itself keeps.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import type { AckMode, Broker, BrokerSubscription, Delivery, OutgoingMessage } from '../../app/broker/broker';
import { createPresence } from '../../app/broker/create-broker';
import { silentLogger } from '../../app/observability/logger';
import type { PresenceDirectory, SessionInfo } from '../../app/presence/directory';
import type { MessageTarget } from '../../app/destinations/destination';
import { isServiceError, type ErrorCode } from '../../app/errors';

/** How long a delivery may take before a test fails (generous: RabbitMQ in CI can be slow). */
export const DELIVERY_TIMEOUT_MS = 5000;
/** How long "nothing more arrives" is watched, after a barrier message on the same path arrived. */
export const QUIET_MS = 300;

/** A name no other test or run uses: letters, digits and '-' only, valid in every destination. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export const topic = (name: string): MessageTarget => ({ kind: 'topic', name });
export const queue = (name: string): MessageTarget => ({ kind: 'queue', name });
export const userTarget = (user: string, name: string, type: 'queue' | 'topic' = 'queue'): MessageTarget => ({
  kind: 'user',
  user,
  type,
  name,
});

export function message(
  id: string,
  body: Buffer | string = id,
  headers: Record<string, string> = {},
): OutgoingMessage {
  return { id, headers, body: Buffer.isBuffer(body) ? body : Buffer.from(body) };
}

export function sessionInfo(
  sessionId: string,
  user: string,
  connectedAt: string,
  instance: string,
): SessionInfo {
  return {
    sessionId,
    user,
    instance,
    transport: 'websocket',
    connectedAt,
    subscriptions: [{ id: 'sub-0', destination: '/user/queue/greetings' }],
  };
}

/** Awaits a rejection and checks it is a ServiceError with `code`. */
export async function expectServiceError(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  let outcome: unknown;
  try {
    await promise;
    outcome = 'resolved';
  } catch (error: unknown) {
    outcome = error;
  }
  expect(outcome, `expected a ServiceError '${code}'`).to.be.instanceOf(Error);
  expect(isServiceError(outcome), `expected a ServiceError, got ${String(outcome)}`).to.equal(true);
  if (isServiceError(outcome)) {
    expect(outcome.code).to.equal(code);
    expect(outcome.message, 'a readable message').to.have.length.greaterThan(10);
  }
}

export interface SubscribeOptions {
  ackMode?: AckMode;
  prefetch?: number;
  /** Defaults to the target's user for user targets, else a fixed test user. */
  user?: string;
  /** Runs after the delivery is recorded (to throw, or to ack from inside the callback). */
  onDeliver?: (delivery: Delivery) => void;
}

/** A subscription that records its deliveries in arrival order. */
export interface Subscriber {
  readonly subscription: BrokerSubscription;
  readonly got: Delivery[];
  ids(): string[];
  /** The latest delivery of message `id` (to ack or nack it). */
  last(id: string): Delivery;
}

/** Subscribes to `target` as a session would and records what arrives, in arrival order. */
export async function recordDeliveries(
  broker: Broker,
  target: MessageTarget,
  options: SubscribeOptions = {},
): Promise<Subscriber> {
  const got: Delivery[] = [];
  const subscription = await broker.subscribe({
    sessionId: unique('session'),
    user: options.user ?? (target.kind === 'user' ? target.user : 'suite-user'),
    target,
    ackMode: options.ackMode ?? 'auto',
    prefetch: options.prefetch ?? 10,
    deliver(delivery) {
      got.push(delivery);
      options.onDeliver?.(delivery);
    },
  });
  return {
    subscription,
    got,
    ids: () => got.map((delivery) => delivery.messageId),
    last(id) {
      const found = got.filter((delivery) => delivery.messageId === id).pop();
      if (!found) throw new Error(`message ${id} was not delivered`);
      return found;
    },
  };
}

export class BrokerHarness {
  brokers: Broker[] = [];
  /** Beside each broker, its presence directory, as server.ts composes one (create-broker.ts). */
  presences: PresenceDirectory[] = [];
  private subscribers: { subscriber: Subscriber; broker: Broker }[] = [];
  private readonly stopped = new Set<Broker>();

  async setUp(makeBrokers: () => Promise<Broker[]>): Promise<void> {
    this.brokers = await makeBrokers();
    expect(this.brokers, 'makeBroker returns at least one broker').to.have.length.greaterThan(0);
    this.subscribers = [];
    this.stopped.clear();
    for (const broker of this.brokers) await broker.start();
    this.presences = this.brokers.map((broker) =>
      createPresence(broker, { instanceId: unique('presence'), announceMs: 500, logger: silentLogger }),
    );
    for (const presence of this.presences) await presence.start();
  }

  async tearDown(): Promise<void> {
    const failures: unknown[] = [];
    for (const { subscriber, broker } of this.subscribers) {
      if (this.stopped.has(broker)) continue;
      await subscriber.subscription.close().catch((error: unknown) => failures.push(error));
    }
    for (const presence of this.presences)
      await presence.stop().catch((error: unknown) => failures.push(error));
    for (const broker of this.brokers) {
      if (!this.stopped.has(broker)) await broker.stop().catch((error: unknown) => failures.push(error));
    }
    this.subscribers = [];
    this.brokers = [];
    this.presences = [];
    if (failures.length > 0) throw failures[0];
  }

  /** Instance `index` of the service, wrapping around: with one broker every index is that one. */
  at(index: number): Broker {
    return this.brokers[index % this.brokers.length];
  }

  /** The presence directory beside instance `index`, wrapping around like at(). */
  presenceAt(index: number): PresenceDirectory {
    return this.presences[index % this.presences.length];
  }

  /** The instance tests publish from: the last, so with several it differs from subscriber 0's. */
  get publisher(): Broker {
    return this.brokers[this.brokers.length - 1];
  }

  get size(): number {
    return this.brokers.length;
  }

  async stop(index: number): Promise<void> {
    const broker = this.at(index);
    await this.presenceAt(index).stop();
    await broker.stop();
    this.stopped.add(broker);
  }

  async subscribe(index: number, target: MessageTarget, options: SubscribeOptions = {}): Promise<Subscriber> {
    const broker = this.at(index);
    const subscriber = await recordDeliveries(broker, target, options);
    this.subscribers.push({ subscriber, broker });
    return subscriber;
  }

  /** Publishes each message in turn from the publishing instance (awaited: order is kept). */
  async publish(target: MessageTarget, ...messages: (OutgoingMessage | string)[]): Promise<void> {
    for (const item of messages) {
      await this.publisher.publish(target, typeof item === 'string' ? message(item) : item);
    }
  }
}

/** Total deliveries over several subscribers. */
export function total(subscribers: Subscriber[]): number {
  return subscribers.reduce((sum, subscriber) => sum + subscriber.got.length, 0);
}
