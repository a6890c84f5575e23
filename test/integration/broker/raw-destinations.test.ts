/**
 * Issue 16.7 against RabbitMQ 3.10 and the 4.x node: raw broker destinations where the
 * authorization file allows them. An AMQP system fills a queue and an allowed STOMP client consumes
 * it through `/amq/queue/<name>`; one the file does not allow is refused with a readable ERROR; what
 * is allowed never reaches another user's `/user` destinations or the service's own queues; and a
 * queue or exchange that is not there is that client's ERROR, never a reset of the shared pool.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Connection } from 'rabbitmq-client';

import { userRoutingKey } from '../../../app/broker/rabbitmq/topology';
import { header, type Frame } from '../../../app/stomp/frame';
import { authorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, openRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { pushToUser } from '../faults/harness';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

function bodies(client: RawStompClient, id: string): string[] {
  return client.frames
    .filter((f: Frame) => f.command === 'MESSAGE' && header(f, 'subscription') === id)
    .map((f) => f.body.toString());
}

for (const node of [LOCAL_RABBIT, RABBIT4] as RabbitNode[]) {
  describe(`RabbitMQ relay: raw broker destinations an operator allows (${node.name})`, function () {
    this.timeout(30_000);
    const tag = `raw${randomBytes(3).toString('hex')}`;
    const orders = `${tag}.orders`;
    const events = `${tag}.events`;
    let service: RunningService;
    let amqp: Connection;
    const clients = new RawClients();

    before(async () => {
      amqp = new Connection({ url: node.amqpUrl, connectionName: 'raw-destinations-test' });
      // Durable: RabbitMQ 4 refuses transient non-exclusive queues.
      await amqp.queueDeclare({ queue: orders, durable: true, autoDelete: false });
      await amqp.exchangeDeclare({ exchange: events, type: 'topic', durable: false, autoDelete: false });
      service = await startTestService({
        brokerUrl: `${node.stompUrl}/%2F`,
        amqpUrl: node.amqpUrl,
        brokerPoolSize: 1,
        stompTcpPort: 0,
        authorizationFile: authorizationFile({
          subscribe: [
            { destination: '/topic/**', users: '*' },
            { destination: '/user/**', users: '*' },
            { destination: `/amq/queue/${tag}.**`, users: ['ops'] },
            { destination: `/amq/queue/${tag}.*`, scopes: ['orders'] },
            { destination: '/amq/queue/**', users: ['wide'] },
            { destination: '/exchange/**', users: ['wide', 'ops'] },
          ],
          send: [
            { destination: '/topic/**', users: '*' },
            { destination: `/amq/queue/${tag}.**`, users: ['ops'] },
            { destination: `/exchange/${tag}.*/**`, users: ['ops'] },
          ],
        }),
      });
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await service?.stop();
      for (const queue of await queueNames(tag, node)) await deleteQueue(queue, node);
      await amqp.exchangeDelete({ exchange: events });
      await amqp.close();
    });

    const connect = async (user: string, scope = ''): Promise<RawStompClient> => {
      const client = clients.add(await openRaw(service, 'tcp'));
      await client.connect(tokenFor(service, user, scope));
      return client;
    };
    const reconnects = (): Promise<number> => metricValue(service.url, 'stomp_broker_reconnects_total');

    it('an allowed client consumes a queue an AMQP system fills, in order, with its headers; ACKed means gone', async () => {
      const publisher = amqp.createPublisher({ confirm: true });
      for (let i = 0; i < 5; i++) {
        await publisher.send(
          { routingKey: orders, contentType: 'application/json', headers: { 'x-order': String(i) } },
          Buffer.from(JSON.stringify({ order: i })),
        );
      }
      await publisher.close();
      const consumer = await connect('ops');
      await consumer.sendWithReceipt('SUBSCRIBE', {
        id: 'o',
        destination: `/amq/queue/${orders}`,
        ack: 'client-individual',
      });
      await waitFor(() => bodies(consumer, 'o').length === 5, 5000, 'the five orders');
      expect(bodies(consumer, 'o')).to.deep.equal([0, 1, 2, 3, 4].map((i) => JSON.stringify({ order: i })));
      const messages = consumer.all('MESSAGE');
      expect(header(messages[2], 'destination')).to.equal(`/amq/queue/${orders}`);
      expect(header(messages[2], 'content-type')).to.equal('application/json');
      expect(header(messages[2], 'x-order')).to.equal('2');
      for (const m of messages) await consumer.sendWithReceipt('ACK', { id: header(m, 'ack') ?? '' });
      await consumer.sendWithReceipt('UNSUBSCRIBE', { id: 'o' });
      const { messageCount } = await amqp.queueDeclare({ queue: orders, passive: true });
      expect(messageCount).to.equal(0);
    });

    it("a token with the rule's scope is allowed; without it the SUBSCRIBE gets an ERROR saying why", async () => {
      const publisher = amqp.createPublisher({ confirm: true });
      await publisher.send({ routingKey: orders }, 'for a scoped reader');
      await publisher.close();
      const scoped = await connect('alice', 'orders');
      await scoped.sendWithReceipt('SUBSCRIBE', { id: 'o', destination: `/amq/queue/${orders}` });
      await waitFor(() => bodies(scoped, 'o').length === 1, 5000, 'the order');
      const plain = await connect('alice', 'push');
      plain.send('SUBSCRIBE', { id: 'o', destination: `/amq/queue/${orders}`, receipt: 'r' });
      const error = await plain.expectErrorAndClose();
      expect(header(error, 'message')).to.equal(
        `not allowed to subscribe to '/amq/queue/${orders}': raw broker destinations are refused unless the authorization file allows them`,
      );
      expect(plain.all('RECEIPT')).to.have.length(0);
      const sender = await connect('alice', 'orders');
      sender.send('SEND', { destination: `/amq/queue/${orders}` }, 'no send rule for scopes');
      expect(header(await sender.expectErrorAndClose(), 'message')).to.match(/^not allowed to send to/);
    });

    it('allowed SENDs reach the queue or exchange over AMQP; a missing one is an ERROR, not a RECEIPT', async () => {
      const bound = `${tag}.bound`;
      await amqp.queueDeclare({ queue: bound, durable: true });
      await amqp.queueBind({ queue: bound, exchange: events, routingKey: 'eu.#' });
      const sender = await connect('ops');
      await sender.sendWithReceipt('SEND', { destination: `/amq/queue/${bound}`, priority: '3' }, 'direct');
      await sender.sendWithReceipt('SEND', { destination: `/exchange/${events}/eu.created` }, 'routed');
      await sender.sendWithReceipt('SEND', { destination: `/exchange/${events}/us.created` }, 'unbound key');
      const ch = await amqp.acquire();
      const got: string[] = [];
      for (
        let m = await ch.basicGet({ queue: bound, noAck: true });
        m;
        m = await ch.basicGet({ queue: bound, noAck: true })
      )
        got.push(String(m.body));
      await ch.close();
      expect(got).to.deep.equal(['direct', 'routed']);
      const before = await reconnects();
      for (const destination of [`/amq/queue/${tag}.missing`, `/exchange/${tag}.missing/x`]) {
        const client = await connect('ops');
        client.send('SEND', { destination, receipt: 'r' }, 'lost?');
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message'), destination).to.match(/does not exist|has no queue/);
        expect(header(error, 'message')).not.to.match(/127\.0\.0\.1|stomp:\/\/|:5672|:6161/);
        expect(client.all('RECEIPT')).to.have.length(0);
      }
      expect(await reconnects()).to.equal(before);
    });

    it('a queue or exchange that is not there: that client gets an ERROR; the shared pool stays up', async () => {
      const bystander = await connect('bob');
      await bystander.sendWithReceipt('SUBSCRIBE', { id: 't', destination: `/topic/${tag}` });
      const before = await reconnects();
      for (const destination of [`/amq/queue/${tag}.nothing`, `/exchange/${tag}.nothing/#`]) {
        const client = await connect('ops');
        client.send('SUBSCRIBE', { id: 'x', destination, receipt: 'r' });
        const error = await client.expectErrorAndClose(5000);
        expect(header(error, 'message'))
          .to.include(`'${destination}'`)
          .and.match(/does not exist on the broker/);
      }
      const publisher = await connect('ops');
      await publisher.sendWithReceipt('SEND', { destination: `/topic/${tag}` }, 'still here');
      await waitFor(() => bodies(bystander, 't').length === 1, 5000, "the bystander's message");
      expect(bystander.closed).to.equal(false);
      expect(service.broker.readiness()).to.deep.equal({ ready: true });
      expect(await reconnects()).to.equal(before);
    });

    it('an /amq/queue/ subscriber whose queue is deleted gets an ERROR naming it', async () => {
      const doomed = `${tag}.doomed`;
      await amqp.queueDeclare({ queue: doomed, durable: true });
      const consumer = await connect('ops');
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'd', destination: `/amq/queue/${doomed}` });
      await deleteQueue(doomed, node);
      const error = await consumer.expectErrorAndClose(5000);
      expect(header(error, 'message'))
        .to.include(`'/amq/queue/${doomed}'`)
        .and.match(/deleted/);
    });

    it('an /exchange/ subscription gets what the exchange routes, in a queue named by x-queue-name', async () => {
      const named = `${tag}.mine`;
      const consumer = await connect('ops');
      await consumer.sendWithReceipt('SUBSCRIBE', {
        id: 'e',
        destination: `/exchange/${events}/eu.*`,
        'x-queue-name': named,
      });
      expect(await queueNames(named, node)).to.deep.equal([named]);
      const publisher = amqp.createPublisher({ confirm: true });
      await publisher.send({ exchange: events, routingKey: 'eu.created' }, 'eu');
      await publisher.send({ exchange: events, routingKey: 'us.created' }, 'us');
      await publisher.close();
      await waitFor(() => bodies(consumer, 'e').length === 1, 5000, 'the routed event');
      expect(bodies(consumer, 'e')).to.deep.equal(['eu']);
      const other = await connect('wide');
      other.send('SUBSCRIBE', { id: 'e', destination: `/exchange/${events}/#`, 'x-queue-name': named });
      expect(header(await other.expectErrorAndClose(), 'message')).to.match(/names a queue|not allowed/);
    });

    it("the widest allowance reaches no one's /user destinations and none of the service's queues", async () => {
      const bob = `bob-${tag}`;
      const bobClient = await connect(bob);
      await bobClient.sendWithReceipt('SUBSCRIBE', { id: 'b', destination: '/user/queue/greetings' });
      const inst = service.settings.instanceId;
      for (const destination of [
        `/amq/queue/stomp-relay.${inst}.users`,
        `/amq/queue/stomp-relay.${inst}.topics`,
        `/amq/queue/stomp-relay.queue.${tag}`,
        `/exchange/stomp-relay.user/${userRoutingKey(bob)}`,
        '/exchange/stomp-relay.directory',
        '/exchange/stomp-relay.app/#',
      ]) {
        const client = await connect('wide');
        client.send('SUBSCRIBE', { id: 'x', destination });
        expect(header(await client.expectErrorAndClose(), 'message'), destination).to.match(/not allowed/);
      }
      // What it may subscribe to carries none of bob's pushes.
      const wide = await connect('wide');
      await wide.sendWithReceipt('SUBSCRIBE', { id: 't', destination: '/exchange/amq.topic/#' });
      await wide.sendWithReceipt('SUBSCRIBE', {
        id: 'd',
        destination: `/exchange/amq.direct/${userRoutingKey(bob)}`,
      });
      for (let i = 0; i < 3; i++)
        expect(
          (await pushToUser(service.url, tokenFor(service, 'backend', 'push'), bob, `for bob ${i}`)).status,
        ).to.equal(202);
      await waitFor(() => bodies(bobClient, 'b').length === 3, 5000, "bob's pushes");
      await sleep(200);
      expect(wide.all('MESSAGE')).to.have.length(0);
    });
  });
}

describe('raw broker destinations on the embedded broker', () => {
  let service: RunningService;
  const clients = new RawClients();
  before(async () => {
    service = await startTestService({
      authorizationFile: authorizationFile({
        subscribe: [{ destination: '/amq/queue/**', users: '*' }],
        send: [],
      }),
    });
  });
  after(async () => {
    clients.closeAll();
    await service.stop();
  });

  it('are refused even where allowed: they exist only on the RabbitMQ relay', async () => {
    const client = clients.add(await connectRaw(service, 'alice'));
    client.send('SUBSCRIBE', { id: 'x', destination: '/amq/queue/orders' });
    expect(header(await client.expectErrorAndClose(), 'message')).to.equal(
      "destination '/amq/queue/orders' is not allowed: raw broker destinations exist only on the RabbitMQ relay (BROKER_URL)",
    );
  });
});
