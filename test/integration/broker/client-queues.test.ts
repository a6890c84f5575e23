/**
 * Issue 16.1 and 16.2 against RabbitMQ 3.10 and the 4.x node: a `/queue/` whose queue is deleted
 * under the relay. RabbitMQ's STOMP plugin remembers per connection which queues it declared, so a
 * pooled connection kept sending to a deleted queue (RECEIPT for every lost message) and its next
 * SUBSCRIBE to it got NOT_FOUND, which closed the shared connection under every session and showed
 * the subscriber the broker's address. Here: whatever got a RECEIPT is in the queue, a SUBSCRIBE
 * after the delete works, a subscriber whose queue was deleted keeps receiving, and the pool is
 * never reset (no reconnect, readiness stays).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Connection } from 'rabbitmq-client';

import { parseBrokerUrl } from '../../../app/broker/rabbitmq/broker-url';
import { ConnectionPool, type SlotSubscription } from '../../../app/broker/rabbitmq/connection-pool';
import type { ServiceError } from '../../../app/errors';
import { frame, header, type Frame } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

/** Every MESSAGE body `client` has received so far for subscription `id`. */
function bodies(client: RawStompClient, id: string): string[] {
  return client.frames
    .filter((f: Frame) => f.command === 'MESSAGE' && header(f, 'subscription') === id)
    .map((f) => f.body.toString());
}

/** Kills this process's TCP connections to `port` the way a network fault would (needs root). */
function cutOwnSockets(port: number): number {
  const lines = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((l) => l.includes(`pid=${process.pid},`));
  for (const line of lines) {
    const local = /\s(\S+):(\d+)\s+\S+:\d+\s/.exec(line);
    if (local) execFileSync('ss', ['-K', '-tnH', `( sport = :${local[2]} and dport = :${port} )`]);
  }
  return lines.length;
}

/** Declares `queue` over AMQP with an argument the relay's declaration does not have. */
async function declareOtherwise(node: RabbitNode, queue: string): Promise<void> {
  const connection = new Connection({ url: node.amqpUrl, connectionName: 'client-queues-test' });
  try {
    await connection.queueDeclare({ queue, durable: true, arguments: { 'x-max-length': 1000 } });
  } finally {
    await connection.close();
  }
}

for (const node of [LOCAL_RABBIT, RABBIT4] as RabbitNode[]) {
  describe(`RabbitMQ relay: a /queue/ deleted under the relay (${node.name})`, function () {
    this.timeout(30_000);
    let service: RunningService;
    const clients = new RawClients();
    const prefix = `cq${randomBytes(3).toString('hex')}`;
    let n = 0;
    let name: string;

    before(async () => {
      service = await startTestService({
        brokerUrl: `${node.stompUrl}/%2F`,
        amqpUrl: node.amqpUrl,
        brokerPoolSize: 1,
        stompTcpPort: 0,
        authorizationFile: openAuthorizationFile(),
      });
    });
    beforeEach(() => {
      name = `${prefix}-${++n}`;
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await service.stop();
      for (const queue of await queueNames(`stomp-relay.queue.${prefix}`, node))
        await deleteQueue(queue, node);
    });

    const connect = async (user = 'alice'): Promise<RawStompClient> =>
      clients.add(await connectRaw(service, user, { transport: 'tcp' }));
    const queueName = (): string => `stomp-relay.queue.${name}`;

    it('messages that got a RECEIPT after the queue was deleted are in the queue', async () => {
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, 'before');
      await deleteQueue(queueName(), node);
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      for (const body of ['after-1', 'after-2', 'after-3']) {
        await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, body);
      }
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: `/queue/${name}` });
      await waitFor(
        () => bodies(consumer, 'q').length >= 3,
        5000,
        'the three messages sent after the delete',
      );
      expect(bodies(consumer, 'q')).to.deep.equal(['after-1', 'after-2', 'after-3']);
      expect(sender.all('ERROR')).to.have.length(0);
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
    });

    it('transactional SENDs committed after the queue was deleted are in the queue (16, item 1 for COMMIT)', async () => {
      // The first transaction makes the plugin declare (and remember) the queue on the pool
      // connection, as every transactional SEND through it did; the delete then made the plugin
      // route the next transaction's SENDs nowhere and still answer the COMMIT's receipt.
      const sender = await connect();
      await sender.sendWithReceipt('BEGIN', { transaction: 't1' });
      sender.send('SEND', { destination: `/queue/${name}`, transaction: 't1' }, 'first');
      await sender.sendWithReceipt('COMMIT', { transaction: 't1' });
      await deleteQueue(queueName(), node);
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      await sender.sendWithReceipt('BEGIN', { transaction: 't2' });
      for (const body of ['tx-1', 'tx-2', 'tx-3'])
        sender.send('SEND', { destination: `/queue/${name}`, transaction: 't2' }, body);
      // Each is in the queue once COMMIT has its RECEIPT, or COMMIT is an ERROR (it is not here).
      await sender.sendWithReceipt('COMMIT', { transaction: 't2' });
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: `/queue/${name}` });
      await waitFor(() => bodies(consumer, 'q').length >= 3, 5000, 'the three committed messages');
      expect(bodies(consumer, 'q')).to.deep.equal(['tx-1', 'tx-2', 'tx-3']);
      expect(sender.all('ERROR')).to.have.length(0);
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
    });

    it('a SUBSCRIBE after the delete is subscribed; the pool connection and readiness stay', async () => {
      // Another queue's subscriber on the same pool connection (topics are not the point here).
      const bystander = await connect('carol');
      await bystander.sendWithReceipt('SUBSCRIBE', { id: 't', destination: `/queue/${name}.other` });
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, 'creates it');
      const drain = await connect('bob');
      await drain.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: `/queue/${name}` });
      await waitFor(() => bodies(drain, 'q').length === 1, 5000, 'the first message');
      drain.close();
      await sleep(200);
      await deleteQueue(queueName(), node);
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: `/queue/${name}` });
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, 'after');
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}.other` }, 'other');
      await waitFor(() => bodies(consumer, 'q').length === 1, 5000, 'the message sent after the delete');
      await waitFor(() => bodies(bystander, 't').length === 1, 5000, "the bystander's message");
      expect(consumer.all('ERROR')).to.have.length(0);
      expect(bystander.closed).to.equal(false);
      expect(service.broker.readiness()).to.deep.equal({ ready: true });
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
    });

    it('a subscriber whose queue is deleted keeps receiving once the queue is back', async () => {
      const consumer = await connect('bob');
      await consumer.sendWithReceipt('SUBSCRIBE', {
        id: 'q',
        destination: `/queue/${name}`,
        ack: 'client-individual',
      });
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, 'one');
      await waitFor(() => bodies(consumer, 'q').length === 1, 5000, 'the first message');
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      await deleteQueue(queueName(), node);
      await sleep(300);
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, 'two');
      await waitFor(() => bodies(consumer, 'q').length === 2, 5000, 'the message sent after the delete');
      expect(bodies(consumer, 'q')).to.deep.equal(['one', 'two']);
      // Acknowledging the message the deleted queue delivered is harmless: it is gone with the queue.
      const first = consumer.frames.find((f) => f.command === 'MESSAGE')!;
      await consumer.sendWithReceipt('ACK', { id: header(first, 'ack') ?? '' });
      expect(consumer.all('ERROR')).to.have.length(0);
      expect(service.broker.readiness()).to.deep.equal({ ready: true });
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
    });

    it('a SUBSCRIBE the broker refuses reaches only that client, without internals (16.2)', async () => {
      const bystander = await connect('carol');
      await bystander.sendWithReceipt('SUBSCRIBE', { id: 't', destination: `/queue/${name}.ok` });
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      await declareOtherwise(node, queueName());
      const victim = await connect('bob');
      victim.send('SUBSCRIBE', { id: 'q', destination: `/queue/${name}`, receipt: 'r' });
      const error = await victim.expectErrorAndClose(5000);
      const message = header(error, 'message') ?? '';
      expect(message).to.match(/broker refused/);
      expect(message).not.to.match(/127\.0\.0\.1|stomp:\/\/|stomp-relay\.|:6161/);
      expect(error.body.toString()).not.to.match(/127\.0\.0\.1|stomp-relay\./);
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}.ok` }, 'still here');
      await waitFor(() => bodies(bystander, 't').length === 1, 5000, "the bystander's message");
      expect(bystander.closed).to.equal(false);
      expect(service.broker.readiness()).to.deep.equal({ ready: true });
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
    });

    it('a subscription the broker refuses after a reconnect ends alone; the pool comes back (11.15)', async () => {
      // A subscription that RabbitMQ accepts at first and refuses (NOT_FOUND) when the pool
      // restores it after the connection is cut, beside one that stays fine.
      let restored = false;
      const refusedWith: ServiceError[] = [];
      const received: string[] = [];
      const reconnects: number[] = [];
      const pool = new ConnectionPool({
        addresses: parseBrokerUrl(`${node.stompUrl}/%2F`),
        size: 1,
        heartbeatMs: 0,
        reconnectBaseMs: 50,
        reconnectMaxMs: 200,
        connectTimeoutMs: 5000,
        logger: { info() {}, warn() {}, error() {} },
        onReconnect: () => reconnects.push(Date.now()),
        onChange() {},
      });
      const subscription = (id: string, destination: () => string): SlotSubscription => ({
        id,
        subscribeFrame: () => frame('SUBSCRIBE', { id, destination: destination(), ack: 'auto' }),
        onMessage: (m) => received.push(`${id}:${m.body.toString()}`),
        onConnectionLost() {},
        onRefused: (reason) => refusedWith.push(reason),
      });
      await pool.start();
      try {
        const slot = pool.slots[0];
        await slot.subscribe(
          subscription('bad', () => (restored ? `/amq/queue/${name}-missing` : `/queue/${name}.tmp`)),
        );
        await slot.subscribe(subscription('good', () => `/queue/${name}.ok`));
        restored = true;
        expect(cutOwnSockets(node.stompPort)).to.be.at.least(1);
        await waitFor(() => refusedWith.length === 1, 10_000, 'the refusal');
        await waitFor(() => slot.state === 'up', 10_000, 'the slot to be up again');
        await sleep(1000);
        expect(slot.state).to.equal('up');
        expect(reconnects, 'one reconnect, not one per retry').to.have.length(1);
        expect(refusedWith[0].message).to.match(/^the broker refused the subscription: not_found$/);
        expect([...slot.subscriptions.keys()]).to.deep.equal(['good']);
        await slot.send(frame('SEND', { destination: `/queue/${name}.ok` }, 'after'), { receipt: true });
        await waitFor(() => received.includes('good:after'), 5000, 'the good subscription to receive');
      } finally {
        await pool.stop();
        await deleteQueue(`${name}.tmp`, node);
        await deleteQueue(`${name}.ok`, node);
      }
    });
  });
}
