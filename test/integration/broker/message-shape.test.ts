/**
 * The copy message-shape.ts makes before rabbitmq-client builds a message it reads: a delivery and
 * a basic.return, read through a real RabbitMQ, still carry every property with its value, as an
 * ordinary object (what the relay reads from them: amqp-delivery.ts, the confirmed publishers).
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Connection, type AsyncMessage, type ReturnedMessage } from 'rabbitmq-client';

import { shapeReadMessages } from '../../../app/broker/rabbitmq/message-shape';
import { LOCAL_RABBIT } from '../../support/rabbit-nodes';
import { waitFor } from '../../support/wait';

describe('RabbitMQ: messages rabbitmq-client reads, after shapeReadMessages', function () {
  this.timeout(30_000);
  let connection: Connection;
  const queue = `message-shape-${randomBytes(4).toString('hex')}`;

  before(() => {
    shapeReadMessages();
    shapeReadMessages(); // a second call changes nothing
    connection = new Connection({ url: LOCAL_RABBIT.amqpUrl, connectionName: 'message-shape-test' });
  });

  after(async () => {
    await connection.queueDelete({ queue }).catch(() => undefined);
    await connection.close();
  });

  it('a delivery keeps its method and header properties, and its body', async () => {
    const got: AsyncMessage[] = [];
    const consumer = connection.createConsumer(
      { queue, queueOptions: { exclusive: true }, noAck: true },
      (message) => {
        got.push(message);
      },
    );
    await new Promise<void>((resolve) => consumer.once('ready', () => resolve()));
    const publisher = connection.createPublisher({ confirm: true });
    try {
      await publisher.send(
        { routingKey: queue, messageId: 'm-1', headers: { 'x-relay-message-id': 'id-1', a: 'b' } },
        Buffer.from('hello'),
      );
      await waitFor(() => got.length === 1, 5_000, 'the delivery');
      const [message] = got;
      expect(Object.getPrototypeOf(message)).to.equal(Object.prototype);
      expect(message).to.include({
        routingKey: queue,
        exchange: '',
        redelivered: false,
        messageId: 'm-1',
        durable: false,
      });
      expect(message.consumerTag).to.be.a('string').and.not.equal('');
      expect(message.deliveryTag).to.equal(1);
      expect(message.headers).to.deep.equal({ 'x-relay-message-id': 'id-1', a: 'b' });
      expect(Buffer.isBuffer(message.body) && message.body.toString()).to.equal('hello');
    } finally {
      await publisher.close();
      await consumer.close();
    }
  });

  it('a basic.return keeps its properties', async () => {
    const publisher = connection.createPublisher({ confirm: true });
    const returned: ReturnedMessage[] = [];
    publisher.on('basic.return', (message: ReturnedMessage) => returned.push(message));
    try {
      await publisher.send(
        { routingKey: `${queue}-nobody`, mandatory: true, messageId: 'r-1' },
        Buffer.from('x'),
      );
      await waitFor(() => returned.length === 1, 5_000, 'the basic.return');
      expect(returned[0]).to.include({
        replyText: 'NO_ROUTE',
        routingKey: `${queue}-nobody`,
        messageId: 'r-1',
      });
      expect(Object.getPrototypeOf(returned[0])).to.equal(Object.prototype);
    } finally {
      await publisher.close();
    }
  });
});
