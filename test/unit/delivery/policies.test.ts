/**
 * The delivery seam (app/delivery/policies.ts) over the embedded broker and the in-memory inbox:
 * one subscribe/publish/commit for every destination, the durable policy serving the inbox ones
 * (positions out of publish, resumeFrom into subscribe, positions on deliveries) and best effort
 * the rest (no position, no history to resume in).
 */
import { expect } from 'chai';
import { Registry } from 'prom-client';

import type { Delivery, SubscribeRequest } from '../../../app/broker/broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { MessageTarget } from '../../../app/destinations/destination';
import { durableDelivery } from '../../../app/delivery/durable-delivery';
import { bestEffortDelivery, DeliveryPolicies } from '../../../app/delivery/policies';
import type { Inbox } from '../../../app/inbox/inbox';
import { inboxService } from '../../../app/inbox/service';
import { silentLogger } from '../../../app/observability/logger';
import { testSettings } from '../../support/service';
import { waitFor } from '../../support/wait';

const inbox = (user: string): MessageTarget => ({ kind: 'user', user, type: 'queue', name: 'inbox' });
const greetings = (user: string): MessageTarget => ({ kind: 'user', user, type: 'queue', name: 'greetings' });
const message = (body: string): { id: string; headers: Record<string, string>; body: Buffer } => ({
  id: `id-${body}`,
  headers: {},
  body: Buffer.from(body),
});

describe('delivery seam (durable and best-effort policies)', () => {
  let broker: EmbeddedBroker;
  let service: Inbox;
  let seam: DeliveryPolicies;

  beforeEach(async () => {
    const settings = testSettings();
    broker = new EmbeddedBroker({ instanceId: settings.instanceId });
    await broker.start();
    service = inboxService(settings, broker, silentLogger, new Registry());
    await service.start();
    seam = new DeliveryPolicies([durableDelivery(service, broker)], bestEffortDelivery(broker));
  });
  afterEach(async () => {
    await service.stop();
    await broker.stop();
  });

  function subscribe(
    target: MessageTarget,
    got: Delivery[],
    extra: Partial<SubscribeRequest> = {},
  ): ReturnType<DeliveryPolicies['subscribe']> {
    return seam.subscribe({
      sessionId: 's1',
      user: target.kind === 'user' ? target.user : 'alice',
      target,
      ackMode: 'client-individual',
      prefetch: 100,
      deliver: (d) => got.push(d),
      ...extra,
    });
  }

  it('publishes to a durable destination through the inbox: the receipt says the committed seq', async () => {
    const first = await seam.publish(inbox('alice'), message('one'));
    const second = await seam.publish(inbox('alice'), message('two'));
    expect(first).to.deep.equal({ position: '1', online: false });
    expect(second.position).to.equal('2');
    const best = await seam.publish(greetings('alice'), message('hi'));
    expect(best, 'best effort has no position').to.deep.equal({ online: false });
  });

  it('publishes many at once, answered in their order: the durable ones in one inbox push (one commit)', async () => {
    const pushes: unknown[][] = [];
    const push = service.push.bind(service);
    service.push = (items) => {
      pushes.push(items);
      return push(items);
    };
    const outcomes = await seam.publishMany([
      { target: inbox('alice'), message: message('a1') },
      { target: greetings('alice'), message: message('hi') },
      { target: inbox('bob'), message: message('b1') },
      { target: inbox('alice'), message: message('a2') },
    ]);
    expect(outcomes.map((o) => (o.ok ? o.receipt.position : o.error.code))).to.deep.equal([
      '1',
      undefined,
      '1',
      '2',
    ]);
    expect(pushes.length, 'inbox pushes (commits)').to.equal(1);
  });

  it('answers a retry with the same idempotency key with the first publish, under its id', async () => {
    const first = await seam.publish(inbox('alice'), message('once'), { idempotencyKey: 'k1' });
    const retry = await seam.publish(
      inbox('alice'),
      { ...message('once'), id: 'id-retry' },
      { idempotencyKey: 'k1' },
    );
    expect(first).to.deep.equal({ position: '1', online: false });
    // Nothing new is stored or sent live: the first push's seq and id, no `online`.
    expect(retry, 'the first one is kept under its own id').to.deep.equal({ position: '1', id: 'id-once' });
  });

  it('starts a durable subscription at the device cursor or after resumeFrom, deliveries carrying their position', async () => {
    for (const body of ['a', 'b', 'c']) await seam.publish(inbox('alice'), message(body));
    const phone: Delivery[] = [];
    const sub = await subscribe(inbox('alice'), phone, { device: 'phone', resumeFrom: { kind: 'cursor' } });
    expect(phone.map((d) => [d.body.toString(), d.position])).to.deep.equal([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);
    await sub.ack(phone[0].ackId ?? '');
    await sub.close();

    const again: Delivery[] = [];
    await subscribe(inbox('alice'), again, { device: 'phone' });
    expect(
      again.map((d) => [d.position, d.redelivered]),
      'the cursor: not the acknowledged one',
    ).to.deep.equal([
      ['2', true],
      ['3', true],
    ]);
    const history: Delivery[] = [];
    await subscribe(inbox('alice'), history, {
      device: 'laptop',
      resumeFrom: { kind: 'after', position: '1' },
    });
    expect(history.map((d) => d.position)).to.deep.equal(['2', '3']);
    await seam.publish(inbox('alice'), message('d'));
    await waitFor(() => history.length === 3, 2000, 'the live one');
    expect(history[2].position).to.equal('4');
  });

  it('refuses a position on a best-effort destination, and serves it live without one', async () => {
    const got: Delivery[] = [];
    let refused: unknown;
    await subscribe(greetings('alice'), got, { resumeFrom: { kind: 'after', position: '0' } }).catch(
      (err: unknown) => (refused = err),
    );
    expect(String(refused)).to.contain('durable');
    await subscribe(greetings('alice'), got, { resumeFrom: { kind: 'cursor' } });
    await seam.publish(greetings('alice'), message('live'));
    await waitFor(() => got.length === 1, 2000, 'the live message');
    expect(got[0].position).to.equal(undefined);
  });

  it('commits a transaction: durable ACKs to the inbox, the rest to the broker', async () => {
    await seam.publish(inbox('alice'), message('kept'));
    const durable: Delivery[] = [];
    const durableSub = await subscribe(inbox('alice'), durable, { device: 'phone' });
    const topic: Delivery[] = [];
    await subscribe({ kind: 'topic', name: 'news' }, topic, { ackMode: 'auto' });
    await seam.commit([
      { op: 'ack', subscription: durableSub, ackId: durable[0].ackId ?? '' },
      { op: 'publish', target: { kind: 'topic', name: 'news' }, message: message('news') },
    ]);
    await waitFor(() => topic.length === 1, 2000, 'the committed publish');
    await durableSub.close();
    const again: Delivery[] = [];
    await subscribe(inbox('alice'), again, { device: 'phone' });
    expect(again, 'acknowledged in the transaction').to.have.length(0);
  });
});
