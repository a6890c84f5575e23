/**
 * Raw broker destinations on the relay (destinations/raw-destination.ts; allowed per user or scope
 * by the authorization file): `/amq/queue/<queue>`, an existing queue some AMQP system fills or
 * reads, and `/exchange/<exchange>[/<key>]`.
 *
 * What RabbitMQ's plugin would do with them on a shared pool connection is what the service must
 * not let one client do to the others: a SUBSCRIBE to a queue or exchange that does not exist is
 * NOT_FOUND, which closes the connection under every session on it, and a SEND to `/amq/queue/` of
 * a missing queue is dropped with a RECEIPT. So:
 * - SUBSCRIBE checks over AMQP first, on a channel of its own (a failed passive declare closes the
 *   channel it ran on): the queue must exist (`/amq/queue/`), or the exchange, and for an
 *   `x-queue-name` no queue of that name may exist yet (the plugin declares it exclusive to the
 *   pool connection). Then the plugin subscribes, as RabbitMQ's own STOMP clients would, with
 *   prefetch and acks as for `/queue/` (broker-consumer.ts). An `/amq/queue/` queue deleted later
 *   ends that subscription with an ERROR naming it; it is not the service's to declare again.
 * - SEND goes over AMQP on a confirm channel of its own: to `/amq/queue/` `mandatory`, so a message
 *   for a queue that is not there is refused, not confirmed; to `/exchange/` after checking the
 *   exchange exists (a message its bindings do not route is dropped, as on any exchange).
 */
import { AMQPChannelError, type Connection, type Envelope } from 'rabbitmq-client';
import { printable } from '../../destinations/destination';
import { formatRaw, type RawTarget } from '../../destinations/raw-destination';
import { ServiceError } from '../../errors';
import { allowedHeaderRecord } from '../../messaging/header-policy';
import type { BrokerSubscription, OutgoingMessage, RawSubscribeRequest } from '../broker';
import { BrokerConsumer, type ConsumerSpec } from './broker-consumer';
import { ConfirmedPublisher, refused, withAmqpTimeout } from './confirmed-publisher';
import type { ConnectionPool, RelayLogger } from './connection-pool';
import { DirectSubscription } from './relay-subscriptions';
import { MESSAGE_ID_HEADER } from './wire';

export interface RawDestinationsOptions {
  connection: Connection;
  pool: ConnectionPool;
  /** Highest prefetch-count of any broker subscription (BROKER_PREFETCH). */
  prefetch: number;
  parking: ConsumerSpec['parking'];
  logger: RelayLogger;
}

type Check = { queue: string } | { exchange: string } | { absentQueue: string };

export class RawDestinations {
  private readonly publisher: ConfirmedPublisher;

  constructor(private readonly options: RawDestinationsOptions) {
    this.publisher = new ConfirmedPublisher(options.connection);
  }

  async subscribe(request: RawSubscribeRequest): Promise<BrokerSubscription> {
    const { target } = request;
    const destination = formatRaw(target);
    const queueName = request.brokerHeaders['x-queue-name'];
    const check = (): Promise<void> =>
      target.kind === 'amq-queue'
        ? this.check(destination, { queue: target.queue })
        : this.check(destination, { exchange: target.exchange });
    await check();
    if (queueName !== undefined) await this.check(destination, { absentQueue: queueName });
    const subscription = new DirectSubscription(request, this.options.logger);
    const slot = this.options.pool.leastLoaded();
    subscription.consumer = new BrokerConsumer(slot, {
      destination,
      headers: request.brokerHeaders,
      prefetch: Math.min(Math.max(request.prefetch, 1), this.options.prefetch),
      // An /exchange/ subscription's queue is the plugin's, exclusive and auto-delete.
      ownsQueue: target.kind === 'exchange',
      parking: this.options.parking,
      onMessage: (message) => subscription.onMessage(message),
      prepare: check,
      onRefused: (reason) => subscription.ended(reason),
      whenQueueGone:
        target.kind === 'amq-queue'
          ? () =>
              new ServiceError(
                'bad_destination',
                `the queue of '${printable(destination)}' was deleted on the broker: subscription ended`,
              )
          : undefined,
    });
    await slot.subscribe(subscription.consumer);
    return subscription;
  }

  async publish(target: RawTarget, message: OutgoingMessage): Promise<void> {
    const destination = formatRaw(target);
    if (target.kind === 'exchange') await this.check(destination, { exchange: target.exchange });
    const { 'content-type': contentType, ...headers } = allowedHeaderRecord(
      Object.entries(message.headers),
      'relay',
    );
    const p = message.properties ?? {};
    const envelope: Envelope = {
      exchange: target.kind === 'exchange' ? target.exchange : '',
      routingKey: target.kind === 'exchange' ? target.key : target.queue,
      mandatory: target.kind === 'amq-queue',
      durable: p.persistent !== false,
      contentType,
      priority: p.priority,
      expiration: p.ttlMs === undefined ? undefined : String(p.ttlMs),
      replyTo: p.replyTo,
      headers: { ...headers, [MESSAGE_ID_HEADER]: message.id },
    };
    if ((await this.publisher.send(envelope, message.body, message.id)) === 'returned') {
      throw new ServiceError(
        'bad_destination',
        `the broker did not take the message: '${printable(destination)}' has no queue on the broker`,
      );
    }
  }

  async close(): Promise<void> {
    await this.publisher.close();
  }

  /** A passive declaration on a channel of its own: a refusal closes that channel and nothing else. */
  private async check(destination: string, what: Check): Promise<void> {
    this.publisher.assertReady();
    let found: 'yes' | 'no' | 'exclusive';
    try {
      found = await this.exists(what);
    } catch (err: unknown) {
      throw refused('the subscription', err);
    }
    if ('absentQueue' in what) {
      if (found === 'no') return;
      throw new ServiceError(
        'bad_destination',
        `x-queue-name '${printable(what.absentQueue)}' names a queue that exists already: choose another name, or subscribe to /amq/queue/${printable(what.absentQueue)}`,
      );
    }
    if (found === 'yes') return;
    if (found === 'exclusive') {
      // The plugin's consume would be RESOURCE_LOCKED, which closes the shared pool connection.
      throw new ServiceError(
        'bad_destination',
        `'${printable(destination)}': the queue is exclusive to another connection`,
      );
    }
    const thing = 'exchange' in what ? `exchange '${what.exchange}'` : `queue '${what.queue}'`;
    throw new ServiceError(
      'bad_destination',
      `'${printable(destination)}': the ${printable(thing)} does not exist on the broker`,
    );
  }

  /**
   * Whether the queue or exchange exists: NOT_FOUND is an answer here, and so is RESOURCE_LOCKED
   * (RabbitMQ 4 says so for a queue exclusive to another connection); anything else is an error.
   */
  private async exists(what: Check): Promise<'yes' | 'no' | 'exclusive'> {
    const channel = await withAmqpTimeout(this.options.connection.acquire(), 'channel');
    try {
      if ('exchange' in what) {
        await withAmqpTimeout(channel.exchangeDeclare({ exchange: what.exchange, passive: true }), 'declare');
      } else {
        const queue = 'queue' in what ? what.queue : what.absentQueue;
        await withAmqpTimeout(channel.queueDeclare({ queue, passive: true }), 'declare');
      }
      return 'yes';
    } catch (err: unknown) {
      if (err instanceof AMQPChannelError && err.code === 'NOT_FOUND') return 'no';
      if (err instanceof AMQPChannelError && err.code === 'RESOURCE_LOCKED') return 'exclusive';
      throw err;
    } finally {
      if (channel.active) await channel.close().catch(() => undefined);
    }
  }
}
