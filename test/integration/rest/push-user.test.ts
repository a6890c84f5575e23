import { expect } from 'chai';

import type { OutgoingMessage, PublishReceipt } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { MessageTarget } from '../../../app/destinations/destination';
import { ServiceError } from '../../../app/errors';
import { waitFor } from '../../support/wait';
import { call, errorOf, record, startRestApp, tokenFor, type RestApp } from './harness';

const greetings: MessageTarget = { kind: 'user', user: 'alice', type: 'queue', name: 'greetings' };

/** An embedded broker whose publish() waits until the test lets it through. */
class GatedBroker extends EmbeddedBroker {
  private gates: (() => void)[] = [];

  get waiting(): number {
    return this.gates.length;
  }

  open(): void {
    for (const gate of this.gates.splice(0)) gate();
  }

  override async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    await new Promise<void>((resolve) => this.gates.push(resolve));
    return super.publish(target, message);
  }
}

/** The failure mode under test: a broker that cannot take messages. */
class UnavailableBroker extends EmbeddedBroker {
  override async publish(): Promise<PublishReceipt> {
    throw new ServiceError('broker_unavailable', 'broker connection lost');
  }
}

describe('REST POST /api/users/{user}/messages', () => {
  let app: RestApp;
  let pusher: string;

  beforeEach(async () => {
    app = await startRestApp();
    pusher = tokenFor(app, 'backend', 'push');
  });
  afterEach(async () => {
    await app.close();
  });

  const push = (body: unknown, token = pusher, user = 'alice') =>
    call(app, 'POST', `/api/users/${encodeURIComponent(user)}/messages`, { token, body });

  it("delivers to the user's subscription and answers 202 with the message-id", async () => {
    const { deliveries } = await record(app.broker, 'alice', greetings);
    const answer = await push({
      destination: '/queue/greetings',
      body: { hello: 'alice' },
      headers: { trace: 't-1' },
    });
    expect(answer.status).to.equal(202);
    const { id } = answer.body as { id: string };
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    await waitFor(() => deliveries.length === 1, 2000, 'the push to arrive');
    expect(deliveries[0].messageId).to.equal(id);
    expect(JSON.parse(deliveries[0].body.toString('utf8'))).to.deep.equal({ hello: 'alice' });
    expect(deliveries[0].headers).to.include({ 'content-type': 'application/json', trace: 't-1' });
  });

  it('says whether the user was online: false with no session, true once one is there', async () => {
    const before = await push({ destination: '/queue/greetings', body: 'nobody home' });
    expect(before.status).to.equal(202);
    expect(before.body).to.have.property('online', false);
    app.presence.upsert({
      sessionId: 's-online',
      user: 'alice',
      instance: 'test',
      transport: 'websocket',
      connectedAt: new Date().toISOString(),
      subscriptions: [],
    });
    // Online means a session of the user is live, subscribed to this destination or not.
    const during = await push({ destination: '/queue/greetings', body: 'someone home' });
    expect(during.body).to.have.property('online', true);
    app.presence.remove('s-online');
    expect((await push({ destination: '/queue/greetings', body: 'gone' })).body).to.have.property(
      'online',
      false,
    );
    const offline = await app.metrics.registry.getSingleMetricAsString('stomp_user_pushes_offline_total');
    expect(offline).to.include('stomp_user_pushes_offline_total 2');
  });

  it('accepts the /user/queue/... spelling and reaches no other user', async () => {
    const alice = await record(app.broker, 'alice', greetings);
    const bob = await record(app.broker, 'bob', { ...greetings, user: 'bob' });
    expect((await push({ destination: '/user/queue/greetings', body: 'hi' })).status).to.equal(202);
    await waitFor(() => alice.deliveries.length === 1, 2000, 'the push to arrive');
    expect(bob.deliveries).to.have.length(0);
  });

  it('sends a string body as its UTF-8 bytes as text/plain, and a caller content-type wins', async () => {
    const { deliveries } = await record(app.broker, 'alice', greetings);
    await push({ destination: '/queue/greetings', body: 'grüße ✓' });
    await push({ destination: '/queue/greetings', body: '<p/>', headers: { 'Content-Type': 'text/html' } });
    await waitFor(() => deliveries.length === 2, 2000, 'both pushes to arrive');
    expect(deliveries[0].body.equals(Buffer.from('grüße ✓', 'utf8'))).to.equal(true);
    expect(deliveries[0].headers['content-type']).to.equal('text/plain;charset=utf-8');
    expect(deliveries[1].headers['content-type']).to.equal('text/html');
  });

  it('answers 202 only after the broker has taken the message', async () => {
    await app.close();
    const broker = new GatedBroker({ instanceId: 'gated' });
    app = await startRestApp({ broker });
    pusher = tokenFor(app, 'backend', 'push');
    let answered = false;
    const pending = push({ destination: '/queue/greetings', body: 'x' }).then((a) => {
      answered = true;
      return a;
    });
    await waitFor(() => broker.waiting === 1, 2000, 'the publish to reach the broker');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answered, 'answered before the broker took the message').to.equal(false);
    expect(app.inFlight).to.equal(1);
    broker.open();
    expect((await pending).status).to.equal(202);
    expect(app.inFlight).to.equal(0);
  });

  it('answers 503 overloaded with Retry-After past REST_MAX_PUSHES_IN_FLIGHT, and counts it', async () => {
    await app.close();
    const broker = new GatedBroker({ instanceId: 'gated' });
    app = await startRestApp({ broker, settings: { restMaxPushesInFlight: 2 } });
    pusher = tokenFor(app, 'backend', 'push');
    const held = [
      push({ destination: '/queue/greetings', body: '1' }),
      push({ destination: '/queue/greetings', body: '2' }),
    ];
    await waitFor(() => broker.waiting === 2, 2000, 'two publishes to reach the broker');
    const refused = await push({ destination: '/queue/greetings', body: '3' });
    expect(refused.status).to.equal(503);
    expect(refused.headers.get('retry-after')).to.equal('1');
    expect(errorOf(refused).error).to.equal('overloaded');
    expect(errorOf(refused).detail).to.include('REST_MAX_PUSHES_IN_FLIGHT');
    const metrics = await call(app, 'GET', '/metrics');
    expect(metrics.body).to.include('stomp_limits_hit_total{limit="rest_pushes_in_flight"} 1');
    expect(metrics.body).to.include('stomp_rest_pushes_in_flight 2');
    expect(metrics.body).to.include('stomp_pushes_total{kind="user",outcome="unavailable"} 1');
    broker.open();
    expect((await Promise.all(held)).map((a) => a.status)).to.deep.equal([202, 202]);
    // Room again once the broker has taken them.
    const after = push({ destination: '/queue/greetings', body: '4' });
    await waitFor(() => broker.waiting === 1, 2000, 'the next publish to reach the broker');
    broker.open();
    expect((await after).status).to.equal(202);
  });

  it('answers 503 broker_unavailable, never 202, when the broker cannot take the message', async () => {
    await app.close();
    app = await startRestApp({ broker: new UnavailableBroker({ instanceId: 'down' }) });
    const answer = await push(
      { destination: '/queue/greetings', body: 'x' },
      tokenFor(app, 'backend', 'push'),
    );
    expect(answer.status).to.equal(503);
    expect(errorOf(answer).error).to.equal('broker_unavailable');
    const metrics = await app.metrics.registry.getSingleMetricAsString('stomp_pushes_total');
    expect(metrics).to.include('kind="user",outcome="unavailable"} 1');
  });

  it('answers 503 broker_unavailable when the broker is not ready', async () => {
    await app.broker.stop();
    const answer = await push({ destination: '/queue/greetings', body: 'x' });
    expect(answer.status).to.equal(503);
    expect(errorOf(answer)).to.deep.include({ error: 'broker_unavailable' });
    expect(errorOf(answer).detail).to.include('stopped');
  });

  it('answers 503 draining while the instance shuts down', async () => {
    app.draining = true;
    const answer = await push({ destination: '/queue/greetings', body: 'x' });
    expect(answer.status).to.equal(503);
    expect(errorOf(answer).error).to.equal('draining');
  });

  it("answers 403 for a token without scope 'push'", async () => {
    const answer = await push({ destination: '/queue/greetings', body: 'x' }, tokenFor(app, 'alice', 'read'));
    expect(answer.status).to.equal(403);
    expect(errorOf(answer)).to.deep.equal({
      error: 'forbidden',
      detail: "this call needs a token with scope 'push' (it has: read)",
    });
  });

  it('refuses unknown fields, naming them', async () => {
    const answer = await push({ destination: '/queue/greetings', body: 'x', priority: 9, ttl: 1 });
    expect(answer.status).to.equal(400);
    expect(errorOf(answer).error).to.equal('bad_request');
    expect(errorOf(answer).detail).to.include("'priority'").and.include("'ttl'");
  });

  it('refuses bad destinations with 400 bad_destination', async () => {
    for (const destination of [
      '/queue/a*',
      '/topic/../x',
      '/user/bob/queue/x',
      '/app/echo',
      '/exchange/amq.topic',
      '',
    ]) {
      const answer = await push({ destination, body: 'x' });
      expect(answer.status, destination).to.equal(400);
      expect(errorOf(answer).error, destination).to.equal('bad_destination');
    }
  });

  it('refuses a missing body or destination and a body that is not a JSON object', async () => {
    for (const body of [
      { destination: '/queue/greetings' },
      { body: 'x' },
      [1, 2],
      { destination: 5, body: 'x' },
    ]) {
      const answer = await push(body);
      expect(answer.status, JSON.stringify(body)).to.equal(400);
      expect(errorOf(answer).error).to.equal('bad_request');
    }
    const noJson = await call(app, 'POST', '/api/users/alice/messages', {
      token: pusher,
      body: 'destination=/queue/x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(noJson.status).to.equal(400);
    expect(errorOf(noJson).detail).to.include('Content-Type: application/json');
  });

  it('answers 400 with a readable detail for malformed JSON', async () => {
    const answer = await push('{"destination": "/queue/greetings", ');
    expect(answer.status).to.equal(400);
    expect(errorOf(answer).error).to.equal('bad_request');
    expect(errorOf(answer).detail).to.match(/^request body is not valid JSON: /);
  });

  it('answers 413 for a body over the limit', async () => {
    const big = 'x'.repeat(app.settings.restBodyLimitBytes + 1);
    const answer = await push({ destination: '/queue/greetings', body: big });
    expect(answer.status).to.equal(413);
    expect(errorOf(answer)).to.deep.equal({
      error: 'payload_too_large',
      detail: `request body is larger than the limit of ${app.settings.restBodyLimitBytes} bytes`,
    });
  });

  it('checks headers: string values, names, count and reserved names', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ trace: 5 }, 'string value'],
      [{ 'bad name': 'x' }, 'not allowed'],
      [{ 'a:b': 'x' }, 'not allowed'],
      [Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`h${i}`, 'x'])), 'at most 32'],
      [{ 'message-id': 'forged' }, 'reserved'],
      [{ Subscription: 'sub-1' }, 'reserved'],
      [{ 'reply-to': '/temp-queue/x' }, 'reserved'],
      [{ 'x-stomp-relay-origin': 'x' }, 'reserved'],
      [{ 'x-queue-type': 'quorum' }, 'reserved'],
      [{ 'x-relay-user': 'bob' }, 'reserved'],
      [{ sender: 'someone-else' }, 'reserved'],
      [{ trace: 'a\nb' }, 'control characters'],
      [{ 'content-type': 'text/plain', 'Content-Type': 'text/html' }, 'given twice'],
    ];
    for (const [headers, why] of cases) {
      const answer = await push({ destination: '/queue/greetings', body: 'x', headers });
      expect(answer.status, JSON.stringify(headers)).to.equal(400);
      expect(errorOf(answer).detail, JSON.stringify(headers)).to.include(why);
    }
    const ok = await push({
      destination: '/queue/greetings',
      body: 'x',
      headers: { 'x-request-id': 'r1', tenant_id: 't' },
    });
    expect(ok.status).to.equal(202);
  });

  it('refuses, naming it, every header a STOMP SEND would have stripped', async () => {
    for (const name of ['authorization', 'x-user-id', 'x-message-ttl', 'CC', 'message', 'x-relayed']) {
      const answer = await push({ destination: '/queue/greetings', body: 'x', headers: { [name]: 'v' } });
      expect(answer.status, name).to.equal(400);
      expect(errorOf(answer).detail, name).to.include(`'${name}' is reserved`);
    }
  });

  it('keeps odd but allowed header names as ordinary headers', async () => {
    const { deliveries } = await record(app.broker, 'alice', greetings);
    const answer = await push({
      destination: '/queue/greetings',
      body: 'x',
      headers: JSON.parse('{"__proto__":"p"}'),
    });
    expect(answer.status).to.equal(202);
    await waitFor(() => deliveries.length === 1, 2000, 'the push to arrive');
    expect(Object.getOwnPropertyDescriptor(deliveries[0].headers, '__proto__')?.value).to.equal('p');
  });

  it('answers 400, not 500, for a URL that does not decode', async () => {
    const answer = await call(app, 'POST', '/api/users/%E0%A4%A/messages', {
      token: pusher,
      body: { destination: '/queue/greetings', body: 'x' },
    });
    expect(answer.status).to.equal(400);
    expect(errorOf(answer).error).to.equal('bad_request');
  });

  it('refuses a user name with control characters or spaces in the URL', async () => {
    for (const user of ['al\u0000ice', 'al ice', 'a\u202eb']) {
      const answer = await push({ destination: '/queue/greetings', body: 'x' }, pusher, user);
      expect(answer.status, JSON.stringify(user)).to.equal(400);
      expect(errorOf(answer).detail).to.include('the user in the URL');
    }
  });

  it('pushes to a user whose name is not ASCII', async () => {
    const target: MessageTarget = { ...greetings, user: 'zoë' };
    const { deliveries } = await record(app.broker, 'zoë', target);
    expect((await push({ destination: '/queue/greetings', body: 'x' }, pusher, 'zoë')).status).to.equal(202);
    await waitFor(() => deliveries.length === 1, 2000, 'the push to arrive');
  });

  it('counts pushes and publish latency', async () => {
    await push({ destination: '/queue/greetings', body: 'x' });
    await push({ destination: '/queue/a*', body: 'x' });
    const pushes = await app.metrics.registry.getSingleMetricAsString('stomp_pushes_total');
    expect(pushes).to.include('kind="user",outcome="accepted"} 1');
    expect(pushes).to.include('kind="user",outcome="rejected"} 1');
    const latency = await app.metrics.registry.getSingleMetricAsString('stomp_publish_latency_seconds');
    expect(latency).to.include('stomp_publish_latency_seconds_count{source="rest"} 1');
  });
});
