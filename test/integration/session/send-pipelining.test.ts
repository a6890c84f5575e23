/**
 * SENDs to `/queue/` go to the broker ahead of the confirms of the SENDs before them (issue 14, the
 * STOMP SEND path; session/frame-order.ts): at most MAX_SENDS_IN_FLIGHT at once, their messages in
 * the order sent, RECEIPTs in the order of the frames whatever order the broker confirms in, and a
 * refused SEND still answered in its place with its ERROR, the session ending as before. Every
 * other frame still waits for the frames before it. The broker is the embedded one behind a hold
 * that lets a test confirm (or refuse) each publish when it likes; then RabbitMQ 3.10 and 4.x.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import type { Broker, OutgoingMessage, PublishReceipt } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { MessageTarget } from '../../../app/destinations/destination';
import { ServiceError } from '../../../app/errors';
import { startService } from '../../../app/server';
import { header, type Frame } from '../../../app/stomp/frame';
import type { Settings } from '../../../config/settings';
import { openAuthorizationFile } from '../../support/authorization';
import { QueueReader } from '../../support/pipeline';
import { LOCAL_RABBIT, RABBIT4 } from '../../support/rabbit-nodes';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, testSettings, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

/** A publish the test has not let through yet. */
interface Held {
  body: string;
  confirm(): void;
  refuse(error: Error): void;
}

/**
 * The embedded broker, except that each publish waits until the test confirms it (then it goes to
 * the embedded broker and resolves) or refuses it (it rejects with the test's error).
 */
class HeldBroker extends EmbeddedBroker {
  /** Publishes in the order they were made, confirmed or not. */
  readonly made: string[] = [];
  readonly held: Held[] = [];

  override publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    this.made.push(message.body.toString());
    return new Promise<void>((resolve, reject) => {
      this.held.push({ body: message.body.toString(), confirm: resolve, refuse: reject });
    }).then(() => super.publish(target, message));
  }

  take(body: string): Held {
    const i = this.held.findIndex((h) => h.body === body);
    if (i === -1) throw new Error(`no publish of '${body}' is held (held: ${this.bodies().join(', ')})`);
    return this.held.splice(i, 1)[0];
  }

  bodies(): string[] {
    return this.held.map((h) => h.body);
  }
}

const receiptIds = (c: RawStompClient): (string | undefined)[] =>
  c.all('RECEIPT').map((f) => header(f, 'receipt-id'));
const answers = (c: RawStompClient): string[] =>
  c.frames
    .filter((f: Frame) => f.command === 'RECEIPT' || f.command === 'ERROR')
    .map((f) => `${f.command} ${header(f, 'receipt-id') ?? ''}`);

describe('session: SEND pipelining (held broker)', function () {
  this.timeout(20_000);
  let service: RunningService;
  let broker: HeldBroker;
  const clients = new RawClients();
  let queue: string;
  let n = 0;

  before(async () => {
    broker = new HeldBroker({ instanceId: 'held' });
    service = await startService({
      broker: broker as Broker,
      settings: testSettings({
        maxSendsInFlight: 4,
        stompTcpPort: 0,
        authorizationFile: openAuthorizationFile(),
      }),
    });
  });
  beforeEach(() => {
    queue = `/queue/pipelined-${++n}`;
  });
  afterEach(() => {
    for (const h of broker.held.splice(0)) h.confirm();
    broker.made.length = 0;
    clients.closeAll();
  });
  after(() => service.stop());

  const send = (c: RawStompClient, body: string, headers: Record<string, string> = {}): void =>
    c.send('SEND', { destination: queue, receipt: body, ...headers }, body);

  it('SENDs to /queue/ reach the broker before the ones ahead are confirmed, at most MAX_SENDS_IN_FLIGHT (4) at once; all RECEIPTs and messages in order', async () => {
    const reader = await connectRaw(service, 'reader');
    clients.add(reader);
    await reader.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: queue });
    const sender = clients.add(await connectRaw(service, 'sender'));
    const bodies = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const body of bodies) send(sender, body);
    await waitFor(() => broker.held.length === 4, 5000, 'four publishes at the broker');
    await sleep(200);
    expect(broker.bodies(), 'held while none is confirmed').to.deep.equal(['m0', 'm1', 'm2', 'm3']);
    expect(receiptIds(sender)).to.deep.equal([]);
    broker.take('m0').confirm();
    await waitFor(
      () => broker.held.length === 4 && receiptIds(sender).length === 1,
      5000,
      'room for one more',
    );
    expect(broker.bodies()).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
    while (broker.made.length < bodies.length || broker.held.length > 0) {
      await waitFor(() => broker.held.length > 0, 5000, 'a held publish');
      broker.held.shift()?.confirm();
    }
    await waitFor(() => receiptIds(sender).length === 10, 5000, 'ten RECEIPTs');
    expect(receiptIds(sender)).to.deep.equal(bodies);
    expect(broker.made, 'publishes made in the order sent').to.deep.equal(bodies);
    await waitFor(() => reader.all('MESSAGE').length === 10, 5000, 'ten messages');
    expect(reader.all('MESSAGE').map((f) => f.body.toString())).to.deep.equal(bodies);
  });

  it('RECEIPTs come in the order of the frames, whatever order the broker confirms in', async () => {
    const sender = clients.add(await connectRaw(service, 'sender'));
    for (const body of ['a', 'b', 'c']) send(sender, body);
    await waitFor(() => broker.held.length === 3, 5000, 'three publishes at the broker');
    broker.take('c').confirm();
    broker.take('b').confirm();
    await sleep(200);
    expect(receiptIds(sender), 'nothing before the first is confirmed').to.deep.equal([]);
    broker.take('a').confirm();
    await waitFor(() => receiptIds(sender).length === 3, 5000, 'three RECEIPTs');
    expect(receiptIds(sender)).to.deep.equal(['a', 'b', 'c']);
  });

  it('a SEND refused before it reaches the broker (bad priority): RECEIPTs of the SENDs before it first, then its ERROR; nothing after it reaches the broker', async () => {
    const sender = clients.add(await connectRaw(service, 'sender'));
    send(sender, 'first');
    send(sender, 'bad', { priority: 'high' });
    send(sender, 'after');
    await waitFor(() => broker.held.length === 1, 5000, 'the first publish at the broker');
    await sleep(200);
    expect(answers(sender), 'the ERROR waits for the first RECEIPT').to.deep.equal([]);
    expect(broker.made).to.deep.equal(['first']);
    broker.take('first').confirm();
    await sender.waitForClose();
    expect(answers(sender)).to.deep.equal(['RECEIPT first', 'ERROR bad']);
    expect(header(sender.all('ERROR')[0], 'message')).to.match(/priority/);
    expect(broker.made, 'nothing after the refused SEND').to.deep.equal(['first']);
  });

  it('a SEND the broker refuses: the frames before it get their RECEIPTs, it gets its ERROR, the session ends and nothing after it is answered', async () => {
    const sender = clients.add(await connectRaw(service, 'sender'));
    for (const body of ['one', 'two', 'three']) send(sender, body);
    await waitFor(() => broker.held.length === 3, 5000, 'three publishes at the broker');
    broker.take('two').refuse(new ServiceError('broker_unavailable', 'the broker did not take it'));
    broker.take('three').confirm();
    await sleep(200);
    expect(answers(sender)).to.deep.equal([]);
    broker.take('one').confirm();
    await sender.waitForClose();
    expect(answers(sender)).to.deep.equal(['RECEIPT one', 'ERROR two']);
    expect(header(sender.all('ERROR')[0], 'message')).to.match(/did not take it/);
  });

  it('a topic SEND, a SUBSCRIBE and a transaction SEND wait for the /queue/ SENDs before them', async () => {
    const sender = clients.add(await connectRaw(service, 'sender'));
    send(sender, 'queued');
    sender.send('SEND', { destination: '/topic/after-queued', receipt: 'topic' }, 'topic');
    await waitFor(() => broker.held.length === 1, 5000, 'the queue publish at the broker');
    await sleep(200);
    expect(broker.made, 'the topic SEND waits').to.deep.equal(['queued']);
    broker.take('queued').confirm();
    await waitFor(() => broker.held.length === 1 && broker.made.length === 2, 5000, 'the topic publish');
    broker.take('topic').confirm();
    await waitFor(() => receiptIds(sender).length === 2, 5000, 'two RECEIPTs');

    send(sender, 'before-tx');
    sender.send('BEGIN', { transaction: 'tx' });
    sender.send('SEND', { destination: queue, transaction: 'tx' }, 'in-tx');
    sender.send('SUBSCRIBE', { id: 's', destination: queue, receipt: 'sub' });
    sender.send('COMMIT', { transaction: 'tx', receipt: 'commit' });
    await waitFor(() => broker.held.length === 1, 5000, 'the queue publish at the broker');
    await sleep(200);
    expect(answers(sender).slice(2), 'BEGIN, the SUBSCRIBE and COMMIT wait').to.deep.equal([]);
    broker.take('before-tx').confirm();
    await waitFor(() => receiptIds(sender).length === 5, 5000, 'RECEIPTs of the SEND, SUBSCRIBE and COMMIT');
    expect(receiptIds(sender).slice(2)).to.deep.equal(['before-tx', 'sub', 'commit']);
    // The subscription came after 'before-tx' was in the queue: it gets what the queue held, then
    // the committed one.
    await waitFor(() => sender.all('MESSAGE').length === 3, 5000, 'three messages');
    expect(sender.all('MESSAGE').map((f) => f.body.toString())).to.deep.equal([
      'queued',
      'before-tx',
      'in-tx',
    ]);
    expect(sender.all('ERROR')).to.deep.equal([]);
  });
});

const rabbits: [string, Partial<Settings>, typeof LOCAL_RABBIT][] = [
  [
    'RabbitMQ 3.10',
    { brokerUrl: `${LOCAL_RABBIT.stompUrl}/%2F`, amqpUrl: LOCAL_RABBIT.amqpUrl },
    LOCAL_RABBIT,
  ],
  ['RabbitMQ 4.x', { brokerUrl: `${RABBIT4.stompUrl}/%2F`, amqpUrl: RABBIT4.amqpUrl }, RABBIT4],
];

describe('session: SEND pipelining (RabbitMQ 3.10 and 4.x)', function () {
  this.timeout(30_000);

  for (const [label, brokerSettings, node] of rabbits) {
    it(`${label}: 1000 persistent SENDs to /queue/ sent without waiting, each with a receipt: every RECEIPT in order, each message once and in order`, async () => {
      const prefix = `pipelined${randomBytes(3).toString('hex')}`;
      const queue = `/queue/${prefix}`;
      const count = 1000;
      const service = await startTestService({
        ...brokerSettings,
        stompTcpPort: 0,
        maxFramesPerSecond: 1_000_000,
        authorizationFile: openAuthorizationFile(),
      });
      const reader = await QueueReader.open(service, 'reader', queue);
      const sender = await connectRaw(service, 'sender', { transport: 'tcp' });
      try {
        const frames = Array.from(
          { length: count },
          (_, i) => `SEND\ndestination:${queue}\npersistent:true\nreceipt:r${i}\n\n${i}\0`,
        );
        sender.sendRaw(frames.join(''));
        await waitFor(
          () => receiptIds(sender).length === count || sender.all('ERROR').length > 0,
          20_000,
          `${count} RECEIPTs`,
        );
        expect(sender.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
        expect(receiptIds(sender)).to.deep.equal(Array.from({ length: count }, (_, i) => `r${i}`));
        await reader.expectExactly(count);
      } finally {
        sender.close();
        reader.close();
        await service.stop();
        for (const q of await queueNames(`stomp-relay.queue.${prefix}`, node)) await deleteQueue(q, node);
      }
    });
  }
});
