/**
 * One of the instance's own queues (`stomp-relay.<instance>.users`, `….topics`): exclusive to the
 * instance's AMQP connection, consumed by it, bound to one exchange with one binding per key held
 * (bindings.ts). Exclusive, so RabbitMQ deletes it, bindings and all, the moment the connection
 * goes, whether the instance stopped, crashed or lost the network: nothing is left behind, and a
 * queue cannot outlive the instance to collect messages nobody reads. Transient and exclusive is
 * also what RabbitMQ 4.3 still permits by default (it denies transient non-exclusive queues).
 *
 * rabbitmq-client's consumer declares the queue again on every new connection; each time it is
 * ready the binding set binds again every key still held.
 *
 * A second instance started with the same INSTANCE_ID would otherwise share the queues and take
 * half of the first one's messages. Exclusivity turns that into RESOURCE_LOCKED on the declaration,
 * which start() reports as such.
 */
import type { AsyncMessage, Connection, Consumer } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import { BindingSet } from './bindings';
import type { RelayLogger } from './connection-pool';
import { TurnBatch } from './turn-batch';

export interface InstanceQueueOptions {
  name: string;
  /** The exchange its bindings are on (declared by the topology). */
  exchange: string;
  logger: RelayLogger;
  /** Handles one message; what arrived in one read is handed over in one turn (turn-batch.ts). */
  onMessage(message: AsyncMessage): void;
  /** `ready` changed. */
  onReadyChange(): void;
}

/** How long start() waits for the consumer to be ready after the queue is declared. */
const READY_TIMEOUT_MS = 10_000;

export class InstanceQueue {
  readonly bindings: BindingSet;
  private consumer: Consumer | undefined;
  private readonly arrivals: TurnBatch<AsyncMessage>;

  constructor(
    private readonly connection: Connection,
    private readonly options: InstanceQueueOptions,
  ) {
    this.bindings = new BindingSet(connection, options.name, options.exchange, options.logger, () =>
      options.onReadyChange(),
    );
    this.arrivals = new TurnBatch(
      (message) => options.onMessage(message),
      // One message that cannot be handed over must not cost the others of its batch theirs.
      (err) => options.logger.error({ err, queue: options.name }, 'instance queue message not handed over'),
    );
    // A new connection: queue and bindings are gone until the consumer re-declares and we re-bind.
    connection.on('connection', () => this.bindings.invalidate());
  }

  /** Declared on the current connection, with every binding held re-made. */
  get ready(): boolean {
    return this.connection.ready && this.bindings.settled;
  }

  get name(): string {
    return this.options.name;
  }

  async start(instanceId: string): Promise<void> {
    const { name, logger } = this.options;
    const declaration = { queue: name, exclusive: true, durable: false, autoDelete: false };
    try {
      await this.connection.queueDeclare(declaration);
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      if (code === 'RESOURCE_LOCKED') {
        throw new ServiceError(
          'broker_unavailable',
          `INSTANCE_ID '${instanceId}' is in use: another instance holds the queue '${name}'; give each instance its own INSTANCE_ID`,
          { cause: err },
        );
      }
      throw new ServiceError(
        'broker_unavailable',
        `cannot declare the queue '${name}': ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    const consumer = this.connection.createConsumer(
      {
        queue: name,
        queueOptions: declaration,
        // Our queue alone: nobody else may consume it either.
        exclusive: true,
        // Issue 18.5: RabbitMQ counts a message delivered once it is sent. An ack would buy nothing:
        // the queue is exclusive, so what this instance had not acknowledged when it died dies with
        // it either way (never redelivered elsewhere); durable user pushes have the inbox. Without
        // acks the instance sends no frame per message, and RabbitMQ does none of their work (its
        // one-queue ceiling here: 32,880 deliveries/s without acks, 15,979 with them, same run).
        // What RabbitMQ sends ahead stays bounded: rabbitmq-client reads the socket as fast as the
        // deliveries are handed over, so an instance that falls behind leaves the rest in TCP buffers
        // and then in the queue, as prefetch did.
        noAck: true,
      },
      (message) => this.arrivals.add(message),
    );
    this.consumer = consumer;
    consumer.on('error', (err: unknown) =>
      logger.warn({ err, queue: name }, 'instance queue consumer error'),
    );
    consumer.on('ready', () => this.bindings.reset());
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ServiceError('broker_unavailable', `the consumer of '${name}' was not ready in time`));
      }, READY_TIMEOUT_MS);
      consumer.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.bindings.suspend('the instance is stopping');
    await this.consumer?.close();
  }
}
