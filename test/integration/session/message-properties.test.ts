/**
 * Issue 16.6: per-subscription settings and message properties. `prefetch-count` on SUBSCRIBE is
 * honoured up to BROKER_PREFETCH (embedded broker, RabbitMQ 3.10 and 4.x); `priority`,
 * `expiration`, `expires` and `persistent` on a SEND to `/queue/` reach RabbitMQ as AMQP properties
 * (before, they were stripped without a word); a bad value is an ERROR naming the header, and only
 * that client's connection ends.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Connection } from 'rabbitmq-client';

import type { Settings } from '../../../config/settings';
import { header, type Frame } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { LOCAL_RABBIT, RABBIT4 } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

const brokers: [string, Partial<Settings>, typeof LOCAL_RABBIT | undefined][] = [
  ['embedded broker', {}, undefined],
  [
    'RabbitMQ 3.10',
    { brokerUrl: `${LOCAL_RABBIT.stompUrl}/%2F`, amqpUrl: LOCAL_RABBIT.amqpUrl },
    LOCAL_RABBIT,
  ],
  ['RabbitMQ 4.x', { brokerUrl: `${RABBIT4.stompUrl}/%2F`, amqpUrl: RABBIT4.amqpUrl }, RABBIT4],
];

const messages = (c: RawStompClient): Frame[] => c.all('MESSAGE');

for (const [label, brokerSettings, node] of brokers) {
  describe(`session: prefetch-count and message properties (${label})`, function () {
    this.timeout(20_000);
    let service: RunningService;
    const clients = new RawClients();
    const prefix = `props${randomBytes(3).toString('hex')}`;
    let n = 0;
    let queue: string;

    before(async () => {
      service = await startTestService({
        ...brokerSettings,
        brokerPoolSize: 1,
        brokerPrefetch: 10,
        authorizationFile: openAuthorizationFile(),
      });
    });
    beforeEach(() => {
      queue = `/queue/${prefix}-${++n}`;
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await service.stop();
      if (node)
        for (const q of await queueNames(`stomp-relay.queue.${prefix}`, node)) await deleteQueue(q, node);
    });

    const connect = async (user = 'alice'): Promise<RawStompClient> =>
      clients.add(await connectRaw(service, user));

    it('prefetch-count on SUBSCRIBE bounds the unacknowledged messages of that subscription', async () => {
      const sender = await connect();
      for (let i = 1; i <= 5; i++) await sender.sendWithReceipt('SEND', { destination: queue }, `m${i}`);
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', {
        id: 'q',
        destination: queue,
        ack: 'client-individual',
        'prefetch-count': '2',
      });
      await waitFor(() => messages(consumer).length === 2, 5000, 'two messages');
      await sleep(300);
      expect(messages(consumer).map((f) => f.body.toString())).to.deep.equal(['m1', 'm2']);
      await consumer.sendWithReceipt('ACK', { id: header(messages(consumer)[0], 'ack') ?? '' });
      await waitFor(() => messages(consumer).length === 3, 5000, 'a third once one is acked');
      await sleep(300);
      expect(messages(consumer)).to.have.length(3);
    });

    it('prefetch-count above BROKER_PREFETCH is held to it', async () => {
      const sender = await connect();
      for (let i = 1; i <= 12; i++) await sender.sendWithReceipt('SEND', { destination: queue }, `m${i}`);
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', {
        id: 'q',
        destination: queue,
        ack: 'client',
        'prefetch-count': '1000',
      });
      await waitFor(() => messages(consumer).length === 10, 5000, 'BROKER_PREFETCH messages');
      await sleep(300);
      expect(messages(consumer)).to.have.length(10);
    });

    for (const bad of ['0', '-1', 'ten', '1.5']) {
      it(`prefetch-count '${bad}' is refused with an ERROR naming it`, async () => {
        const consumer = await connect('bob');
        consumer.send('SUBSCRIBE', { id: 'q', destination: queue, ack: 'client', 'prefetch-count': bad });
        const error = await consumer.expectErrorAndClose();
        expect(header(error, 'message')).to.match(/prefetch-count/);
      });
    }

    for (const [name, value] of [
      ['priority', '256'],
      ['priority', 'high'],
      ['expiration', '-5'],
      ['expires', 'tomorrow'],
      ['persistent', 'yes'],
    ]) {
      it(`a SEND to a queue with ${name}:${value} is refused with an ERROR naming the header`, async () => {
        const sender = await connect();
        sender.send('SEND', { destination: queue, [name]: value, receipt: 'r' }, 'x');
        const error = await sender.expectErrorAndClose();
        expect(header(error, 'message')).to.contain(`'${name}:${value}'`);
        const other = await connect('bob');
        await other.sendWithReceipt('SEND', { destination: queue }, 'still fine');
      });
    }

    if (!node) return;

    it('priority comes back on the MESSAGE; persistent reaches RabbitMQ as the delivery mode', async () => {
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: queue, priority: '7', persistent: 'false' }, 'p7');
      await sender.sendWithReceipt('SEND', { destination: queue }, 'default');
      // Read straight from RabbitMQ: the delivery mode is what persistent sets.
      const amqp = new Connection({ url: node.amqpUrl, connectionName: 'message-properties-test' });
      try {
        const queueName = `stomp-relay.queue.${queue.slice('/queue/'.length)}`;
        const first = await amqp.basicGet({ queue: queueName, noAck: false });
        const second = await amqp.basicGet({ queue: queueName, noAck: false });
        expect([first?.durable, second?.durable]).to.deep.equal([false, true]);
        expect(first?.priority).to.equal(7);
        expect(second?.priority).to.equal(undefined);
      } finally {
        await amqp.close(); // unacknowledged: both go back to the queue
      }
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: queue });
      await waitFor(() => messages(consumer).length === 2, 5000, 'both messages');
      const [p7, plain] = messages(consumer);
      expect(header(p7, 'priority')).to.equal('7');
      expect(header(plain, 'priority')).to.equal(undefined);
      expect(header(p7, 'persistent')).to.equal(undefined);
    });

    it('expiration (a TTL) and expires (a time) make RabbitMQ drop the message once past', async () => {
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: queue, expiration: '50' }, 'ttl');
      await sender.sendWithReceipt('SEND', { destination: queue, expires: String(Date.now() + 50) }, 'at');
      await sender.sendWithReceipt('SEND', { destination: queue, expires: '0' }, 'never');
      await sender.sendWithReceipt('SEND', { destination: queue, expiration: '60000' }, 'later');
      await sleep(400);
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: queue });
      await waitFor(() => messages(consumer).length === 2, 5000, 'the two unexpired messages');
      await sleep(300);
      expect(messages(consumer).map((f) => f.body.toString())).to.deep.equal(['never', 'later']);
      expect(header(messages(consumer)[1], 'expiration')).to.equal('60000');
    });
  });
}
