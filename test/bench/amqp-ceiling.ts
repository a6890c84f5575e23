/**
 * The consumer side of the physical ceiling: what RabbitMQ itself routes on this machine for
 * one-to-one traffic, with no relay. One AMQP connection, one channel, consuming either one queue
 * bound to a direct exchange once per user key, or one queue per key (the relay's topology today).
 * Queues are exclusive (they go with the connection), named `<exchange>.all` or `<exchange>.<key>`;
 * the exchange is deleted on stop. The
 * publisher is the load generator's `amqp-bare` plan (publishers.ts), in another process.
 */
import { Connection, type Channel } from 'rabbitmq-client';
import type { Stats } from './stats';

export interface CeilingConsumerArgs {
  url: string;
  exchange: string;
  keyPrefix: string;
  keyCount: number;
  topology: 'one-queue' | 'queue-per-key';
  /** Acknowledge every delivery (basic.ack, one by one) or consume with no-ack. */
  ack: boolean;
  /** Unacknowledged deliveries the consumer may hold (basic.qos), when acking. */
  prefetch: number;
}

export class CeilingConsumer {
  private constructor(
    private readonly connection: Connection,
    private readonly channel: Channel,
    private readonly exchange: string,
  ) {}

  static async start(args: CeilingConsumerArgs, stats: Stats): Promise<CeilingConsumer> {
    const connection = new Connection({
      url: args.url,
      connectionName: 'stomp-relay bench ceiling',
      noDelay: true,
    });
    try {
      const ch = await connection.acquire();
      await ch.exchangeDeclare({ exchange: args.exchange, type: 'direct', autoDelete: true });
      const keys = Array.from({ length: args.keyCount }, (_, k) => `${args.keyPrefix}${k}`);
      const queues: string[] = [];
      if (args.topology === 'one-queue') {
        const { queue } = await ch.queueDeclare({ queue: `${args.exchange}.all`, exclusive: true });
        await Promise.all(
          keys.map((routingKey) => ch.queueBind({ queue, exchange: args.exchange, routingKey })),
        );
        queues.push(queue);
      } else {
        for (const routingKey of keys) {
          const { queue } = await ch.queueDeclare({
            queue: `${args.exchange}.${routingKey}`,
            exclusive: true,
          });
          await ch.queueBind({ queue, exchange: args.exchange, routingKey });
          queues.push(queue);
        }
      }
      if (args.ack) await ch.basicQos({ prefetchCount: args.prefetch });
      for (const queue of queues) {
        await ch.basicConsume({ queue, noAck: !args.ack }, (msg) => {
          stats.onBody(msg.body as Buffer, 0);
          if (args.ack) ch.basicAck({ deliveryTag: msg.deliveryTag });
        });
      }
      return new CeilingConsumer(connection, ch, args.exchange);
    } catch (err: unknown) {
      await connection.close();
      throw err;
    }
  }

  async stop(): Promise<void> {
    try {
      await this.channel.exchangeDelete({ exchange: this.exchange });
      await this.channel.close();
    } finally {
      await this.connection.close();
    }
  }
}
