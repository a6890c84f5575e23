import { expect } from 'chai';

import { EmbeddedBroker } from '../../../app/broker/embedded';
import { waitFor } from '../../support/wait';
import { call, errorOf, record, startRestApp, tokenFor, type RestApp } from './harness';

describe('REST POST /api/messages', () => {
  let app: RestApp;
  let pusher: string;

  beforeEach(async () => {
    app = await startRestApp();
    pusher = tokenFor(app, 'backend', 'push');
  });
  afterEach(async () => {
    await app.close();
  });

  const publish = (body: unknown, token = pusher) => call(app, 'POST', '/api/messages', { token, body });

  it('publishes to every subscriber of a topic and answers 202 with the message-id', async () => {
    const a = await record(app.broker, 'alice', { kind: 'topic', name: 'prices' });
    const b = await record(app.broker, 'bob', { kind: 'topic', name: 'prices' });
    const answer = await publish({
      destination: '/topic/prices',
      body: { eur: 1.08 },
      headers: { market: 'fx' },
    });
    expect(answer.status).to.equal(202);
    const { id } = answer.body as { id: string };
    await waitFor(() => a.deliveries.length === 1 && b.deliveries.length === 1, 2000, 'both subscribers');
    for (const { deliveries } of [a, b]) {
      expect(deliveries[0].messageId).to.equal(id);
      expect(deliveries[0].body.toString()).to.equal('{"eur":1.08}');
      expect(deliveries[0].headers).to.include({ 'content-type': 'application/json', market: 'fx' });
    }
  });

  it('enqueues on a queue: the message waits for a consumer', async () => {
    expect((await publish({ destination: '/queue/jobs', body: 'job-1' })).status).to.equal(202);
    const { deliveries } = await record(app.broker, 'worker', { kind: 'queue', name: 'jobs' });
    await waitFor(() => deliveries.length === 1, 2000, 'the queued message');
    expect(deliveries[0].body.toString()).to.equal('job-1');
  });

  it('refuses user destinations, pointing at /api/users/{user}/messages', async () => {
    for (const destination of ['/user/queue/greetings', '/user/topic/news', '/user/bob/queue/x']) {
      const answer = await publish({ destination, body: 'x' });
      expect(answer.status, destination).to.equal(400);
      expect(errorOf(answer).error).to.equal('bad_destination');
      expect(errorOf(answer).detail).to.include('/api/users/{user}/messages');
    }
  });

  it('refuses /app destinations and unknown prefixes', async () => {
    const app1 = await publish({ destination: '/app/echo', body: 'x' });
    expect(app1.status).to.equal(400);
    expect(errorOf(app1).detail).to.include('/topic/<name> or /queue/<name>');
    for (const destination of [
      '/exchange/amq.topic/x',
      '/amq/queue/q',
      '/temp-queue/t',
      'topic/x',
      '/topic/a#',
    ]) {
      const answer = await publish({ destination, body: 'x' });
      expect(answer.status, destination).to.equal(400);
      expect(errorOf(answer).error, destination).to.equal('bad_destination');
    }
  });

  it('refuses unknown fields and needs scope push', async () => {
    const unknown = await publish({ destination: '/topic/prices', body: 'x', user: 'alice' });
    expect(unknown.status).to.equal(400);
    expect(errorOf(unknown).detail).to.equal("unknown field 'user' (allowed: destination, body, headers)");
    const noScope = await publish({ destination: '/topic/prices', body: 'x' }, tokenFor(app, 'alice'));
    expect(noScope.status).to.equal(403);
    expect(errorOf(noScope).detail).to.equal("this call needs a token with scope 'push' (it has none)");
  });

  it('answers 429 limit_exceeded with Retry-After while a queue is full, and takes messages again once drained', async () => {
    await app.close();
    app = await startRestApp({ broker: new EmbeddedBroker({ instanceId: 'small', maxQueueLength: 2 }) });
    pusher = tokenFor(app, 'backend', 'push');
    for (const body of ['1', '2'])
      expect((await publish({ destination: '/queue/jobs', body })).status).to.equal(202);
    const refused = await publish({ destination: '/queue/jobs', body: '3' });
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('retry-after')).to.equal('1');
    expect(errorOf(refused).error).to.equal('limit_exceeded');
    expect(errorOf(refused).detail).to.include("queue '/queue/jobs' already holds 2 undelivered messages");
    const { deliveries } = await record(app.broker, 'worker', { kind: 'queue', name: 'jobs' });
    await waitFor(() => deliveries.length === 2, 2000, 'the queued messages');
    expect((await publish({ destination: '/queue/jobs', body: '4' })).status).to.equal(202);
  });

  it('counts publishes as kind destination', async () => {
    await publish({ destination: '/topic/prices', body: 'x' });
    const pushes = await app.metrics.registry.getSingleMetricAsString('stomp_pushes_total');
    expect(pushes).to.include('kind="destination",outcome="accepted"} 1');
  });
});
