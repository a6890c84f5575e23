/**
 * POST /api/messages/batch (SPEC "Batch pushes") on the embedded broker and on the local RabbitMQ:
 * user, users and topic items delivered with one result per item in item order, items refused on
 * their own, the call's own 400/413/503, the 202 rule per item (no id before the broker has the
 * message), item order kept per destination, and the counts in /metrics.
 */
import { expect } from 'chai';

import type { Broker, OutgoingMessage, PublishReceipt } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { MessageTarget } from '../../../app/destinations/destination';
import { ServiceError } from '../../../app/errors';
import type { Settings } from '../../../config/settings';
import { unique } from '../../support/broker-harness';
import { GatedBroker } from '../../support/gated-broker';
import { AMQP_URL, STOMP_URL, waitForRabbit } from '../../support/rabbitmq';
import { waitFor } from '../../support/wait';
import { call, errorOf, record, startRestApp, tokenFor, type ApiAnswer, type RestApp } from './harness';

type Result = { id?: string; error?: string; detail?: string };

const user = (name: string, queue: string): MessageTarget => ({
  kind: 'user',
  user: name,
  type: 'queue',
  name: queue,
});

function resultsOf(answer: ApiAnswer): Result[] {
  expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
  return (answer.body as { results: Result[] }).results;
}

/** Refuses every publish to one topic: a broker that takes some messages of a batch and not others. */
class RefusingBroker extends EmbeddedBroker {
  constructor(private readonly refused: string) {
    super({ instanceId: 'refusing' });
  }

  override async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    if (target.kind === 'topic' && target.name === this.refused) {
      throw new ServiceError('broker_unavailable', 'the broker refused this one');
    }
    return super.publish(target, message);
  }
}

/** Takes each message after a random delay, so publishes started together finish in any order. */
class JitteryBroker extends EmbeddedBroker {
  constructor() {
    super({ instanceId: 'jittery' });
  }

  override async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 10));
    return super.publish(target, message);
  }
}

const BACKENDS: { name: string; settings: () => Partial<Settings> }[] = [
  { name: 'embedded broker', settings: () => ({}) },
  { name: 'RabbitMQ', settings: () => ({ brokerUrl: `${STOMP_URL}/%2F`, amqpUrl: AMQP_URL }) },
];

for (const backend of BACKENDS) {
  describe(`REST POST /api/messages/batch (${backend.name})`, function () {
    this.timeout(20_000);
    let app: RestApp;
    let pusher: string;

    before(async () => {
      if (backend.name === 'RabbitMQ') await waitForRabbit();
    });
    beforeEach(async () => {
      app = await startRestApp({ settings: backend.settings() });
      pusher = tokenFor(app, 'backend', 'push');
    });
    afterEach(async () => {
      await app.close();
    });

    const batch = (body: unknown, token = pusher) =>
      call(app, 'POST', '/api/messages/batch', { token, body });

    it('delivers user, users and topic items and answers each id in item order', async () => {
      const [alice, bob, carol] = [unique('alice'), unique('bob'), unique('carol')];
      const prices = unique('prices');
      const a = await record(app.broker, alice, user(alice, 'greetings'));
      const b = await record(app.broker, bob, user(bob, 'greetings'));
      const c = await record(app.broker, carol, user(carol, 'greetings'));
      const t = await record(app.broker, 'watcher', { kind: 'topic', name: prices });
      const answer = await batch({
        messages: [
          { user: alice, destination: '/queue/greetings', body: { to: 'alice' }, headers: { trace: 't-1' } },
          { users: [bob, carol, bob], destination: '/user/queue/greetings', body: 'to both' },
          { destination: `/topic/${prices}`, body: { price: 42 } },
        ],
      });
      const results = resultsOf(answer);
      expect(results).to.have.length(3);
      for (const r of results) expect(r.id).to.match(/^[0-9a-f-]{36}$/);
      await waitFor(
        () => a.deliveries.length + b.deliveries.length + c.deliveries.length + t.deliveries.length === 4,
        5000,
        'four deliveries',
      );
      expect(a.deliveries[0].messageId).to.equal(results[0].id);
      expect(a.deliveries[0].headers).to.include({ 'content-type': 'application/json', trace: 't-1' });
      // One message to several users: the same id for each, and bob (named twice) gets it once.
      expect(b.deliveries.map((d) => d.messageId)).to.deep.equal([results[1].id]);
      expect(c.deliveries.map((d) => d.messageId)).to.deep.equal([results[1].id]);
      expect(c.deliveries[0].body.toString('utf8')).to.equal('to both');
      expect(t.deliveries[0].messageId).to.equal(results[2].id);
      expect(JSON.parse(t.deliveries[0].body.toString('utf8'))).to.deep.equal({ price: 42 });
      await Promise.all([a, b, c, t].map((r) => r.subscription.close()));
    });

    it('keeps item order for messages to the same destination', async () => {
      const dave = unique('dave');
      const ticks = unique('ticks');
      const d = await record(app.broker, dave, user(dave, 'greetings'));
      const t = await record(app.broker, 'watcher', { kind: 'topic', name: ticks });
      const messages = [];
      for (let i = 0; i < 200; i++) {
        messages.push({ user: dave, destination: '/queue/greetings', body: `u${i}` });
        messages.push({ destination: `/topic/${ticks}`, body: `t${i}` });
      }
      const results = resultsOf(await batch({ messages }));
      expect(results.filter((r) => r.id === undefined)).to.deep.equal([]);
      await waitFor(() => d.deliveries.length === 200 && t.deliveries.length === 200, 10_000, 'all 400');
      const expected = (prefix: string) => Array.from({ length: 200 }, (_, i) => `${prefix}${i}`);
      expect(d.deliveries.map((x) => x.body.toString('utf8'))).to.deep.equal(expected('u'));
      expect(t.deliveries.map((x) => x.body.toString('utf8'))).to.deep.equal(expected('t'));
      await Promise.all([d, t].map((r) => r.subscription.close()));
    });

    it('answers a refused item with its own error, naming it, and delivers the others', async () => {
      const erin = unique('erin');
      const e = await record(app.broker, erin, user(erin, 'greetings'));
      const ok = { user: erin, destination: '/queue/greetings', body: 'ok' };
      const results = resultsOf(
        await batch({
          messages: [
            ok,
            { user: erin, destination: '/queue/a*', body: 'x' },
            { destination: '/user/queue/greetings', body: 'x' },
            { destination: '/app/echo', body: 'x' },
            { user: erin, destination: '/queue/greetings', body: 'x', priority: 9 },
            { user: erin, destination: '/queue/greetings' },
            { users: [], destination: '/queue/greetings', body: 'x' },
            { users: ['ok', 'has space'], destination: '/queue/greetings', body: 'x' },
            { user: erin, destination: '/queue/greetings', body: 'x', headers: { 'message-id': 'mine' } },
            {
              user: erin,
              destination: '/queue/greetings',
              body: 'x'.repeat(app.settings.restBodyLimitBytes + 1),
            },
            'not an item',
            ok,
          ],
        }),
      );
      expect(results.map((r) => r.error ?? 'taken')).to.deep.equal([
        'taken',
        'bad_destination',
        'bad_destination',
        'bad_destination',
        'bad_request',
        'bad_request',
        'bad_request',
        'bad_request',
        'bad_request',
        'payload_too_large',
        'bad_request',
        'taken',
      ]);
      results
        .slice(1, -1)
        .forEach((r, i) =>
          expect(r.detail, JSON.stringify(r)).to.match(new RegExp(`^messages\\[${i + 1}\\]: `)),
        );
      expect(results[4].detail).to.include("'priority'");
      expect(results[7].detail).to.include('users[1]');
      expect(results[8].detail).to.include('message-id');
      expect(results[9].detail).to.include('REST_BODY_LIMIT_BYTES');
      await waitFor(() => e.deliveries.length === 2, 5000, 'the two good items');
      expect(e.deliveries.map((d) => d.messageId)).to.deep.equal([results[0].id, results[11].id]);
      await e.subscription.close();
    });

    it('stores durable items in the inbox (embedded) or answers them inbox_unavailable while it is off (RabbitMQ without INBOX_DATABASE_URL), and the others go on', async () => {
      const frank = unique('frank');
      const inboxOn = backend.name === 'embedded broker';
      const f = await record(app.broker, frank, user(frank, 'greetings'));
      const results = resultsOf(
        await batch({
          messages: [
            { user: frank, destination: '/queue/inbox', body: 'kept?' },
            { users: [frank], destination: '/user/queue/inbox.orders', body: 'kept?' },
            { user: frank, destination: '/queue/greetings', body: 'live' },
          ],
        }),
      );
      if (inboxOn) {
        expect(results[0]).to.include({ seq: 1, stored: true });
        expect(results[1]).to.deep.include({ seq: { [frank]: 2 }, stored: true });
      } else {
        expect(results[0].error).to.equal('inbox_unavailable');
        expect(results[0].detail).to.include('INBOX_DATABASE_URL');
        expect(results[1].error).to.equal('inbox_unavailable');
      }
      expect(results[2].id).to.be.a('string');
      await waitFor(() => f.deliveries.length === 1, 5000, 'the live item');
      await f.subscription.close();
    });

    it('answers 400 for a body that is not {"messages": [...]}', async () => {
      for (const body of [
        '{"messages": [',
        [],
        { messages: {} },
        { items: [] },
        { messages: [], extra: 1 },
      ]) {
        const answer = await batch(body);
        expect(answer.status, JSON.stringify(body)).to.equal(400);
        expect(errorOf(answer).error).to.equal('bad_request');
      }
      const empty = await batch({ messages: [] });
      expect(resultsOf(empty)).to.deep.equal([]);
    });

    it('answers 413 for the whole call past REST_BATCH_MAX items, users or body bytes', async () => {
      const max = app.settings.restBatchMax;
      const item = { user: 'alice', destination: '/queue/greetings', body: '' };
      const tooMany = await batch({ messages: Array.from({ length: max + 1 }, () => item) });
      expect(tooMany.status).to.equal(413);
      expect(errorOf(tooMany).detail).to.include('REST_BATCH_MAX');
      const users = Array.from({ length: max + 1 }, (_, i) => `u${i}`);
      const tooManyUsers = await batch({ messages: [{ users, destination: '/queue/greetings', body: '' }] });
      expect(tooManyUsers.status).to.equal(413);
      expect(errorOf(tooManyUsers).detail)
        .to.include('REST_BATCH_MAX')
        .and.include(`${max + 1}`);
      const big = 'x'.repeat(60_000);
      const tooBig = await batch({ messages: Array.from({ length: 20 }, () => ({ ...item, body: big })) });
      expect(tooBig.status).to.equal(413);
      expect(errorOf(tooBig).detail).to.include(`${app.settings.restBatchBodyLimitBytes}`);
      const metrics = await call(app, 'GET', '/metrics');
      expect(metrics.body).to.not.include('stomp_pushes_total{kind="user"');
    });

    it('counts each item in /metrics by kind and outcome', async () => {
      resultsOf(
        await batch({
          messages: [
            { user: 'gina', destination: '/queue/greetings', body: '1' },
            { users: ['gina', 'hal'], destination: '/queue/greetings', body: '2' },
            { user: 'gina', destination: '/queue/*', body: '3' },
            { destination: `/topic/${unique('t')}`, body: '4' },
          ],
        }),
      );
      const metrics = await app.metrics.registry.getSingleMetricAsString('stomp_pushes_total');
      expect(metrics).to.include('kind="user",outcome="accepted"} 2');
      expect(metrics).to.include('kind="user",outcome="rejected"} 1');
      expect(metrics).to.include('kind="destination",outcome="accepted"} 1');
    });

    it("answers 401 without a token and 403 without scope 'push'", async () => {
      const body = { messages: [{ user: 'alice', destination: '/queue/greetings', body: 'x' }] };
      expect((await call(app, 'POST', '/api/messages/batch', { body })).status).to.equal(401);
      const answer = await batch(body, tokenFor(app, 'alice', 'read'));
      expect(answer.status).to.equal(403);
      expect(errorOf(answer).error).to.equal('forbidden');
      expect((await call(app, 'GET', '/api/messages/batch', { token: pusher })).status).to.equal(405);
    });

    it('answers 503 when the broker is down and the batch holds a live item; durable ones alone still answer', async () => {
      await app.broker.stop();
      const live = await batch({
        messages: [
          { user: 'alice', destination: '/queue/inbox', body: 'x' },
          { destination: '/topic/prices', body: 'x' },
        ],
      });
      expect(live.status).to.equal(503);
      expect(live.headers.get('retry-after')).to.equal('1');
      expect(errorOf(live).error).to.equal('broker_unavailable');
      const durable = resultsOf(
        await batch({
          messages: [
            { user: 'alice', destination: '/queue/inbox', body: 'x' },
            { user: 'alice', destination: '/queue/*', body: 'x' },
          ],
        }),
      );
      // Durable items wait in the inbox whatever the broker does (the embedded one keeps them in memory).
      expect(durable.map((r) => r.error)).to.deep.equal([
        backend.name === 'embedded broker' ? undefined : 'inbox_unavailable',
        'bad_destination',
      ]);
    });

    it('answers 503 draining while the instance shuts down', async () => {
      app.draining = true;
      const answer = await batch({ messages: [] });
      expect(answer.status).to.equal(503);
      expect(errorOf(answer).error).to.equal('draining');
    });
  });
}

describe('REST POST /api/messages/batch: the broker taking the messages', () => {
  let app: RestApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(broker: Broker, settings: Partial<Settings> = {}): Promise<RestApp> {
    app = await startRestApp({ broker, settings });
    return app;
  }

  it('answers only once the broker has taken every message, each one counted in flight', async () => {
    const broker = new GatedBroker();
    const running = await start(broker);
    broker.shut();
    let answered = false;
    const pending = call(running, 'POST', '/api/messages/batch', {
      token: tokenFor(running, 'backend', 'push'),
      body: {
        messages: [
          { user: 'alice', destination: '/queue/greetings', body: '1' },
          { users: ['bob', 'carol'], destination: '/queue/greetings', body: '2' },
          { destination: '/topic/prices', body: '3' },
        ],
      },
    }).then((a) => {
      answered = true;
      return a;
    });
    await waitFor(() => broker.waiting === 4, 2000, 'four publishes at the broker');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answered, 'answered before the broker took the messages').to.equal(false);
    expect(running.inFlight).to.equal(4);
    broker.release();
    expect(resultsOf(await pending)).to.have.length(3);
    expect(running.inFlight).to.equal(0);
  });

  it('keeps item order per destination even when the broker takes messages out of order', async () => {
    const running = await start(new JitteryBroker());
    const d = await record(running.broker, 'dave', user('dave', 'greetings'));
    const t = await record(running.broker, 'watcher', { kind: 'topic', name: 'ticks' });
    const e = await record(running.broker, 'erin', user('erin', 'greetings'));
    const messages = [];
    for (let i = 0; i < 50; i++) {
      messages.push({ user: 'dave', destination: '/queue/greetings', body: `u${i}` });
      messages.push({ destination: '/topic/ticks', body: `t${i}` });
      messages.push({ users: ['erin', 'dave'], destination: '/queue/greetings', body: `m${i}` });
    }
    const results = resultsOf(
      await call(running, 'POST', '/api/messages/batch', {
        token: tokenFor(running, 'backend', 'push'),
        body: { messages },
      }),
    );
    expect(results.filter((r) => r.id === undefined)).to.deep.equal([]);
    const bodies = (r: { deliveries: { body: Buffer }[] }) =>
      r.deliveries.map((x) => x.body.toString('utf8'));
    const range = (prefix: string) => Array.from({ length: 50 }, (_, i) => `${prefix}${i}`);
    expect(bodies(d)).to.deep.equal(range('').flatMap((i) => [`u${i}`, `m${i}`]));
    expect(bodies(t)).to.deep.equal(range('t'));
    expect(bodies(e)).to.deep.equal(range('m'));
  });

  it('says for each user item whether the user was online, per user for a users item, and counts who was not', async () => {
    const running = await start(new EmbeddedBroker({ instanceId: 'online' }));
    const ivy = await record(running.broker, 'ivy', user('ivy', 'greetings'));
    const results = resultsOf(
      await call(running, 'POST', '/api/messages/batch', {
        token: tokenFor(running, 'backend', 'push'),
        body: {
          messages: [
            { user: 'ivy', destination: '/queue/greetings', body: '1' },
            { user: 'jay', destination: '/queue/greetings', body: '2' },
            { users: ['ivy', 'jay', 'kim'], destination: '/queue/greetings', body: '3' },
            { destination: '/topic/prices', body: '4' },
          ],
        },
      }),
    );
    expect(results.map(({ id: _id, ...rest }) => rest)).to.deep.equal([
      { online: true },
      { online: false },
      { online: { ivy: true, jay: false, kim: false } },
      {},
    ]);
    const offline = await running.metrics.registry.getSingleMetricAsString('stomp_user_pushes_offline_total');
    expect(offline).to.include('stomp_user_pushes_offline_total 3');
    await ivy.subscription.close();
  });

  it('answers 503 overloaded when the batch does not fit under REST_MAX_PUSHES_IN_FLIGHT', async () => {
    const broker = new GatedBroker();
    const running = await start(broker, { restMaxPushesInFlight: 3 });
    const token = tokenFor(running, 'backend', 'push');
    broker.shut();
    const first = call(running, 'POST', '/api/messages/batch', {
      token,
      body: { messages: [{ users: ['a', 'b'], destination: '/queue/greetings', body: '1' }] },
    });
    await waitFor(() => broker.waiting === 2, 2000, 'two publishes at the broker');
    const refused = await call(running, 'POST', '/api/messages/batch', {
      token,
      body: { messages: [{ users: ['c', 'd'], destination: '/queue/greetings', body: '2' }] },
    });
    expect(refused.status).to.equal(503);
    expect(errorOf(refused).error).to.equal('overloaded');
    expect(errorOf(refused).detail).to.include('REST_MAX_PUSHES_IN_FLIGHT');
    broker.release();
    expect(resultsOf(await first)).to.have.length(1);
  });

  it('answers an item the broker refused with its error, and the items it took with their ids', async () => {
    const running = await start(new RefusingBroker('refused'));
    const results = resultsOf(
      await call(running, 'POST', '/api/messages/batch', {
        token: tokenFor(running, 'backend', 'push'),
        body: {
          messages: [
            { destination: '/topic/taken', body: '1' },
            { destination: '/topic/refused', body: '2' },
            { destination: '/topic/taken', body: '3' },
          ],
        },
      }),
    );
    expect(results[0]).to.have.all.keys('id');
    expect(results[1]).to.deep.equal({ error: 'broker_unavailable', detail: 'the broker refused this one' });
    expect(results[2]).to.have.all.keys('id');
    const metrics = await running.metrics.registry.getSingleMetricAsString('stomp_pushes_total');
    expect(metrics).to.include('kind="destination",outcome="unavailable"} 1');
  });
});
