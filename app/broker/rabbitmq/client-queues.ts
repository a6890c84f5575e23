/**
 * Client queues (`/queue/<name>` → the durable `stomp-relay.queue.<name>`) as seen over AMQP.
 *
 * Why not the STOMP pool for publishes: RabbitMQ's STOMP plugin declares a `/queue/` destination the
 * first time a connection uses it and remembers that per connection. Once the queue is deleted
 * under the relay (an operator, a policy `expires`, a queue TTL), every later SEND on that pooled
 * connection is routed nowhere and still gets its RECEIPT: the relay would confirm (RECEIPT, 202)
 * messages nobody holds, for every client of the instance, until the connection is recycled. Over
 * AMQP the publish is `mandatory` on a confirm channel: an unroutable message comes back
 * (basic.return, always before its basic.ack), so the queue is declared again and the message
 * published once more; if it comes back again it is refused. What resolves is in the queue.
 *
 * The same reason makes every `/queue/` SUBSCRIBE declare its queue here first: the plugin would
 * not re-declare a queue it believes exists, and its basic.consume on a missing queue fails with
 * NOT_FOUND, which closes the shared pool connection under every other session.
 */
import type { Connection, Envelope } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import type { OutgoingMessage } from '../broker';
import { ConfirmedPublisher, refused, withAmqpTimeout } from './confirmed-publisher';
import { CLIENT_QUEUE_PREFIX, MESSAGE_ID_HEADER, type ClientQueueType } from './wire';

/**
 * The one declaration of a client queue over AMQP. It must agree with what the plugin declares for
 * a SUBSCRIBE or SEND carrying clientQueueHeaders(type) (wire.ts), or RabbitMQ refuses one of them.
 */
export function clientQueueDeclaration(
  queueName: string,
  type: ClientQueueType,
): { queue: string; durable: true; autoDelete: false; exclusive: false; arguments?: Record<string, string> } {
  const declaration = { queue: queueName, durable: true, autoDelete: false, exclusive: false } as const;
  return type === 'classic' ? declaration : { ...declaration, arguments: { 'x-queue-type': type } };
}

export function clientQueueName(name: string): string {
  return `${CLIENT_QUEUE_PREFIX}${name}`;
}

/** AMQP properties a SEND may set on a /queue message (validated by the caller). */
export interface QueueMessageProperties {
  priority?: number;
  /** Per-message TTL in ms (AMQP `expiration`). */
  expiration?: string;
  persistent?: boolean;
  replyTo?: string;
}

export class ClientQueues {
  private readonly publisher: ConfirmedPublisher;

  constructor(
    private readonly connection: Connection,
    private readonly type: ClientQueueType,
  ) {
    this.publisher = new ConfirmedPublisher(connection);
  }

  /** Declares the client queue (idempotent), so that a SUBSCRIBE or a publish finds it. */
  async ensure(queueName: string): Promise<void> {
    this.publisher.assertReady();
    try {
      await withAmqpTimeout(
        this.connection.queueDeclare(clientQueueDeclaration(queueName, this.type)),
        'declare',
      );
    } catch (err: unknown) {
      throw refused('the queue', err);
    }
  }

  /**
   * Publishes `message` (with `applicationHeaders` already filtered by the header policy) to the
   * client queue and resolves once RabbitMQ has confirmed it into that queue.
   */
  async publish(
    queueName: string,
    message: OutgoingMessage,
    applicationHeaders: Record<string, string>,
    properties: QueueMessageProperties = {},
  ): Promise<void> {
    this.publisher.assertReady();
    const { 'content-type': contentType, ...headers } = applicationHeaders;
    const envelope: Envelope = {
      exchange: '',
      routingKey: queueName,
      mandatory: true,
      // Durable queue: persistent unless the sender said otherwise (`persistent: false`).
      durable: properties.persistent !== false,
      contentType,
      priority: properties.priority,
      expiration: properties.expiration,
      replyTo: properties.replyTo,
      timestamp: undefined,
      headers: { ...headers, [MESSAGE_ID_HEADER]: message.id },
    };
    for (let attempt = 1; ; attempt++) {
      if ((await this.publisher.send(envelope, message.body, message.id)) === 'routed') return;
      // Routed nowhere: the queue is gone (deleted, expired). Declare it again, publish once more.
      if (attempt === 2) {
        throw new ServiceError(
          'broker_unavailable',
          'the broker did not take the message: its queue is gone',
        );
      }
      await this.ensure(queueName);
    }
  }

  async close(): Promise<void> {
    await this.publisher.close();
  }
}
