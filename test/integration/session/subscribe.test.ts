/**
 * SUBSCRIBE and UNSUBSCRIBE (spec 1.2 §SUBSCRIBE, §UNSUBSCRIBE, §MESSAGE): deliveries carry the
 * subscription and destination, stop after UNSUBSCRIBE, ids are unique per session, the per-session
 * limit holds, and every destination outside the table is refused with an ERROR naming it.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import type { BrokerSubscription, SubscribeRequest } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { startService } from '../../../app/server';
import { startTestService, testSettings, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';
import { metricValue } from '../../support/metrics';

describe('session: SUBSCRIBE and UNSUBSCRIBE', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ maxSubscriptionsPerSession: 3 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = async (user = 'alice'): Promise<RawStompClient> =>
    clients.add(await connectRaw(service, user));
  /** Publishes on /topic/chat.<room> through the shipped /app/chat handler. */
  const chat = async (from: RawStompClient, room: string, body: string): Promise<void> => {
    await from.sendWithReceipt('SEND', { destination: `/app/chat/${room}` }, body);
  };

  it('a subscriber gets MESSAGE frames with subscription, message-id and destination', async () => {
    const sub = await connect();
    await sub.sendWithReceipt('SUBSCRIBE', { id: 'my-sub', destination: '/topic/chat.a' });
    await chat(await connect('bob'), 'a', 'one');
    const message = await sub.waitForFrame('MESSAGE');
    expect(header(message, 'subscription')).to.equal('my-sub');
    expect(header(message, 'destination')).to.equal('/topic/chat.a');
    expect(header(message, 'message-id')).to.be.a('string').with.length.greaterThan(0);
    expect(header(message, 'ack')).to.equal(undefined); // auto mode: nothing to acknowledge
    expect(message.body.toString()).to.equal('one');
  });

  it('two subscriptions of one session to one topic get one copy each', async () => {
    const sub = await connect();
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/chat.b' });
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's2', destination: '/topic/chat.b' });
    await chat(await connect('bob'), 'b', 'x');
    const ids = [await sub.waitForFrame('MESSAGE'), await sub.waitForFrame('MESSAGE')].map((f) =>
      header(f, 'subscription'),
    );
    expect(ids.sort()).to.deep.equal(['s1', 's2']);
    await sleep(100);
    expect(sub.all('MESSAGE')).to.have.length(2);
  });

  it('after UNSUBSCRIBE nothing more is delivered on that subscription', async () => {
    const sub = await connect();
    const sender = await connect('bob');
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/chat.c' });
    await chat(sender, 'c', 'before');
    await sub.waitForFrame('MESSAGE');
    await sub.sendWithReceipt('UNSUBSCRIBE', { id: 's1' });
    await chat(sender, 'c', 'after');
    await sleep(150);
    expect(sub.all('MESSAGE').map((f) => f.body.toString())).to.deep.equal(['before']);
    expect(sub.closed).to.equal(false);
  });

  it('the id is free again after UNSUBSCRIBE', async () => {
    const sub = await connect();
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/chat.d' });
    await sub.sendWithReceipt('UNSUBSCRIBE', { id: 's1' });
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/chat.d' });
  });

  it('a duplicate subscription id → ERROR naming the id', async () => {
    const sub = await connect();
    await sub.sendWithReceipt('SUBSCRIBE', { id: 'dup', destination: '/topic/a' });
    sub.send('SUBSCRIBE', { id: 'dup', destination: '/topic/b' });
    expect(header(await sub.expectErrorAndClose(), 'message')).to.match(
      /subscription id 'dup' is already in use/,
    );
  });

  it('UNSUBSCRIBE of an unknown id → ERROR', async () => {
    const sub = await connect();
    sub.send('UNSUBSCRIBE', { id: 'nope' });
    expect(header(await sub.expectErrorAndClose(), 'message')).to.match(/no subscription with id 'nope'/);
  });

  it('SUBSCRIBE without id (1.2) or destination → ERROR naming the header', async () => {
    const noId = await connect();
    noId.send('SUBSCRIBE', { destination: '/topic/a' });
    expect(header(await noId.expectErrorAndClose(), 'message')).to.match(/needs a 'id' header/);
    const noDestination = await connect();
    noDestination.send('SUBSCRIBE', { id: 's' });
    expect(header(await noDestination.expectErrorAndClose(), 'message')).to.match(
      /needs a 'destination' header/,
    );
  });

  it('an unknown ack mode → ERROR', async () => {
    const sub = await connect();
    sub.send('SUBSCRIBE', { id: 's', destination: '/topic/a', ack: 'sometimes' });
    expect(header(await sub.expectErrorAndClose(), 'message')).to.match(/ack must be one of/);
  });

  it('the subscription limit → ERROR with the limit, counted in /metrics', async () => {
    const before = await metricValue(service.url, 'stomp_limits_hit_total', {
      limit: 'subscriptions_per_session',
    });
    const sub = await connect();
    for (let i = 0; i < 3; i++)
      await sub.sendWithReceipt('SUBSCRIBE', { id: `s${i}`, destination: '/topic/a' });
    sub.send('SUBSCRIBE', { id: 's3', destination: '/topic/a' });
    expect(header(await sub.expectErrorAndClose(), 'message')).to.match(
      /at most 3 subscriptions per session/,
    );
    expect(
      await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'subscriptions_per_session' }),
    ).to.equal(before + 1);
  });

  it('unsubscribing makes room under the limit', async () => {
    const sub = await connect();
    for (let i = 0; i < 3; i++)
      await sub.sendWithReceipt('SUBSCRIBE', { id: `s${i}`, destination: '/topic/a' });
    await sub.sendWithReceipt('UNSUBSCRIBE', { id: 's0' });
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's3', destination: '/topic/a' });
  });

  const refused = [
    '/exchange/x',
    '/exchange/amq.topic/a',
    '/amq/queue/x',
    '/temp-queue/x',
    '/reply-queue/x',
    '/user/bob/queue/x',
    '/user/queue/*',
    '/topic/*',
    '/topic/a.#',
    '/topic/a.*',
    '/topic/a/b',
    '/topic/',
    '/queue/%2e',
    '/queue/..',
    '/queue/x', // not in the default rules
    '/app/echo', // /app is for SEND
    '/somewhere/else',
    'topic/a',
  ];
  for (const destination of refused) {
    it(`SUBSCRIBE ${destination} → ERROR naming the destination, then close`, async () => {
      const sub = await connect();
      sub.send('SUBSCRIBE', { id: 's', destination, receipt: 'r' });
      const error = await sub.expectErrorAndClose();
      expect(header(error, 'message')).to.include(`'${destination}'`);
      expect(sub.all('RECEIPT')).to.have.length(0);
    });
  }

  it('SEND to a refused destination → ERROR naming it, nothing delivered', async () => {
    const listener = await connect('bob');
    await listener.sendWithReceipt('SUBSCRIBE', { id: 's', destination: '/topic/chat.e' });
    for (const destination of ['/topic/chat.e', '/exchange/amq.topic/chat.e', '/queue/x', '/nowhere']) {
      const sender = await connect();
      sender.send('SEND', { destination }, 'x');
      expect(header(await sender.expectErrorAndClose(), 'message')).to.include(`'${destination}'`);
    }
    await sleep(100);
    expect(listener.all('MESSAGE')).to.have.length(0);
  });
});

describe('session: a connection lost while the broker is still subscribing', () => {
  /** An embedded broker whose subscribe() waits until the test opens the gate. */
  class GatedBroker extends EmbeddedBroker {
    calls = 0;
    private open: () => void = () => undefined;
    private readonly gate = new Promise<void>((resolve) => {
      this.open = resolve;
    });

    release(): void {
      this.open();
    }

    override async subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
      this.calls++;
      await this.gate;
      return super.subscribe(request);
    }
  }

  let service: RunningService;
  let broker: GatedBroker;
  const clients = new RawClients();

  before(async () => {
    const settings = testSettings();
    broker = new GatedBroker({ instanceId: settings.instanceId });
    service = await startService({ settings, broker });
  });
  after(async () => {
    clients.closeAll();
    await service.stop();
  });

  it('leaves the subscription gauge at zero, not below', async () => {
    const client = clients.add(await connectRaw(service, 'alice'));
    client.send('SUBSCRIBE', { id: 's1', destination: '/topic/chat.gated' });
    await waitFor(() => broker.calls === 1, 2000, 'the broker to be asked to subscribe');
    client.close();
    await waitFor(() => service.registry.size === 0, 2000, 'the session to end');
    broker.release();
    await sleep(100);
    expect(await metricValue(service.url, 'stomp_subscriptions')).to.equal(0);
  });
});
