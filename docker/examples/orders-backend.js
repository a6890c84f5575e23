#!/usr/bin/env node
/**
 * Example backend service "orders", in plain Node with rabbitmq-client (the contract is in README,
 * "For backend developers"). A browser SENDs to /app/orders/<anything>; stomp-relay publishes it to
 * the topic exchange `stomp-relay.app` with routing key `orders.<anything>`; this service consumes
 * it and answers the sender on /user/queue/orders by publishing to the direct exchange
 * `stomp-relay.user` with the routing key stomp-relay gave it in `x-relay-user-key`.
 *
 *   AMQP_URL=amqp://guest:guest@127.0.0.1:5672 node docker/examples/orders-backend.js
 *
 * The queue is auto-delete: it exists only while a backend consumes it, so when no orders backend
 * runs, stomp-relay's mandatory publish is returned and the sender gets an ERROR instead of waiting
 * for a reply that never comes. Several copies of this script share the queue (competing consumers).
 */
const { randomUUID } = require('node:crypto');
const { Connection } = require('rabbitmq-client');

const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672';
const QUEUE = process.env.ORDERS_QUEUE || 'orders-backend';
const APP_EXCHANGE = 'stomp-relay.app';
const USER_EXCHANGE = 'stomp-relay.user';

const rabbit = new Connection({ url: AMQP_URL, connectionName: 'orders-backend (example)' });
rabbit.on('error', (err) => console.error('orders-backend: connection error:', err.message));

// mandatory: a reply to a user with no live session anywhere comes back instead of vanishing.
const replies = rabbit.createPublisher({ confirm: true });
replies.on('basic.return', (msg) =>
  console.log(`orders-backend: reply ${msg.messageId} not delivered: user offline`),
);

const consumer = rabbit.createConsumer(
  {
    queue: QUEUE,
    queueOptions: { durable: false, autoDelete: true },
    // Declared by stomp-relay too; declaring with the same arguments is harmless.
    exchanges: [{ exchange: APP_EXCHANGE, type: 'topic', durable: true }],
    queueBindings: [{ exchange: APP_EXCHANGE, queue: QUEUE, routingKey: 'orders.#' }],
    qos: { prefetchCount: 10 },
  },
  async (msg) => {
    const h = msg.headers || {};
    const request = Buffer.isBuffer(msg.body) ? msg.body.toString('utf8') : JSON.stringify(msg.body);
    let payload;
    try {
      payload = JSON.parse(request);
    } catch {
      payload = request;
    }
    console.log(
      `orders-backend: ${h['x-relay-destination']} from ${h['x-relay-user']} (session ${h['x-relay-session']})`,
    );
    const reply = {
      orderId: randomUUID(),
      status: 'created',
      action: h['x-relay-path'],
      user: h['x-relay-user'],
      request: payload,
    };
    await replies.send(
      {
        exchange: USER_EXCHANGE,
        routingKey: h['x-relay-user-key'],
        mandatory: true,
        messageId: reply.orderId,
        headers: {
          // Which of the user's destinations: /user/queue/orders.
          'x-relay-user-destination': 'queue/orders',
          // The message-id the client sees.
          'x-relay-message-id': reply.orderId,
          // Any other header reaches the client as is (string values only).
          'in-reply-to': String(h['x-relay-message-id']),
        },
      },
      reply, // an object: rabbitmq-client sends it as JSON with content-type application/json
    );
  },
);
consumer.on('error', (err) => console.error('orders-backend: consumer error:', err.message));
consumer.on('ready', () =>
  console.log(`orders-backend: ready, consuming ${QUEUE} (${APP_EXCHANGE} orders.#)`),
);

async function shutdown() {
  await consumer.close();
  await replies.close();
  await rabbit.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
