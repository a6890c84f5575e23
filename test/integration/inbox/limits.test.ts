/**
 * The inbox's limits on both setups: INBOX_MAX_MESSAGES (the oldest expire: never delivered, and
 * `expired` in the status call) and INBOX_TTL_S (past it a message is never delivered, its status
 * says `expired` with `expiresAt` in the past, and /metrics counts it).
 */
import { expect } from 'chai';

import {
  bodies,
  connectDevice,
  messages,
  pushStored,
  statusOf,
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { INBOX_SETUPS } from '../../support/inbox-setups';
import { metricSum } from '../../support/metrics';
import { RawClients } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

let counter = 0;
const freshUser = (): string => `inbox-lim-${process.pid}-${Date.now().toString(36)}-${++counter}`;

for (const makeSetup of INBOX_SETUPS) {
  const setup = makeSetup();
  describe(`inbox limits: ${setup.name}`, function () {
    this.timeout(20_000);
    const clients = new RawClients();
    const services: RunningService[] = [];

    before(() => setup.before());
    after(async () => {
      for (const service of services) await service.stop();
      await setup.after();
    });
    afterEach(() => clients.closeAll());

    const start = async (overrides: Parameters<typeof startTestService>[0]): Promise<RunningService> => {
      const service = await startTestService({ ...setup.settings(), ...overrides });
      services.push(service);
      return service;
    };

    it('keeps INBOX_MAX_MESSAGES per user: the oldest expire, are never delivered, and say so', async () => {
      const service = await start({ inboxMaxMessages: 3 });
      const user = freshUser();
      const pushed = [];
      for (let i = 1; i <= 5; i++) pushed.push(await pushStored(service, user, `m${i}`));
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await waitForMessages(device, 3);
      await sleep(150);
      expect(bodies(messages(device))).to.deep.equal(['m3', 'm4', 'm5']);
      const first = await statusOf(service, user, pushed[0].id);
      expect(first.state).to.equal('expired');
      expect(Date.parse(first.expiresAt)).to.be.at.most(Date.now());
      expect((await statusOf(service, user, pushed[2].id)).state).not.to.equal('expired');
      expect(await metricSum(service.url, 'stomp_inbox_expired_total', { reason: 'limit' })).to.equal(2);
      // inbox-since does not bring them back either.
      await subscribeInbox(device, { id: 'all', ack: 'auto', since: 0 });
      await waitForMessages(device, 6);
      expect(bodies(messages(device).slice(3))).to.deep.equal(['m3', 'm4', 'm5']);
    });

    it('expires messages INBOX_TTL_S after the push: never delivered, visible as expired, counted', async () => {
      const service = await start({ inboxTtlS: 1, inboxSweepIntervalMs: 1000 });
      const user = freshUser();
      const old = await pushStored(service, user, 'old');
      await sleep(1100);
      await pushStored(service, user, 'new');
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto', since: 0 });
      await waitForMessages(device, 1);
      await sleep(150);
      expect(bodies(messages(device))).to.deep.equal(['new']);
      const status = await statusOf(service, user, old.id);
      expect(status.state).to.equal('expired');
      expect(Date.parse(status.expiresAt)).to.equal(Date.parse(status.createdAt) + 1000);
      await waitFor(
        async () => (await metricSum(service.url, 'stomp_inbox_expired_total', { reason: 'ttl' })) >= 1,
        5000,
        'the sweep to count the expiry',
      );
    });
  });
}
