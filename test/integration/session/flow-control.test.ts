/**
 * Flow control (issue 16 item 3), on the embedded broker: a client that sends faster than its
 * frames are handled is no longer cut off ("more than 256 frames waiting"); the session stops
 * reading from it, each transport its own way, and reads again once its frames have drained. Every
 * RECEIPT comes, every message arrives once and in order, other sessions keep their round trip,
 * and the pause is counted. Time not read is not held against a client's heart-beats, while token
 * expiry still ends a paused session. The only hard limit left is on what a client sends while it is
 * paused and that flow control cannot hold back (SockJS sends that do not wait for their answer).
 * test/integration/faults/flow-control.test.ts runs the pipelines on RabbitMQ and measures memory.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { GatedBroker } from '../../support/gated-broker';
import { metricValue } from '../../support/metrics';
import {
  metricTransport,
  openPipeliner,
  pipeline,
  PIPELINE_TRANSPORTS,
  QueueReader,
  RoundTrips,
} from '../../support/pipeline';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { openSockJs, type SockJsRawClient } from '../../support/sockjs-raw';
import { startTestService, testSettings, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';
import { StompClients } from '../../support/stomp-clients';
import { startService } from '../../../app/server';

/** Frames per second are not what these tests are about: the rate limit stays out of the way. */
const UNLIMITED_RATE = 1_000_000;
const COUNT = 2000;

const pauses = (service: RunningService, transport: string): Promise<number> =>
  metricValue(service.url, 'stomp_flow_pauses_total', { transport });

describe('session: flow control (embedded broker)', function () {
  this.timeout(60_000);
  let service: RunningService;
  const clients = new RawClients();
  const readers: QueueReader[] = [];

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      maxFramesPerSecond: UNLIMITED_RATE,
      authorizationFile: openAuthorizationFile(),
    });
  });
  const stompClients = new StompClients();
  afterEach(async () => {
    clients.closeAll();
    await stompClients.closeAll();
    for (const r of readers.splice(0)) r.close();
  });
  after(() => service.stop());

  for (const transport of [...PIPELINE_TRANSPORTS, 'sockjs/jsonp'] as const) {
    for (const receiptEach of [true, false]) {
      const what = receiptEach ? 'each with a receipt' : 'without receipts, then one with';
      it(`${transport}: ${COUNT} pipelined SENDs ${what}: every RECEIPT, each message once and in order, no ERROR; paused and counted; a bystander keeps its round trip`, async () => {
        const queue = `/queue/flow-${randomBytes(4).toString('hex')}`;
        const reader = await QueueReader.open(service, 'reader', queue);
        readers.push(reader);
        const before = await pauses(service, metricTransport(transport));
        const bystander = await RoundTrips.start(service, `bystander-${randomBytes(3).toString('hex')}`);
        const sender = clients.add(await openPipeliner(service, 'bulk', transport));
        await pipeline(sender, { destination: queue, count: COUNT, receiptEach });
        const trips = await bystander.stop();
        await reader.expectExactly(COUNT);
        expect(sender.all('ERROR')).to.deep.equal([]);
        expect(await pauses(service, metricTransport(transport)), 'pauses counted').to.be.above(before);
        // Liveness, not speed: a bystander waiting behind a paused pipeline would take seconds.
        expect(trips.count, 'bystander round trips').to.be.at.least(1);
        expect(trips.worstMs, 'worst bystander round trip, ms').to.be.below(2000);
        expect(
          await metricValue(service.url, 'stomp_flow_paused_sessions', {
            transport: metricTransport(transport),
          }),
        ).to.equal(0);
      });
    }
  }

  for (const sockjs of ['xhr-streaming', 'websocket'] as const) {
    it(`@stomp/stompjs over sockjs-client (${sockjs}): ${COUNT} publishes without waiting, then one with a receipt: each once, in order, no ERROR`, async () => {
      const queue = `/queue/flow-${randomBytes(4).toString('hex')}`;
      const reader = await QueueReader.open(service, 'reader', queue);
      readers.push(reader);
      const client = await stompClients.connect(service, 'stompjs-bulk', {
        transport: 'sockjs',
        sockjsTransports: [sockjs],
      });
      for (let i = 0; i < COUNT - 1; i++) client.publish(queue, String(i));
      await client.publishWithReceipt(queue, String(COUNT - 1));
      await reader.expectExactly(COUNT);
      expect(client.errors.map((f) => f.headers.message)).to.deep.equal([]);
    });
  }

  it('one WebSocket message, one SockJS message and one TCP write holding a thousand frames each are all read, in order, without an ERROR', async () => {
    const frames = (queue: string, n: number): string =>
      Array.from({ length: n }, (_, i) => `SEND\ndestination:${queue}\nreceipt:m${i}\n\n${i}\0`).join('');
    const cases: {
      name: string;
      open: () => Promise<RawStompClient>;
      write: (c: RawStompClient, s: string) => void;
    }[] = [
      {
        name: 'tcp',
        open: () => connectRaw(service, 'one-write', { transport: 'tcp' }),
        write: (c, s) => c.sendRaw(s),
      },
      {
        name: '/stomp',
        open: () => connectRaw(service, 'one-message', { transport: 'websocket' }),
        write: (c, s) => c.sendRaw(s),
      },
      {
        name: 'sockjs',
        open: async () => {
          const c = await openSockJs(service.url, 'websocket');
          await c.connect(tokenFor(service, 'one-sockjs-message'));
          return c;
        },
        write: (c, s) => (c as SockJsRawClient).sendMessage(JSON.stringify([s])),
      },
    ];
    for (const { name, open, write } of cases) {
      const queue = `/queue/one-${randomBytes(4).toString('hex')}`;
      const reader = await QueueReader.open(service, 'reader', queue);
      readers.push(reader);
      const client = clients.add(await open());
      // /stomp takes messages of up to MAX_FRAME_BYTES + MAX_HEADER_BYTES (72 KiB): 1,000 of these fit.
      write(client, frames(queue, 1000));
      await waitFor(
        () => client.all('RECEIPT').length === 1000 || client.all('ERROR').length > 0,
        20_000,
        `${name}: 1000 RECEIPTs`,
      );
      expect(
        client.all('ERROR').map((f) => header(f, 'message')),
        name,
      ).to.deep.equal([]);
      expect(client.all('RECEIPT').map((f) => header(f, 'receipt-id'))).to.deep.equal(
        Array.from({ length: 1000 }, (_, i) => `m${i}`),
      );
      await reader.expectExactly(1000);
    }
  });
});

describe('session: flow control while the broker does not take messages', function () {
  this.timeout(60_000);
  let service: RunningService;
  let broker: GatedBroker;
  const clients = new RawClients();

  before(async () => {
    broker = new GatedBroker();
    service = await startService({
      broker,
      settings: testSettings({
        stompTcpPort: 0,
        maxFramesPerSecond: UNLIMITED_RATE,
        heartbeatReceiveMs: 250,
        heartbeatSendMs: 0,
        frameTimeoutMs: 500,
        authorizationFile: openAuthorizationFile(),
      }),
    });
  });
  afterEach(() => {
    broker.release();
    clients.closeAll();
  });
  after(() => service.stop());

  /** Heart-beats every 100 ms (more often than the 250 promised), whatever the server does with them. */
  function beat(client: RawStompClient): NodeJS.Timeout {
    return setInterval(() => {
      if (!client.closed) client.sendRaw('\n');
    }, 100);
  }

  for (const transport of ['tcp', 'websocket', 'sockjs/xhr'] as const) {
    it(`${transport}: a client paused for 3 s because the broker is slow is not cut off for missing heart-beats, and gets every RECEIPT after`, async () => {
      const client = clients.add(
        await openPipeliner(service, 'beating', transport, { 'heart-beat': '250,0' }),
      );
      const timer = beat(client);
      try {
        broker.shut();
        const done = pipeline(client, { destination: '/queue/held', count: 600, receiptEach: false });
        await waitFor(() => broker.waiting > 0, 5000, 'a SEND to wait at the broker');
        await waitFor(
          async () =>
            (await metricValue(service.url, 'stomp_flow_paused_sessions', {
              transport: metricTransport(transport),
            })) === 1,
          5000,
          'the session to pause',
        );
        // Six times the heart-beat limit (2 x 250 ms): what the client sent meanwhile waits unread.
        await sleep(3000);
        expect(client.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
        broker.release();
        await done;
        // Reading again, its heart-beats count again.
        await sleep(500);
        expect(client.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
        expect(client.closed).to.equal(false);
      } finally {
        clearInterval(timer);
      }
    });
  }

  it('a frame half read when reading paused is not late for the time the session did not read; a trickled frame still is', async () => {
    const client = clients.add(await connectRaw(service, 'half', { transport: 'websocket' }));
    broker.shut();
    const send = (i: number): string => `SEND\ndestination:/queue/held\n\n${i}\0`;
    // 255 frames wait (the mark is 256); then one WebSocket message with the 256th and the first
    // part of another, whose body has no NUL yet: the session stops reading inside that frame.
    client.sendRaw(Array.from({ length: 255 }, (_, i) => send(i)).join(''));
    await waitFor(() => broker.waiting > 0, 5000, 'a SEND to wait at the broker');
    client.sendRaw(`${send(255)}SEND\ndestination:/queue/held\nreceipt:last\n\n${'x'.repeat(2000)}`);
    await waitFor(
      async () =>
        (await metricValue(service.url, 'stomp_flow_paused_sessions', { transport: 'websocket' })) === 1,
      5000,
      'the session to pause',
    );
    client.sendRaw('the end\0');
    // Four times FRAME_TIMEOUT_MS while not read.
    await sleep(2000);
    expect(client.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
    broker.release();
    await client.waitForFrame('RECEIPT', (f) => header(f, 'receipt-id') === 'last', 5000);
    expect(client.all('ERROR')).to.have.length(0);

    const trickler = clients.add(await connectRaw(service, 'trickler', { transport: 'tcp' }));
    trickler.sendRaw('SEND\ndestination:/queue/held\n');
    const error = await trickler.expectErrorAndClose(3000);
    expect(header(error, 'message')).to.equal('frame not completed within 500 ms of its first byte');
  });

  it('a silent client is still cut off once reading resumes and its heart-beats do not come', async () => {
    const client = clients.add(await openPipeliner(service, 'silent', 'tcp', { 'heart-beat': '250,0' }));
    broker.shut();
    void pipeline(client, { destination: '/queue/held', count: 600, receiptEach: false }).catch(
      () => undefined,
    );
    await waitFor(() => broker.waiting > 0, 5000, 'a SEND to wait at the broker');
    await sleep(1000);
    expect(client.all('ERROR')).to.have.length(0);
    broker.release();
    const error = await client.expectErrorAndClose(3000);
    expect(header(error, 'message')).to.match(/no heart-beat from the client/);
  });

  it('a token that expires while the session is paused ends it at that moment', async () => {
    const short = tokenFor(service, 'expiring', '', 2);
    const client = clients.add(
      await connectRaw(service, 'expiring', {
        transport: 'tcp',
        headers: { Authorization: `Bearer ${short}` },
      }),
    );
    const connectedAt = Date.now();
    broker.shut();
    void pipeline(client, { destination: '/queue/held', count: 600, receiptEach: false }).catch(
      () => undefined,
    );
    await waitFor(() => broker.waiting > 0, 5000, 'a SEND to wait at the broker');
    const error = await client.expectErrorAndClose(5000);
    expect(header(error, 'message')).to.match(/token expired/);
    // `exp` is in whole seconds: the 2 s token ends between 1 and 2 s after it was made.
    expect(Date.now() - connectedAt).to.be.below(3000);
  });

  it('the hard limit: a SockJS client that keeps sending without waiting for its answers gets an ERROR once more than twice the largest message waits unread; others carry on', async () => {
    const before = await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'unread_bytes' });
    const witness = clients.add(await connectRaw(service, 'witness', { transport: 'tcp' }));
    const greedy = await openSockJs(service.url, 'xhr-streaming');
    clients.add(greedy);
    await greedy.connect(tokenFor(service, 'greedy'));
    broker.shut();
    const batch = Array.from({ length: 300 }, (_, i) => `SEND\ndestination:/queue/held\n\n${i}\0`);
    greedy.sendMessage(JSON.stringify(batch));
    await waitFor(() => broker.waiting > 0, 5000, 'a SEND to wait at the broker');
    // Sends that do not wait for the answer to the first: each near the largest SockJS message.
    const largest = 8 * (service.settings.maxFrameBytes + service.settings.maxHeaderBytes);
    const filler = JSON.stringify([`SEND\ndestination:/queue/held\n\n${'x'.repeat(largest - 100)}\0`]);
    const answers = await Promise.all(
      [0, 1, 2].map(() =>
        fetch(`${greedy.sessionUrl!}/xhr_send`, { method: 'POST', body: filler }).then(
          (r) => r.status,
          () => 0,
        ),
      ),
    );
    const error = await greedy.expectErrorAndClose(5000);
    expect(header(error, 'message')).to.match(
      new RegExp(`^more than ${2 * largest} bytes waiting unread \\(\\d+\\) while reading was paused`),
    );
    expect(await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'unread_bytes' })).to.equal(
      before + 1,
    );
    expect(
      answers.every((s) => s === 204 || s === 404),
      `answers ${answers.join(',')}`,
    ).to.equal(true);
    broker.release();
    await witness.sendWithReceipt('SEND', { destination: '/queue/witness' }, 'still here');
  });
});
