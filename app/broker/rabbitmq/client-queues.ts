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
import { AMQPChannelError } from 'rabbitmq-client';
import type { Connection, Envelope, Publisher, ReturnedMessage } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import type { OutgoingMessage } from '../broker';
import { CLIENT_QUEUE_PREFIX, MESSAGE_ID_HEADER, type ClientQueueType } from './wire';

/** How long a publish or declaration may wait for the AMQP connection before it is refused. */
const AMQP_WAIT_MS = 5_000;

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
  private publisher: Publisher | undefined;
  /** Message ids whose last publish came back unrouted (filled by basic.return, read after the ack). */
  private readonly returned = new Set<string>();

  constructor(
    private readonly connection: Connection,
    private readonly type: ClientQueueType,
  ) {}

  /** Declares the client queue (idempotent), so that a SUBSCRIBE or a publish finds it. */
  async ensure(queueName: string): Promise<void> {
    this.assertReady();
    try {
      await withTimeout(
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
    this.assertReady();
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
      this.returned.delete(message.id);
      try {
        await withTimeout(this.channel().send(envelope, message.body), 'publish');
      } catch (err: unknown) {
        throw refused('the message', err);
      }
      // rabbitmq-client emits basic.return from a setImmediate queued before the ack resolved
      // this publish: one more turn and it has been heard.
      await new Promise((resolve) => setImmediate(resolve));
      if (!this.returned.delete(message.id)) return;
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
    const publisher = this.publisher;
    this.publisher = undefined;
    await publisher?.close().catch(() => undefined);
  }

  private channel(): Publisher {
    if (this.publisher) return this.publisher;
    const publisher = this.connection.createPublisher({ confirm: true, maxAttempts: 1 });
    // The publisher re-emits its channel's basic.return (its onReturn option is not wired up).
    publisher.on('basic.return', (returned: ReturnedMessage) => {
      const id: unknown = returned.headers?.[MESSAGE_ID_HEADER];
      if (typeof id === 'string') this.returned.add(id);
    });
    this.publisher = publisher;
    return publisher;
  }

  private assertReady(): void {
    if (!this.connection.ready) {
      throw new ServiceError('broker_unavailable', 'the AMQP connection to the broker is not up');
    }
  }
}

/** AMQP channel errors that are RabbitMQ refusing the request, not the connection failing. */
const REFUSALS = new Set(['PRECONDITION_FAILED', 'NOT_FOUND', 'ACCESS_REFUSED', 'RESOURCE_LOCKED']);

/**
 * What a client is told when RabbitMQ refuses: a channel error (the queue exists with other
 * arguments, access refused ...) is that request's fault and reaches only its client, by its AMQP
 * code alone: RabbitMQ's text names internal queues. Anything else means the broker is away.
 */
function refused(what: string, err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  if (err instanceof AMQPChannelError && REFUSALS.has(err.code)) {
    const hint =
      err.code === 'PRECONDITION_FAILED' ? ': the queue exists on the broker with other settings' : '';
    return new ServiceError('bad_destination', `the broker refused ${what} (${err.code})${hint}`, {
      cause: err,
    });
  }
  const why = err instanceof AMQPChannelError ? err.code : 'no answer';
  return new ServiceError('broker_unavailable', `the broker did not take ${what} (${why})`, { cause: err });
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ServiceError('broker_unavailable', `no AMQP ${what} confirmation within ${AMQP_WAIT_MS} ms`),
        ),
      AMQP_WAIT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
