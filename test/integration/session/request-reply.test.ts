/**
 * Issue 16.4: request/reply. `reply-to: /temp-queue/<name>` on a SEND to `/queue`, `/topic` or `/app`
 * gives the session a private temp queue; the receiver sees `reply-to: /reply-queue/<token>` and a
 * reply there (a STOMP SEND, or an AMQP backend's publish) reaches that session alone, on the
 * embedded broker, RabbitMQ 3.10 and 4.x. Before, `/temp-queue/` was refused and reply-to stripped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import { Connection } from 'rabbitmq-client';

import type { Settings } from '../../../config/settings';
import { BACKEND_HEADERS } from '../../../app/messaging/backend-bridge';
import { header, type Frame } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';

const brokers: [string, Partial<Settings>, RabbitNode | undefined][] = [
  ['embedded broker', {}, undefined],
  [
    'RabbitMQ 3.10',
    { brokerUrl: `${LOCAL_RABBIT.stompUrl}/%2F`, amqpUrl: LOCAL_RABBIT.amqpUrl },
    LOCAL_RABBIT,
  ],
  ['RabbitMQ 4.x', { brokerUrl: `${RABBIT4.stompUrl}/%2F`, amqpUrl: RABBIT4.amqpUrl }, RABBIT4],
];

const REPLY_QUEUE = /^\/reply-queue\/[A-Za-z0-9_-]{22}$/;

function messagesOf(client: RawStompClient, subscription: string): Frame[] {
  return client.all('MESSAGE').filter((f) => header(f, 'subscription') === subscription);
}

for (const [name, settings, node] of brokers) {
  describe(`request/reply with temp queues (${name})`, function () {
    this.timeout(30_000);
    const tag = `rr${randomBytes(3).toString('hex')}`;
    let service: RunningService;
    let backendsFile: string;
    const clients = new RawClients();

    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-rr-'));
      backendsFile = join(dir, 'backends.json');
      writeFileSync(backendsFile, JSON.stringify({ services: [{ name: tag, users: '*' }] }));
      service = await startTestService({
        ...settings,
        stompTcpPort: 0,
        authorizationFile: openAuthorizationFile(),
        backendsFile,
      });
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      await service?.stop();
      rmSync(dirname(backendsFile), { recursive: true, force: true });
      if (node)
        for (const q of await queueNames(`stomp-relay.queue.${tag}`, node)) await deleteQueue(q, node);
    });

    const connect = async (user: string): Promise<RawStompClient> =>
      clients.add(await connectRaw(service, user, { transport: 'tcp' }));

    /** A service on `destination` answering each request to its reply-to; resolves with its client. */
    const responder = async (destination: string): Promise<RawStompClient> => {
      const client = await connect('service');
      await client.sendWithReceipt('SUBSCRIBE', { id: 'req', destination });
      return client;
    };
    const answer = async (service_: RawStompClient, body: string): Promise<string> => {
      const request = await service_.waitForFrame('MESSAGE');
      const replyTo = header(request, 'reply-to') ?? '';
      expect(replyTo).to.match(REPLY_QUEUE);
      await service_.sendWithReceipt(
        'SEND',
        { destination: replyTo, 'correlation-id': header(request, 'correlation-id') ?? '' },
        `${body}:${request.body.toString()}`,
      );
      return replyTo;
    };

    for (const kind of ['queue', 'topic'] as const) {
      it(`a request to /${kind}/ and its reply make a round trip; the reply arrives on /temp-queue/<name>`, async () => {
        const destination = `/${kind}/${tag}.${kind}`;
        const svc = await responder(destination);
        const requester = await connect('alice');
        await requester.sendWithReceipt(
          'SEND',
          { destination, 'reply-to': '/temp-queue/answers', 'correlation-id': 'c-1' },
          'question',
        );
        await answer(svc, 'answer');
        const reply = await requester.waitForFrame('MESSAGE');
        expect(header(reply, 'subscription')).to.equal('/temp-queue/answers');
        expect(header(reply, 'destination')).to.equal('/temp-queue/answers');
        expect(header(reply, 'correlation-id')).to.equal('c-1');
        expect(reply.body.toString()).to.equal('answer:question');
      });
    }

    it("one temp queue per name and session; nobody can SUBSCRIBE to one, nor read another session's", async () => {
      const destination = `/queue/${tag}.private`;
      const svc = await responder(destination);
      const alice = await connect('alice');
      const mallory = await connect('mallory');
      for (const c of [alice, alice, mallory])
        await c.sendWithReceipt('SEND', { destination, 'reply-to': '/temp-queue/same' }, 'q');
      const replyTos = [];
      for (let i = 0; i < 3; i++) {
        const request = await svc.waitForFrame('MESSAGE');
        replyTos.push(header(request, 'reply-to') ?? '');
      }
      // alice's two requests share her queue; mallory's same name is another queue.
      expect(replyTos[0]).to.equal(replyTos[1]);
      expect(replyTos[2]).not.to.equal(replyTos[0]);
      await svc.sendWithReceipt('SEND', { destination: replyTos[0] }, 'for alice');
      await waitFor(() => messagesOf(alice, '/temp-queue/same').length === 1, 5000, "alice's reply");
      for (const spelling of ['/temp-queue/same', replyTos[0]]) {
        const intruder = await connect('mallory');
        intruder.send('SUBSCRIBE', { id: 'x', destination: spelling, receipt: 'r' });
        expect(header(await intruder.expectErrorAndClose(), 'message')).to.match(/^cannot subscribe to/);
      }
      expect(mallory.all('MESSAGE')).to.have.length(0);
      const forger = await connect('mallory');
      forger.send('SEND', { destination: '/reply-queue/not-a-token' }, 'x');
      expect(header(await forger.expectErrorAndClose(), 'message')).to.match(/not allowed/);
    });

    it('a reply after the requester has gone is dropped and counted; the replier goes on', async () => {
      const destination = `/queue/${tag}.gone`;
      const svc = await responder(destination);
      const requester = await connect('alice');
      await requester.sendWithReceipt('SEND', { destination, 'reply-to': '/temp-queue/late' }, 'q');
      const request = await svc.waitForFrame('MESSAGE');
      const replyTo = header(request, 'reply-to') ?? '';
      await requester.sendWithReceipt('DISCONNECT', {});
      await waitFor(() => service.registry.countForUser('alice') === 0, 5000, "alice's session to end");
      const before = await metricValue(service.url, 'stomp_replies_dropped_total');
      for (let i = 0; i < 5; i++) await svc.sendWithReceipt('SEND', { destination: replyTo }, `late ${i}`);
      await waitFor(
        async () => (await metricValue(service.url, 'stomp_replies_dropped_total')) === before + 5,
        5000,
        'the five late replies to be counted',
      );
      expect(svc.all('ERROR')).to.have.length(0);
      expect(svc.closed).to.equal(false);
    });

    if (!node) return;

    it('a backend reached over AMQP answers a request to /app on its x-relay-reply-key', async () => {
      const amqp = new Connection({ url: node.amqpUrl, connectionName: 'request-reply-test' });
      const queue = `${tag}-backend`;
      const replies = amqp.createPublisher({ confirm: true });
      const consumer = amqp.createConsumer(
        {
          queue,
          queueOptions: { exclusive: true },
          queueBindings: [{ exchange: 'stomp-relay.app', queue, routingKey: `${tag}.#` }],
        },
        async (msg) => {
          expect(msg.replyTo).to.match(REPLY_QUEUE);
          await replies.send(
            {
              exchange: 'stomp-relay.user',
              routingKey: String(msg.headers?.[BACKEND_HEADERS.replyKey]),
              mandatory: true,
              headers: { 'x-answer-to': String(msg.headers?.[BACKEND_HEADERS.user]) },
            },
            `backend says hi to ${String(msg.body)}`,
          );
        },
      );
      const ready = new Promise((resolve) => consumer.once('ready', resolve));
      try {
        await ready;
        const requester = await connect('alice');
        await requester.sendWithReceipt(
          'SEND',
          { destination: `/app/${tag}/hello`, 'reply-to': '/temp-queue/rpc' },
          'alice',
        );
        const reply = await requester.waitForFrame('MESSAGE', 5000);
        expect(header(reply, 'subscription')).to.equal('/temp-queue/rpc');
        expect(header(reply, 'x-answer-to')).to.equal('alice');
        expect(reply.body.toString()).to.equal('backend says hi to alice');
      } finally {
        await consumer.close();
        await replies.close();
        await amqp.close();
      }
    });
  });
}
