/**
 * Durable pushes end to end, on both setups (embedded + memory store; RabbitMQ + PostgreSQL):
 * REST push → store → a device's SUBSCRIBE replays what it has not acknowledged, then live ones,
 * in order, once; per-device progress; redelivery; NACK; inbox-since; idempotency; the status call.
 */
import { expect } from 'chai';

import { header } from '../../../app/stomp/frame';
import {
  ackMessage,
  bodies,
  connectDevice,
  messages,
  pushDurable,
  pushStored,
  seqs,
  statusCall,
  statusOf,
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { INBOX_SETUPS } from '../../support/inbox-setups';
import { openWebSocket, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';
import { errorOf } from '../rest/harness';

let userCounter = 0;
const freshUser = (): string => `inbox-${process.pid}-${Date.now().toString(36)}-${++userCounter}`;

for (const makeSetup of INBOX_SETUPS) {
  const setup = makeSetup();
  describe(`inbox delivery: ${setup.name}`, function () {
    this.timeout(20_000);
    let service: RunningService;
    const clients = new RawClients();

    before(async () => {
      await setup.before();
      service = await startTestService(setup.settings());
    });
    after(async () => {
      await service?.stop();
      await setup.after();
    });
    afterEach(() => clients.closeAll());

    it('answers 202 {id, seq, stored} and delivers pushes made while offline once, in order', async () => {
      const user = freshUser();
      const pushed: { id: string; seq: number }[] = [];
      for (let i = 1; i <= 5; i++) pushed.push(await pushStored(service, user, `m${i}`));
      expect(pushed.map((p) => p.seq)).to.deep.equal([1, 2, 3, 4, 5]);
      const device = clients.add(await connectDevice(service, user, 'phone'));
      await subscribeInbox(device, { ack: 'auto' });
      const got = await waitForMessages(device, 5);
      expect(bodies(got)).to.deep.equal(['m1', 'm2', 'm3', 'm4', 'm5']);
      expect(seqs(got)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(got.map((f) => header(f, 'message-id'))).to.deep.equal(pushed.map((p) => p.id));
      expect(got.every((f) => header(f, 'redelivered') === undefined)).to.equal(true);
      expect(
        got.every((f) => header(f, 'inbox-prev-seq') === undefined),
        'internal header hidden',
      ).to.equal(true);
      // Live after the replay, and nothing twice.
      await pushStored(service, user, 'm6');
      await waitForMessages(device, 6);
      await sleep(100);
      expect(bodies(messages(device))).to.deep.equal(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      await waitFor(
        async () => (await statusOf(service, user, pushed[0].id)).state === 'acked',
        3000,
        'acked',
      );
    });

    it('keeps each device its own progress, and redelivers what a device did not acknowledge', async () => {
      const user = freshUser();
      const phone = clients.add(await connectDevice(service, user, 'phone'));
      const laptop = clients.add(await connectDevice(service, user, 'laptop'));
      // Known to the user before the pushes: `acked` then waits for both.
      await subscribeInbox(phone);
      await subscribeInbox(laptop);
      const a = await pushStored(service, user, 'one');
      await pushStored(service, user, 'two');
      const phoneGot = await waitForMessages(phone, 2);
      await waitForMessages(laptop, 2);
      for (const message of phoneGot) await ackMessage(phone, message);
      const status = await statusOf(service, user, a.id);
      expect(status.devices).to.deep.equal({ phone: 'acked', laptop: 'delivered' });
      expect(status.state).to.equal('pending');
      phone.close();
      laptop.close();

      const laptop2 = clients.add(await connectDevice(service, user, 'laptop'));
      await subscribeInbox(laptop2);
      const again = await waitForMessages(laptop2, 2);
      expect(bodies(again)).to.deep.equal(['one', 'two']);
      expect(again.map((f) => header(f, 'redelivered'))).to.deep.equal(['true', 'true']);
      const phone2 = clients.add(await connectDevice(service, user, 'phone'));
      await subscribeInbox(phone2);
      await sleep(200);
      expect(messages(phone2), "the phone's ACKs hold").to.have.length(0);
      await ackMessage(laptop2, again[1], 'ACK');
      await ackMessage(laptop2, again[0], 'ACK');
      expect((await statusOf(service, user, a.id)).state).to.equal('acked');
    });

    it('acknowledges cumulatively in client mode, and a NACKed message comes back at the next SUBSCRIBE only', async () => {
      const user = freshUser();
      for (const body of ['a', 'b', 'c']) await pushStored(service, user, body);
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'client' });
      const got = await waitForMessages(device, 3);
      await ackMessage(device, got[1]); // a and b
      await ackMessage(device, got[2], 'NACK');
      await sleep(150);
      expect(messages(device), 'not again in the same subscription').to.have.length(3);
      await device.sendWithReceipt('UNSUBSCRIBE', { id: 'inbox' });
      await subscribeInbox(device, { id: 'again', ack: 'client' });
      const next = await waitForMessages(device, 4);
      expect(bodies(next.slice(3))).to.deep.equal(['c']);
      expect(header(next[3], 'redelivered')).to.equal('true');
    });

    it('holds a client-ack subscription to its prefetch-count, sending on as ACKs make room', async () => {
      const user = freshUser();
      for (let i = 1; i <= 4; i++) await pushStored(service, user, `q${i}`);
      const device = clients.add(await connectDevice(service, user));
      await device.sendWithReceipt('SUBSCRIBE', {
        id: 'inbox',
        destination: '/user/queue/inbox',
        ack: 'client-individual',
        'prefetch-count': '2',
      });
      await waitForMessages(device, 2);
      await pushStored(service, user, 'q5');
      await sleep(200);
      expect(bodies(messages(device)), 'two outstanding at most').to.deep.equal(['q1', 'q2']);
      for (let taken = 0; taken < 5; taken++) {
        await waitForMessages(device, Math.min(5, taken + 2));
        await ackMessage(device, messages(device)[taken]);
      }
      await sleep(200);
      expect(bodies(messages(device))).to.deep.equal(['q1', 'q2', 'q3', 'q4', 'q5']);
    });

    it('joins a SUBSCRIBE made in the middle of a stream of pushes: no gap, no duplicate', async () => {
      const user = freshUser();
      const total = 60;
      let pushedCount = 0;
      const pushing = (async () => {
        for (let i = 1; i <= total; i++) {
          await pushStored(service, user, `n${i}`);
          pushedCount = i;
        }
      })();
      await waitFor(() => pushedCount >= 15, 10_000, 'some pushes');
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await pushing;
      const got = await waitForMessages(device, total, 10_000);
      await sleep(200);
      expect(seqs(messages(device))).to.deep.equal(Array.from({ length: total }, (_, i) => i + 1));
      expect(got).to.have.length(total);
    });

    it('replays from inbox-since whatever was acknowledged, marking what was sent before', async () => {
      const user = freshUser();
      for (const body of ['x', 'y', 'z']) await pushStored(service, user, body);
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await waitForMessages(device, 3);
      await device.sendWithReceipt('UNSUBSCRIBE', { id: 'inbox' });
      await subscribeInbox(device, { id: 'history', ack: 'auto', since: 1 });
      const got = await waitForMessages(device, 5);
      expect(bodies(got.slice(3))).to.deep.equal(['y', 'z']);
      expect(got.slice(3).map((f) => header(f, 'redelivered'))).to.deep.equal(['true', 'true']);
      await subscribeInbox(device, { id: 'all', ack: 'auto', since: 0 });
      await waitForMessages(device, 8);
      expect(bodies(messages(device).slice(5))).to.deep.equal(['x', 'y', 'z']);
    });

    it('answers an Idempotency-Key retry with the first 202 and a changed body with 409', async () => {
      const user = freshUser();
      const first = await pushDurable(service, user, { order: 1 }, { key: 'order-1' });
      const retry = await pushDurable(service, user, { order: 1 }, { key: 'order-1' });
      expect(first.status).to.equal(202);
      expect(retry.status).to.equal(202);
      // The same answer; `online` is about a live copy, and a retry sends none.
      const { online, ...stored } = first.body as { online?: boolean };
      expect(retry.body).to.deep.equal(stored);
      if (setup.name.startsWith('embedded')) expect(online, 'nobody connected').to.equal(false);
      const changed = await pushDurable(service, user, { order: 2 }, { key: 'order-1' });
      expect(changed.status).to.equal(409);
      expect(errorOf(changed).error).to.equal('idempotency_conflict');
      const other = await pushDurable(service, freshUser(), { order: 2 }, { key: 'order-1' });
      expect(other.status, 'keys are per user').to.equal(202);
      const device = clients.add(await connectDevice(service, user));
      await subscribeInbox(device, { ack: 'auto' });
      await sleep(200);
      expect(messages(device), 'stored once').to.have.length(1);
    });

    it('answers the status call per SPEC, 404 for an unknown id, and never for another user', async () => {
      const user = freshUser();
      const pushed = await pushStored(service, user, 'hello', { destination: '/queue/inbox.orders' });
      const status = await statusOf(service, user, pushed.id);
      expect(status).to.include({ id: pushed.id, seq: pushed.seq, destination: '/user/queue/inbox.orders' });
      expect(status.state).to.equal('pending');
      expect(Date.parse(status.expiresAt) - Date.parse(status.createdAt)).to.equal(
        service.settings.inboxTtlS * 1000,
      );
      expect(status.createdAt).to.match(/Z$/);
      expect((await statusCall(service, freshUser(), pushed.id)).status).to.equal(404);
      expect((await statusCall(service, user, '00000000-0000-4000-8000-000000000000')).status).to.equal(404);
    });

    it("never shows a user's inbox to another user, whatever the spelling", async () => {
      const alice = freshUser();
      const bob = `${alice}-bob`;
      await pushStored(service, alice, 'secret');
      const device = clients.add(await connectDevice(service, bob));
      await subscribeInbox(device, { ack: 'auto' });
      await subscribeInbox(device, { id: 's2', ack: 'auto', since: 0 });
      for (const destination of [
        `/user/${alice}/queue/inbox`,
        '/user/queue/../inbox',
        '/user/queue/inbox/',
      ]) {
        const other = clients.add(await connectDevice(service, bob));
        other.send('SUBSCRIBE', { id: 'x', destination });
        await other.expectErrorAndClose();
      }
      await pushStored(service, alice, 'secret too');
      await sleep(200);
      expect(messages(device)).to.have.length(0);
    });

    it('refuses a bad device-id and a bad inbox-since with an ERROR', async () => {
      const user = freshUser();
      for (const device of ['', 'has space', 'x'.repeat(65), 'ü']) {
        const client = clients.add(await openWebSocket(service));
        client.send('CONNECT', {
          'accept-version': '1.2',
          host: 'localhost',
          Authorization: `Bearer ${tokenFor(service, user)}`,
          'device-id': device,
        });
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.contain('device-id');
      }
      const device = clients.add(await connectDevice(service, user, 'ok_device-1'));
      device.send('SUBSCRIBE', { id: 's', destination: '/user/queue/inbox', 'inbox-since': '-1' });
      expect(header(await device.expectErrorAndClose(), 'message')).to.contain('inbox-since');
      const plain = clients.add(await connectDevice(service, user));
      plain.send('SUBSCRIBE', { id: 's', destination: '/user/queue/greetings', 'inbox-since': '0' });
      expect(header(await plain.expectErrorAndClose(), 'message')).to.contain('durable');
    });
  });
}
