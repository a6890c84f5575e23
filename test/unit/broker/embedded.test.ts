import { expect } from 'chai';
import pino from 'pino';

import type { Delivery, Readiness } from '../../../app/broker/broker';
import { createBroker } from '../../../app/broker/create-broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { Metrics } from '../../../app/observability/metrics';
import { brokerSuite } from '../../support/broker-suite';
import { expectServiceError, message, queue, topic, userTarget } from '../../support/broker-harness';
import { testSettings } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

brokerSuite('embedded broker', async () => [new EmbeddedBroker({ instanceId: 'test' })]);

describe('embedded broker, beyond the shared suite', function () {
  let broker: EmbeddedBroker;
  afterEach(async () => broker.stop());

  function subscriber(
    options: { ackMode?: 'auto' | 'client' | 'client-individual'; prefetch?: number } = {},
  ) {
    const got: Delivery[] = [];
    return {
      got,
      request: (target: Parameters<EmbeddedBroker['subscribe']>[0]['target']) => ({
        sessionId: 's',
        user: target.kind === 'user' ? target.user : 'u',
        target,
        ackMode: options.ackMode ?? 'auto',
        prefetch: options.prefetch ?? 10,
        deliver: (delivery: Delivery) => got.push(delivery),
      }),
    };
  }

  it('says what it is and is ready until stopped, telling listeners when that changes', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    const changes: Readiness[] = [];
    broker.onReadinessChange((readiness) => changes.push(readiness));
    await broker.start();
    expect(broker.kind).to.equal('embedded');
    expect(broker.readiness()).to.deep.equal({ ready: true });
    await broker.stop();
    expect(broker.readiness().ready).to.equal(false);
    expect(changes).to.have.length(1);
    await expectServiceError(broker.subscribe(subscriber().request(topic('t'))), 'broker_unavailable');
  });

  it('refuses a publish beyond maxQueueLength with limit_exceeded, and takes more once drained', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1', maxQueueLength: 3 });
    for (const id of ['m1', 'm2', 'm3']) await broker.publish(queue('jobs'), message(id));
    await expectServiceError(broker.publish(queue('jobs'), message('m4')), 'limit_exceeded');
    const refusal = await broker.publish(queue('jobs'), message('m4')).then(
      () => 'resolved',
      (error: unknown) => String(error),
    );
    expect(refusal, 'the reason names the queue and the limit')
      .to.include('/queue/jobs')
      .and.include('limit 3');
    const consumer = subscriber();
    await broker.subscribe(consumer.request(queue('jobs')));
    await waitFor(() => consumer.got.length === 3, 1000, 'the backlog');
    await broker.publish(queue('jobs'), message('m4'));
    expect(consumer.got.map((delivery) => delivery.messageId)).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
  });

  it('counts a whole transaction against the limit and applies none of it when over', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1', maxQueueLength: 2 });
    await broker.publish(queue('jobs'), message('m1'));
    const ops = ['m2', 'm3'].map((id) => ({
      op: 'publish' as const,
      target: queue('jobs'),
      message: message(id),
    }));
    await expectServiceError(broker.commit(ops), 'limit_exceeded');
    const consumer = subscriber();
    await broker.subscribe(consumer.request(queue('jobs')));
    await waitFor(() => consumer.got.length === 1, 1000, 'm1');
    await sleep(50);
    expect(consumer.got.map((delivery) => delivery.messageId)).to.deep.equal(['m1']);
  });

  it('cuts off a client-ack topic subscriber that never acks; publishes go on for everyone (11.14)', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1', maxQueueLength: 2 });
    const slow = subscriber({ ackMode: 'client', prefetch: 1 });
    const ended: { code: string; message: string }[] = [];
    const fast = subscriber();
    await broker.subscribe({ ...slow.request(topic('t')), ended: (reason) => ended.push(reason) });
    await broker.subscribe(fast.request(topic('t')));
    for (let i = 1; i <= 6; i += 1) await broker.publish(topic('t'), message(`m${i}`)); // none refused
    expect(fast.got.map((delivery) => delivery.messageId)).to.deep.equal([
      'm1',
      'm2',
      'm3',
      'm4',
      'm5',
      'm6',
    ]);
    expect(ended.map((e) => e.code)).to.deep.equal(['slow_consumer']);
    expect(ended[0].message).to.match(/cut off: 2 messages wait unacknowledged \(limit 2\)/);
    expect(slow.got.map((delivery) => delivery.messageId)).to.deep.equal(['m1']);
  });

  it('forgets a closed client-ack topic subscription: its backlog cannot block later publishes', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1', maxQueueLength: 2 });
    const closing = subscriber({ ackMode: 'client', prefetch: 1 });
    const subscription = await broker.subscribe(closing.request(topic('t')));
    await subscription.close();
    for (let i = 0; i < 5; i += 1) await broker.publish(topic('t'), message(`m${i}`));
    expect(closing.got).to.have.length(0);
  });

  it('rotates queue deliveries round-robin among consumers with capacity', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    const consumers = [subscriber(), subscriber(), subscriber()];
    for (const consumer of consumers) await broker.subscribe(consumer.request(queue('rr')));
    for (let i = 0; i < 6; i += 1) await broker.publish(queue('rr'), message(`m${i}`));
    expect(consumers.map((c) => c.got.map((delivery) => delivery.messageId))).to.deep.equal([
      ['m0', 'm3'],
      ['m1', 'm4'],
      ['m2', 'm5'],
    ]);
  });

  it('copes with a deliver callback that acks synchronously, however long the backlog', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    for (let i = 0; i < 5000; i += 1) await broker.publish(queue('chain'), message(`m${i}`));
    const ids: string[] = [];
    let ack: (ackId: string) => Promise<void> = async () => undefined;
    const subscription = await broker.subscribe({
      sessionId: 's',
      user: 'u',
      target: queue('chain'),
      ackMode: 'client-individual',
      prefetch: 1,
      deliver: (delivery) => {
        ids.push(delivery.messageId);
        void ack(delivery.ackId!);
      },
    });
    ack = (ackId) => subscription.ack(ackId);
    await waitFor(() => ids.length === 5000, 5000, 'the whole backlog');
    expect(ids[4999]).to.equal('m4999');
  });

  it("refuses a subscription to another user's destination and a bad prefetch", async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    const request = subscriber().request(userTarget('alice', 'greetings'));
    await expectServiceError(broker.subscribe({ ...request, user: 'mallory' }), 'forbidden');
    const client = subscriber({ ackMode: 'client', prefetch: -1 });
    await expectServiceError(broker.subscribe(client.request(queue('q'))), 'bad_request');
  });

  it('makes ackIds random, not counters', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    const other = new EmbeddedBroker({ instanceId: 'i2' });
    const firsts: string[] = [];
    for (const b of [broker, other]) {
      const consumer = subscriber({ ackMode: 'client-individual' });
      await b.subscribe(consumer.request(topic('t')));
      await b.publish(topic('t'), message('m1'));
      firsts.push(consumer.got[0].ackId!);
    }
    await other.stop();
    expect(firsts[0]).to.match(/^[A-Za-z0-9_-]{24}$/);
    expect(firsts[0]).to.not.equal(firsts[1]);
  });

  it('keeps what it took even if the publisher reuses its buffers afterwards', async function () {
    broker = new EmbeddedBroker({ instanceId: 'i1' });
    const body = Buffer.from('original');
    const headers = { 'x-a': '1' };
    await broker.publish(queue('copy'), { id: 'm1', headers, body });
    body.fill(0);
    headers['x-a'] = 'changed';
    const consumer = subscriber();
    await broker.subscribe(consumer.request(queue('copy')));
    await waitFor(() => consumer.got.length === 1, 1000, 'm1');
    expect(consumer.got[0].body.toString()).to.equal('original');
    expect(consumer.got[0].headers).to.deep.equal({ 'x-a': '1' });
  });

  it('rejects an invalid maxQueueLength', function () {
    expect(() => new EmbeddedBroker({ instanceId: 'i1', maxQueueLength: 0 })).to.throw(/maxQueueLength/);
    broker = new EmbeddedBroker({ instanceId: 'i1' });
  });
});

describe('createBroker (embedded)', () => {
  it('logs a subscriber whose deliver callback throws instead of dropping the error', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const broker = createBroker(testSettings(), logger, new Metrics({ defaultMetrics: false }));
    try {
      await broker.start();
      await broker.subscribe({
        sessionId: 'failing-session',
        user: 'u',
        target: { kind: 'topic', name: 'boom' },
        ackMode: 'auto',
        prefetch: 10,
        deliver: () => {
          throw new Error('deliver blew up');
        },
      });
      await broker.publish(
        { kind: 'topic', name: 'boom' },
        { id: 'm1', headers: {}, body: Buffer.from('x') },
      );
      const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      const entry = logged.find((l) => l.session === 'failing-session');
      expect(entry, 'a log line for the failed delivery').to.not.equal(undefined);
      expect(JSON.stringify(entry)).to.include('deliver blew up');
    } finally {
      await broker.stop();
    }
  });
});
