/**
 * The inbox when things break (run under `testlock -s`): each test counts what was owed and what
 * arrived.
 * - A live publish that fails after the commit: the outbox catch-up delivers it, once.
 * - kill -9 of the instance holding a session before it acknowledged: redelivered, with
 *   `redelivered: true`, on reconnect to another instance.
 * RabbitMQ and PostgreSQL restarted for real, with pushes pending and under way: restarts.test.ts.
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
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { startInstances, type Instance } from '../../support/instances';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../../support/postgres-databases';
import { RawClients } from '../../support/raw-stomp';
import { testSettings } from '../../support/service';
import { sleep } from '../../support/wait';

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
