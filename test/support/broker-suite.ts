/**
 * THE behaviour suite every Broker implementation must pass (the semantics are in the top comment
 * of app/broker/broker.ts). `makeBroker` returns the unstarted instances of ONE service: the
 * embedded broker is one instance; the RabbitMQ relay returns several sharing one RabbitMQ, and then
 * every test also checks delivery across instances (subscribers on instance 0, 1, ...; publishes
 * from the last instance). The suite starts the brokers and stops them after each test.
 *
 * Names are unique per test so runs against a shared RabbitMQ do not see each other. "Nothing
 * else arrives" is checked by sending a later message down the same path first (a barrier) and
 * then watching for QUIET_MS: a wrong extra delivery would have had time to land.
 */
import { expect } from 'chai';

import type { Broker } from '../../app/broker/broker';
import {
  BrokerHarness,
  DELIVERY_TIMEOUT_MS,
  QUIET_MS,
  expectServiceError,
  queue,
  topic,
  total,
  unique,
  type Subscriber,
} from './broker-harness';
import { deliverySuite } from './broker-suite-delivery';
import { sleep, waitFor } from './wait';

const has = (subscriber: Subscriber, count: number) => () => subscriber.got.length >= count;
const each = (subscribers: Subscriber[], count: number) => () =>
  subscribers.every((s) => s.got.length >= count);

export function brokerSuite(name: string, makeBroker: () => Promise<Broker[]>): void {
  describe(name, function () {
    const h = new BrokerHarness();
    beforeEach(async () => h.setUp(makeBroker));
    afterEach(async () => h.tearDown());

    describe('topics', function () {
      it('delivers each message once to every subscriber, on every instance, in publish order', async function () {
        const target = topic(unique('fanout'));
        const subscribers = [
          await h.subscribe(0, target),
          await h.subscribe(1, target),
          await h.subscribe(2, target),
        ];
        const ids = ['m1', 'm2', 'm3', 'm4', 'm5'];
        await h.publish(target, ...ids, 'barrier');
        await waitFor(each(subscribers, 6), DELIVERY_TIMEOUT_MS, 'every subscriber to get all six');
        await sleep(QUIET_MS);
        for (const subscriber of subscribers) expect(subscriber.ids()).to.deep.equal([...ids, 'barrier']);
      });

      it('does not deliver what was published before the subscription', async function () {
        const target = topic(unique('late'));
        await h.publish(target, 'before');
        const subscriber = await h.subscribe(0, target);
        await h.publish(target, 'after');
        await waitFor(has(subscriber, 1), DELIVERY_TIMEOUT_MS, 'the message published after subscribing');
        await sleep(QUIET_MS);
        expect(subscriber.ids()).to.deep.equal(['after']);
      });

      it('keeps topics apart, including names that extend one another', async function () {
        const base = unique('t');
        const subscriber = await h.subscribe(0, topic(base));
        const longer = await h.subscribe(1, topic(`${base}.x`));
        for (const other of [`${base}.x`, `${base}x`, `x.${base}`, `${base}.x.y`, `${base}:x`]) {
          await h.publish(topic(other), `to ${other}`);
        }
        await h.publish(topic(base), 'barrier');
        await waitFor(has(subscriber, 1), DELIVERY_TIMEOUT_MS, 'the barrier on the base topic');
        await waitFor(has(longer, 1), DELIVERY_TIMEOUT_MS, 'the message on the longer topic');
        await sleep(QUIET_MS);
        expect(subscriber.ids()).to.deep.equal(['barrier']);
        expect(longer.ids()).to.deep.equal([`to ${base}.x`]);
      });

      it('delivers nothing after close(), and close() is idempotent', async function () {
        const target = topic(unique('closed'));
        const closing = await h.subscribe(0, target);
        const staying = await h.subscribe(1, target);
        await h.publish(target, 'm1');
        await waitFor(each([closing, staying], 1), DELIVERY_TIMEOUT_MS, 'm1 at both subscribers');
        await closing.subscription.close();
        await closing.subscription.close();
        await h.publish(target, 'm2', 'barrier');
        await waitFor(has(staying, 3), DELIVERY_TIMEOUT_MS, 'm2 and the barrier at the open subscriber');
        await sleep(QUIET_MS);
        expect(closing.ids()).to.deep.equal(['m1']);
        expect(staying.ids()).to.deep.equal(['m1', 'm2', 'barrier']);
      });

      it('accepts a publish to a topic nobody subscribes to', async function () {
        await h.publish(topic(unique('empty')), 'into the void');
      });

      it("keeps delivering when a subscriber's deliver callback throws", async function () {
        const target = topic(unique('throws'));
        const thrower = await h.subscribe(0, target, {
          onDeliver: () => {
            throw new Error('subscriber failure (expected by the test)');
          },
        });
        const others = [await h.subscribe(0, target), await h.subscribe(1, target)];
        await h.publish(target, 'm1', 'm2');
        await waitFor(
          each([thrower, ...others], 2),
          DELIVERY_TIMEOUT_MS,
          'both messages at every subscriber',
        );
        await sleep(QUIET_MS);
        for (const subscriber of [thrower, ...others]) expect(subscriber.ids()).to.deep.equal(['m1', 'm2']);
      });
    });

    describe('queues', function () {
      it('gives each message to exactly one of the competing consumers', async function () {
        const target = queue(unique('compete'));
        const consumers = [await h.subscribe(0, target), await h.subscribe(1, target)];
        const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
        await h.publish(target, ...ids);
        await waitFor(() => total(consumers) >= 20, DELIVERY_TIMEOUT_MS, 'all 20 messages consumed');
        await sleep(QUIET_MS);
        const all = consumers.flatMap((consumer) => consumer.ids());
        expect(all, 'no message twice, none lost').to.have.members(ids).and.have.length(20);
        for (const consumer of consumers)
          expect(consumer.got.length, 'both consumers take part').to.be.greaterThan(0);
      });

      it('keeps messages until a consumer subscribes, then delivers them in order', async function () {
        const target = queue(unique('backlog'));
        await h.publish(target, 'm1', 'm2', 'm3');
        const consumer = await h.subscribe(0, target);
        await waitFor(has(consumer, 3), DELIVERY_TIMEOUT_MS, 'the three waiting messages');
        expect(consumer.ids()).to.deep.equal(['m1', 'm2', 'm3']);
        expect(consumer.got.map((delivery) => delivery.redelivered)).to.deep.equal([false, false, false]);
      });

      it('never has more than prefetch unacknowledged deliveries outstanding', async function () {
        const target = queue(unique('prefetch'));
        const consumer = await h.subscribe(0, target, { ackMode: 'client-individual', prefetch: 2 });
        await h.publish(target, 'm1', 'm2', 'm3', 'm4', 'm5');
        await waitFor(has(consumer, 2), DELIVERY_TIMEOUT_MS, 'the first two messages');
        await sleep(QUIET_MS);
        expect(consumer.ids(), 'prefetch 2 holds the rest back').to.deep.equal(['m1', 'm2']);
        await consumer.subscription.ack(consumer.last('m1').ackId!);
        await waitFor(has(consumer, 3), DELIVERY_TIMEOUT_MS, 'a third message once one is acked');
        await sleep(QUIET_MS);
        expect(consumer.ids()).to.deep.equal(['m1', 'm2', 'm3']);
        for (const id of ['m2', 'm3']) await consumer.subscription.ack(consumer.last(id).ackId!);
        await waitFor(has(consumer, 5), DELIVERY_TIMEOUT_MS, 'the last two messages');
        expect(consumer.ids()).to.deep.equal(['m1', 'm2', 'm3', 'm4', 'm5']);
      });

      it('spreads messages over consumers, each within its prefetch', async function () {
        const target = queue(unique('shared'));
        const options = { ackMode: 'client-individual', prefetch: 1 } as const;
        const consumers = [await h.subscribe(0, target, options), await h.subscribe(1, target, options)];
        await h.publish(target, 'm1', 'm2', 'm3');
        await waitFor(() => total(consumers) >= 2, DELIVERY_TIMEOUT_MS, 'one message at each consumer');
        await sleep(QUIET_MS);
        expect(consumers.map((consumer) => consumer.got.length)).to.deep.equal([1, 1]);
        const [first] = consumers;
        await first.subscription.ack(first.got[0].ackId!);
        await waitFor(() => total(consumers) >= 3, DELIVERY_TIMEOUT_MS, 'the third message after an ack');
        expect(consumers.flatMap((consumer) => consumer.ids())).to.have.members(['m1', 'm2', 'm3']);
      });

      it('returns unacknowledged messages to another consumer when a subscription closes', async function () {
        const target = queue(unique('handover'));
        const leaving = await h.subscribe(0, target, { ackMode: 'client-individual' });
        await h.publish(target, 'm1', 'm2');
        await waitFor(has(leaving, 2), DELIVERY_TIMEOUT_MS, 'both messages at the first consumer');
        const taking = await h.subscribe(1, target, { ackMode: 'client-individual' });
        await sleep(QUIET_MS);
        expect(taking.got, 'nothing for the second consumer while the first holds both').to.have.length(0);
        await leaving.subscription.close();
        await waitFor(has(taking, 2), DELIVERY_TIMEOUT_MS, 'the returned messages at the second consumer');
        expect(taking.ids()).to.have.members(['m1', 'm2']);
        expect(taking.got.every((delivery) => delivery.redelivered)).to.equal(true);
      });
    });

    describe('acknowledgement', function () {
      it('gives auto deliveries no ackId and client deliveries a distinct ackId each', async function () {
        const name = unique('ackids');
        const auto = await h.subscribe(0, topic(name));
        const client = await h.subscribe(0, topic(name), { ackMode: 'client' });
        const individual = await h.subscribe(1, topic(name), { ackMode: 'client-individual' });
        await h.publish(topic(name), 'm1', 'm2', 'm3');
        await waitFor(each([auto, client, individual], 3), DELIVERY_TIMEOUT_MS, 'three messages at each');
        expect(auto.got.map((delivery) => delivery.ackId)).to.deep.equal([undefined, undefined, undefined]);
        const ackIds = [...client.got, ...individual.got].map((delivery) => delivery.ackId);
        for (const ackId of ackIds) expect(ackId).to.be.a('string').and.have.length.greaterThan(0);
        expect(new Set(ackIds).size, 'no ackId is reused').to.equal(6);
      });

      it('ACK in client mode settles that message and every earlier one', async function () {
        const target = queue(unique('cumulative'));
        const first = await h.subscribe(0, target, { ackMode: 'client' });
        await h.publish(target, 'm1', 'm2', 'm3');
        await waitFor(has(first, 3), DELIVERY_TIMEOUT_MS, 'three messages');
        await first.subscription.ack(first.last('m2').ackId!);
        await first.subscription.close();
        const second = await h.subscribe(1, target);
        await h.publish(target, 'barrier');
        await waitFor(has(second, 2), DELIVERY_TIMEOUT_MS, 'the unacked message and the barrier');
        await sleep(QUIET_MS);
        expect(second.ids()).to.have.members(['m3', 'barrier']).and.have.length(2);
        expect(second.last('m3').redelivered).to.equal(true);
      });

      it('ACK in client-individual mode settles just that message', async function () {
        const target = queue(unique('individual'));
        const first = await h.subscribe(0, target, { ackMode: 'client-individual' });
        await h.publish(target, 'm1', 'm2', 'm3');
        await waitFor(has(first, 3), DELIVERY_TIMEOUT_MS, 'three messages');
        await first.subscription.ack(first.last('m2').ackId!);
        await first.subscription.close();
        const second = await h.subscribe(1, target);
        await h.publish(target, 'barrier');
        await waitFor(has(second, 3), DELIVERY_TIMEOUT_MS, 'the two unacked messages and the barrier');
        await sleep(QUIET_MS);
        expect(second.ids()).to.have.members(['m1', 'm3', 'barrier']).and.have.length(3);
      });

      it('NACK delivers the message again with redelivered=true', async function () {
        const target = queue(unique('nack'));
        const consumer = await h.subscribe(0, target, { ackMode: 'client-individual', prefetch: 1 });
        await h.publish(target, 'm1', 'm2');
        await waitFor(has(consumer, 1), DELIVERY_TIMEOUT_MS, 'm1');
        expect(consumer.got[0].redelivered).to.equal(false);
        await consumer.subscription.nack(consumer.got[0].ackId!);
        await waitFor(has(consumer, 2), DELIVERY_TIMEOUT_MS, 'm1 again');
        expect(consumer.got[1]).to.include({ messageId: 'm1', redelivered: true });
        await consumer.subscription.ack(consumer.got[1].ackId!);
        await waitFor(has(consumer, 3), DELIVERY_TIMEOUT_MS, 'm2');
        expect(consumer.got[2]).to.include({ messageId: 'm2', redelivered: false });
      });

      it('NACK in client mode returns that message and every earlier unacknowledged one', async function () {
        const target = queue(unique('nack-client'));
        const consumer = await h.subscribe(0, target, { ackMode: 'client', prefetch: 3 });
        await h.publish(target, 'm1', 'm2', 'm3');
        await waitFor(has(consumer, 3), DELIVERY_TIMEOUT_MS, 'three messages');
        await consumer.subscription.nack(consumer.last('m2').ackId!);
        await waitFor(has(consumer, 5), DELIVERY_TIMEOUT_MS, 'm1 and m2 again');
        await sleep(QUIET_MS);
        const again = consumer.got.slice(3);
        expect(again.map((delivery) => delivery.messageId)).to.have.members(['m1', 'm2']);
        expect(again.every((delivery) => delivery.redelivered)).to.equal(true);
        expect(consumer.got).to.have.length(5);
      });

      it('NACK on a topic subscription delivers the message to it again', async function () {
        const target = topic(unique('topic-nack'));
        const consumer = await h.subscribe(0, target, { ackMode: 'client-individual', prefetch: 5 });
        const bystander = await h.subscribe(1, target);
        await h.publish(target, 'm1');
        await waitFor(has(consumer, 1), DELIVERY_TIMEOUT_MS, 'm1');
        await consumer.subscription.nack(consumer.got[0].ackId!);
        await waitFor(has(consumer, 2), DELIVERY_TIMEOUT_MS, 'm1 again');
        expect(consumer.got[1]).to.include({ messageId: 'm1', redelivered: true });
        await sleep(QUIET_MS);
        expect(bystander.ids(), 'other subscribers are not involved').to.deep.equal(['m1']);
      });

      it("refuses unknown, already settled and other subscriptions' ackIds with bad_request", async function () {
        const target = queue(unique('bad-ack'));
        const options = { ackMode: 'client-individual', prefetch: 1 } as const;
        const mine = await h.subscribe(0, target, options);
        const other = await h.subscribe(0, target, options);
        await h.publish(target, 'm1', 'm2');
        await waitFor(() => total([mine, other]) >= 2, DELIVERY_TIMEOUT_MS, 'one message at each');
        const myAckId = mine.got[0].ackId!;
        await expectServiceError(mine.subscription.ack('no-such-ack-id'), 'bad_request');
        await expectServiceError(mine.subscription.nack('no-such-ack-id'), 'bad_request');
        await expectServiceError(other.subscription.ack(myAckId), 'bad_request');
        await mine.subscription.ack(myAckId);
        await expectServiceError(mine.subscription.ack(myAckId), 'bad_request');
        await expectServiceError(mine.subscription.nack(myAckId), 'bad_request');
      });
    });

    deliverySuite(h);
  });
}
