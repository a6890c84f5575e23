/**
 * The inbox when things break (run under `testlock -s`): each test counts what was owed and what
 * arrived.
 * - A live publish that fails after the commit: the outbox catch-up delivers it, once.
 * - RabbitMQ out (a proxy in front of its STOMP port refuses): durable pushes are stored and
 *   answered 202, and arrive once it is back, live or at the next SUBSCRIBE.
 * - PostgreSQL out during a stream of pushes: every push answered 202 is delivered, in order.
 * - kill -9 of the instance holding a session before it acknowledged: redelivered, with
 *   `redelivered: true`, on reconnect to another instance.
 */
import { expect } from 'chai';

import type { OutgoingMessage, PublishReceipt } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { MessageTarget } from '../../../app/destinations/destination';
import { ServiceError } from '../../../app/errors';
import { startService } from '../../../app/server';
import { header } from '../../../app/stomp/frame';
import {
  bodies,
  connectDevice,
  messages,
  pushDurable,
  pushStored,
  seqs,
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { startInstances, type Instance } from '../../support/instances';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../../support/postgres-databases';
import { STOMP_URL } from '../../support/rabbitmq';
import { RawClients } from '../../support/raw-stomp';
import { startTestService, testSettings, type RunningService } from '../../support/service';
import { TcpProxy } from '../../support/tcp-proxy';
import { sleep, waitFor } from '../../support/wait';

let counter = 0;
const freshUser = (): string => `inbox-f-${process.pid}-${Date.now().toString(36)}-${++counter}`;

/** Refuses user publishes while `failing` is set: the broker lost the message after the commit. */
class LosingBroker extends EmbeddedBroker {
  failing = false;
  override async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    if (this.failing && target.kind === 'user')
      throw new ServiceError('broker_unavailable', 'lost on the way');
    return super.publish(target, message);
  }
}

describe('inbox faults', function () {
  this.timeout(60_000);
  const clients = new RawClients();
  let database = '';

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    if (database) await dropTestDatabase(database);
  });
  afterEach(() => clients.closeAll());

  it('delivers a push whose live publish failed after its commit through the catch-up, once', async () => {
    const settings = testSettings({ inboxCatchUpMs: 300 });
    const broker = new LosingBroker({ instanceId: settings.instanceId });
    const service = await startService({ settings, broker });
    try {
      const user = freshUser();
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await pushStored(service, user, 'first');
      await waitForMessages(device, 1);
      broker.failing = true;
      const lost = await pushDurable(service, user, 'lost live');
      expect(lost.status, 'stored: the 202 stands').to.equal(202);
      broker.failing = false;
      await pushStored(service, user, 'after');
      await waitForMessages(device, 3, 5000);
      await sleep(800); // past another catch-up round: nothing comes twice
      expect(bodies(messages(device))).to.deep.equal(['first', 'lost live', 'after']);
    } finally {
      await service.stop();
    }
  });

  it('stores and answers 202 while RabbitMQ is out, and delivers once it is back', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(STOMP_URL).port));
    await proxy.up();
    const url = new URL(STOMP_URL);
    url.port = String(proxy.port);
    const service = await startTestService({
      brokerUrl: url.toString(),
      brokerReconnectMaxMs: 300,
      inboxDatabaseUrl: testDatabaseUrl(database),
      inboxCatchUpMs: 500,
    });
    try {
      const user = freshUser();
      const early = clients.add(await connectDevice(service, user, 'early'));
      await subscribeInbox(early, { ack: 'auto' });
      await proxy.down();
      await waitFor(() => !service.broker.readiness().ready, 5000, 'the broker to be down');
      for (const body of ['a', 'b', 'c']) await pushStored(service, user, body);
      await proxy.up();
      await waitFor(() => service.broker.readiness().ready, 10_000, 'the broker back');
      const late = clients.add(await connectDevice(service, user, 'late'));
      await subscribeInbox(late, { ack: 'auto' });
      expect(bodies(await waitForMessages(late, 3))).to.deep.equal(['a', 'b', 'c']);
      if (!early.closed) {
        // The session outlived the outage: the catch-up brings them live.
        await waitForMessages(early, 3, 10_000);
        await sleep(600);
        expect(bodies(messages(early))).to.deep.equal(['a', 'b', 'c']);
      } else {
        const again = clients.add(await connectDevice(service, user, 'early'));
        await subscribeInbox(again, { ack: 'auto' });
        expect(bodies(await waitForMessages(again, 3))).to.deep.equal(['a', 'b', 'c']);
      }
    } finally {
      await service.stop();
      await proxy.down();
    }
  });

  it('loses no 202 when PostgreSQL goes out during a stream of pushes', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432);
    await proxy.up();
    const url = new URL(testDatabaseUrl(database));
    url.port = String(proxy.port);
    const service: RunningService = await startTestService({
      brokerUrl: STOMP_URL,
      inboxDatabaseUrl: url.toString(),
      inboxConnectTimeoutMs: 300,
      inboxStatementTimeoutMs: 1000,
    });
    try {
      const user = freshUser();
      const accepted: number[] = [];
      const refused: number[] = [];
      const pushing = (async () => {
        for (let i = 1; i <= 120; i++) {
          const answer = await pushDurable(service, user, `p${i}`);
          if (answer.status === 202) accepted.push(i);
          else if (answer.status === 503) refused.push(i);
          else throw new Error(`unexpected ${answer.status}`);
          await sleep(5);
        }
      })();
      await waitFor(() => accepted.length >= 20, 10_000, 'pushes before the outage');
      await proxy.down();
      await sleep(700);
      await proxy.up();
      await pushing;
      expect(refused.length, 'some pushes met the outage').to.be.above(0);
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await waitForMessages(device, accepted.length, 10_000);
      await sleep(200);
      // Every 202 is delivered, once, in push order. A 503 whose commit reached PostgreSQL just as
      // the connection went is ambiguous (the caller was told to retry; the row may be kept): such a
      // push may be delivered too, but nothing that was never pushed, and nothing twice.
      const delivered = bodies(messages(device)).map((b) => Number(b.slice(1)));
      expect(
        accepted.filter((i) => !delivered.includes(i)),
        'accepted and not delivered',
      ).to.deep.equal([]);
      expect(
        delivered.filter((i) => !accepted.includes(i) && !refused.includes(i)),
        'delivered and never answered',
      ).to.deep.equal([]);
      expect(delivered, 'in push order, once each').to.deep.equal(
        [...new Set(delivered)].sort((a, b) => a - b),
      );
      expect(seqs(messages(device))).to.deep.equal(delivered.map((_, i) => i + 1));
    } finally {
      await service.stop();
      await proxy.down();
    }
  });

  describe('two instances on RabbitMQ and PostgreSQL', () => {
    let instances: Instance[] = [];

    before(async () => {
      instances = await startInstances(2, { env: { INBOX_DATABASE_URL: testDatabaseUrl(database) } });
    });
    after(async () => {
      await Promise.all(instances.map((i) => i.stop().catch(() => undefined)));
    });

    it('delivers live across instances, and redelivers what a killed instance had not acknowledged', async () => {
      const [a, b] = instances;
      const user = freshUser();
      const phone = clients.add(await connectDevice(a, user, 'phone'));
      await subscribeInbox(phone);
      for (const body of ['one', 'two', 'three']) await pushStored(b, user, body);
      const got = await waitForMessages(phone, 3);
      expect(bodies(got)).to.deep.equal(['one', 'two', 'three']);
      // Acknowledged one, then the instance dies before the rest are.
      await phone.sendWithReceipt('ACK', { id: header(got[0], 'ack') ?? '' });
      await a.kill9();
      const again = clients.add(await connectDevice(b, user, 'phone'));
      await subscribeInbox(again);
      const redelivered = await waitForMessages(again, 2);
      await sleep(200);
      expect(bodies(messages(again))).to.deep.equal(['two', 'three']);
      expect(redelivered.map((f) => header(f, 'redelivered'))).to.deep.equal(['true', 'true']);
    });
  });
});
