/**
 * Issue 16.5: NACK that gives up. `requeue: false` on NACK is honoured (the message is dropped, or
 * dead-lettered where the queue has a dead-letter exchange), and a `/queue/` message is delivered
 * at most QUEUE_DELIVERY_LIMIT times, on the embedded broker, RabbitMQ 3.10 and 4.x. Before, NACK
 * always requeued, so a poison message came back forever.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import type { Settings } from '../../../config/settings';
import { header, type Frame } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
const LIMIT = 3;

const brokers: [string, Partial<Settings>, RabbitNode | undefined][] = [
  ['embedded broker', {}, undefined],
  [
    'RabbitMQ 3.10',
    { brokerUrl: `${LOCAL_RABBIT.stompUrl}/%2F`, amqpUrl: LOCAL_RABBIT.amqpUrl },
    LOCAL_RABBIT,
  ],
  ['RabbitMQ 4.x', { brokerUrl: `${RABBIT4.stompUrl}/%2F`, amqpUrl: RABBIT4.amqpUrl }, RABBIT4],
];

async function policy(
  node: RabbitNode,
  method: 'PUT' | 'DELETE',
  name: string,
  body?: unknown,
): Promise<void> {
  const res = await fetch(`${node.managementUrl}/policies/%2F/${name}`, {
    method,
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok && res.status !== 404) throw new Error(`${method} policy ${name}: ${res.status}`);
}

const bodies = (c: RawStompClient, id: string): string[] =>
  c
    .all('MESSAGE')
    .filter((f: Frame) => header(f, 'subscription') === id)
    .map((f) => f.body.toString());

for (const [label, brokerSettings, node] of brokers) {
  describe(`session: NACK requeue and the delivery limit (${label})`, function () {
    this.timeout(20_000);
    let service: RunningService;
    const clients = new RawClients();
    const prefix = `nack${randomBytes(3).toString('hex')}`;
    const policyName = `stomp-relay-test-${prefix}`;
    let n = 0;
    let name: string;

    before(async () => {
      service = await startTestService({
        ...brokerSettings,
        brokerPoolSize: 1,
        queueDeliveryLimit: LIMIT,
        authorizationFile: openAuthorizationFile(),
      });
      // Every test queue dead-letters to its own `<name>.dlq` (RabbitMQ only).
      if (node) {
        await policy(node, 'PUT', policyName, {
          pattern: `^stomp-relay\\.queue\\.${prefix}-\\d+$`,
          definition: {
            'dead-letter-exchange': '',
            'dead-letter-routing-key': `stomp-relay.queue.${prefix}.dlq`,
          },
          'apply-to': 'queues',
          priority: 100,
        });
      }
    });
    beforeEach(() => {
      name = `${prefix}-${++n}`;
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await service.stop();
      if (node) {
        await policy(node, 'DELETE', policyName);
        for (const q of await queueNames(`stomp-relay.queue.${prefix}`, node)) await deleteQueue(q, node);
      }
    });

    const connect = async (user = 'alice'): Promise<RawStompClient> =>
      clients.add(await connectRaw(service, user));
    const consumer = async (): Promise<RawStompClient> => {
      const c = await connect('bob');
      await c.sendWithReceipt('SUBSCRIBE', {
        id: 'q',
        destination: `/queue/${name}`,
        ack: 'client-individual',
      });
      return c;
    };
    const dlq = async (): Promise<RawStompClient> => {
      const c = await connect('carol');
      await c.sendWithReceipt('SUBSCRIBE', { id: 'dlq', destination: `/queue/${prefix}.dlq` });
      return c;
    };
    const send = async (body: string): Promise<void> => {
      const sender = await connect();
      await sender.sendWithReceipt('SEND', { destination: `/queue/${name}` }, body);
    };
    const lastAck = (c: RawStompClient): string => header(c.all('MESSAGE').at(-1)!, 'ack') ?? '';

    it('NACK without requeue (or requeue:true) delivers the message again, marked redelivered', async () => {
      const c = await consumer();
      await send('again');
      await waitFor(() => bodies(c, 'q').length === 1, 5000, 'the message');
      await c.sendWithReceipt('NACK', { id: lastAck(c) });
      await waitFor(() => bodies(c, 'q').length === 2, 5000, 'the redelivery');
      await c.sendWithReceipt('NACK', { id: lastAck(c), requeue: 'true' });
      await waitFor(() => bodies(c, 'q').length === 3, 5000, 'the second redelivery');
      expect(header(c.all('MESSAGE')[2], 'redelivered')).to.equal('true');
    });

    it('NACK requeue:false gives the message up: not delivered again', async () => {
      const dead = node ? await dlq() : undefined;
      const c = await consumer();
      await send('poison');
      await send('next');
      await waitFor(() => bodies(c, 'q').length === 2, 5000, 'both messages');
      const poison = c.all('MESSAGE')[0];
      await c.sendWithReceipt('NACK', { id: header(poison, 'ack') ?? '', requeue: 'false' });
      await sleep(500);
      expect(bodies(c, 'q')).to.deep.equal(['poison', 'next']);
      // Dead-lettered where the queue says so.
      if (dead)
        await waitFor(() => bodies(dead, 'dlq').includes('poison'), 5000, 'the dead-lettered message');
    });

    it(`a message is delivered at most QUEUE_DELIVERY_LIMIT (${LIMIT}) times`, async () => {
      const dead = node ? await dlq() : undefined;
      const c = await consumer();
      await send('forever');
      for (let i = 1; i <= LIMIT; i++) {
        await waitFor(() => bodies(c, 'q').length === i, 5000, `delivery ${i}`);
        await c.sendWithReceipt('NACK', { id: lastAck(c) });
      }
      await sleep(700);
      expect(bodies(c, 'q')).to.deep.equal(Array<string>(LIMIT).fill('forever'));
      if (dead)
        await waitFor(() => bodies(dead, 'dlq').includes('forever'), 5000, 'the dead-lettered message');
      // The queue goes on: the next message is delivered.
      await send('after');
      await waitFor(() => bodies(c, 'q').includes('after'), 5000, 'the next message');
    });

    it('NACK requeue with another value is an ERROR', async () => {
      const c = await consumer();
      await send('x');
      await waitFor(() => bodies(c, 'q').length === 1, 5000, 'the message');
      c.send('NACK', { id: lastAck(c), requeue: 'no' });
      const error = await c.expectErrorAndClose();
      expect(header(error, 'message')).to.match(/requeue/);
    });
  });
}
