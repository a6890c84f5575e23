/**
 * The second half of the broker behaviour suite (see broker-suite.ts, which calls this inside its
 * describe with the shared harness): user destinations, message fidelity, transactions, the
 * session directory and the broker's lifecycle.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import type { MessageTarget } from '../../app/destinations/destination';
import {
  DELIVERY_TIMEOUT_MS,
  QUIET_MS,
  expectServiceError,
  message,
  queue,
  sessionInfo,
  topic,
  unique,
  userTarget,
  type BrokerHarness,
  type Subscriber,
} from './broker-harness';
import { sleep, waitFor } from './wait';

const has = (subscriber: Subscriber, count: number) => () => subscriber.got.length >= count;

export function deliverySuite(h: BrokerHarness): void {
  describe('user destinations', function () {
    it("reaches every subscription of the user on every instance, once each, and nobody else's", async function () {
      const name = unique('greetings');
      const alice = `alice-${unique('u')}`;
      const bob = `bob-${unique('u')}`;
      const sessions = [
        await h.subscribe(0, userTarget(alice, name)),
        await h.subscribe(1, userTarget(alice, name)),
        await h.subscribe(2, userTarget(alice, name)),
      ];
      const bobs = await h.subscribe(0, userTarget(bob, name));
      await h.publish(userTarget(alice, name), 'for alice');
      await h.publish(userTarget(bob, name), 'for bob');
      await waitFor(() => sessions.every((s) => s.got.length >= 1), DELIVERY_TIMEOUT_MS, "alice's sessions");
      await waitFor(has(bobs, 1), DELIVERY_TIMEOUT_MS, "bob's push (the barrier)");
      await h.publish(userTarget(alice, name), 'barrier');
      await waitFor(() => sessions.every((s) => s.got.length >= 2), DELIVERY_TIMEOUT_MS, 'the barrier');
      await sleep(QUIET_MS);
      for (const session of sessions) expect(session.ids()).to.deep.equal(['for alice', 'barrier']);
      expect(bobs.ids()).to.deep.equal(['for bob']);
    });

    it('keeps /user/queue and /user/topic, and different names, apart', async function () {
      const user = unique('carol');
      const name = unique('n');
      const targets: MessageTarget[] = [
        userTarget(user, name, 'queue'),
        userTarget(user, name, 'topic'),
        userTarget(user, `${name}.x`, 'queue'),
        userTarget(user, `${name}x`, 'queue'),
      ];
      const subscribers: Subscriber[] = [];
      for (const [i, target] of targets.entries()) subscribers.push(await h.subscribe(i, target));
      for (const [i, target] of targets.entries()) await h.publish(target, `push-${i}`);
      await waitFor(() => subscribers.every((s) => s.got.length >= 1), DELIVERY_TIMEOUT_MS, 'every push');
      await sleep(QUIET_MS);
      subscribers.forEach((subscriber, i) =>
        expect(subscriber.ids(), `target ${i}`).to.deep.equal([`push-${i}`]),
      );
    });

    it('cannot confuse users whose names hold separators, wildcards, slashes, spaces or unicode', async function () {
      const r = randomBytes(4).toString('hex');
      // Pairs chosen to collide under naive joining or escaping: ('a.b', 'c') vs ('a', 'b.c'),
      // wildcard users that would match anyone as a routing pattern, percent- and underscore-style
      // escapes of another user's name, case.
      const cases: [user: string, name: string][] = [
        ['a.b', `c.${r}`],
        ['a', `b.c.${r}`],
        ['a', `c.${r}`],
        ['a.b.c', r],
        ['a-b', `c-${r}`],
        ['a', `b-c-${r}`],
        ['a_b', `c_${r}`],
        ['a', `b_c_${r}`],
        ['a:b', `c:${r}`],
        ['a', `b:c:${r}`],
        ['a@b', `c@${r}`],
        ['a', `b@c@${r}`],
        ['*', `c.${r}`],
        ['#', `c.${r}`],
        ['a.*', `c.${r}`],
        ['a.#', `c.${r}`],
        ['*.b', `c.${r}`],
        ['a/b', `c.${r}`],
        ['a/queue/b', `c.${r}`],
        ['a b', `c.${r}`],
        ['a\\.b', `c.${r}`],
        ['a%2Eb', `c.${r}`],
        ['a%2eb', `c.${r}`],
        ['a_2eb', `c.${r}`],
        ['a_2Eb', `c.${r}`],
        ['zoë', `n.${r}`],
        ['zoe', `n.${r}`],
        ['zo%C3%AB', `n.${r}`],
        ['日本', `n.${r}`],
        ['alice', `n.${r}`],
        ['Alice', `n.${r}`],
        ['alice ', `n.${r}`],
      ];
      const subscribers: Subscriber[] = [];
      for (const [i, [user, name]] of cases.entries()) {
        subscribers.push(await h.subscribe(i, userTarget(user, name)));
      }
      for (const [i, [user, name]] of cases.entries()) {
        await h.at(i + 1).publish(userTarget(user, name), message(`push-${i}`));
      }
      await waitFor(() => subscribers.every((s) => s.got.length >= 1), DELIVERY_TIMEOUT_MS, 'every push');
      await sleep(QUIET_MS);
      subscribers.forEach((subscriber, i) => {
        expect(subscriber.ids(), `user ${JSON.stringify(cases[i][0])} name ${cases[i][1]}`).to.deep.equal([
          `push-${i}`,
        ]);
      });
    });

    it('accepts a push to a user with no live session', async function () {
      await h.publish(userTarget(unique('nobody'), unique('greetings')), 'unheard');
    });
  });

  describe('messages', function () {
    it('preserves messageId, headers and binary bodies byte-exact on every kind of target', async function () {
      const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const binary = Buffer.concat([Buffer.from([0]), allBytes, Buffer.from([0, 0, 0xff, 0xfe])]);
      const headers = {
        'content-type': 'application/octet-stream',
        'x-colon': 'a:b:c',
        'x-backslash': 'c\\d',
        'x-newline': 'line1\nline2',
        'x-crlf': 'a\r\nb',
        'x-unicode': 'zoë ☃ 日本 🚀',
        'x-spaces': '  padded  ',
        'x-empty': '',
      };
      const sent = [
        message(unique('id-binary'), binary, headers),
        message(unique('id-empty'), Buffer.alloc(0)),
        message(unique('id-large'), randomBytes(256 * 1024), { 'content-type': 'text/plain; charset=utf-8' }),
      ];
      const targets = [
        topic(unique('bytes')),
        queue(unique('bytes')),
        userTarget(unique('dora'), unique('bytes')),
      ];
      const subscribers: Subscriber[] = [];
      for (const [i, target] of targets.entries()) subscribers.push(await h.subscribe(i, target));
      for (const target of targets) await h.publish(target, ...sent);
      await waitFor(() => subscribers.every((s) => s.got.length >= 3), DELIVERY_TIMEOUT_MS, 'all messages');
      subscribers.forEach((subscriber, i) => {
        subscriber.got.forEach((delivery, j) => {
          const what = `${targets[i].kind} message ${j}`;
          expect(delivery.messageId, what).to.equal(sent[j].id);
          expect(delivery.headers, what).to.deep.equal(sent[j].headers);
          expect(delivery.body.equals(sent[j].body), `${what}: body byte-exact`).to.equal(true);
        });
      });
    });
  });

  describe('transactions', function () {
    it('commit() applies its publishes in order', async function () {
      const target = topic(unique('tx'));
      const subscriber = await h.subscribe(0, target);
      await h.publisher.commit(
        ['m1', 'm2', 'm3'].map((id) => ({ op: 'publish', target, message: message(id) })),
      );
      await waitFor(has(subscriber, 3), DELIVERY_TIMEOUT_MS, 'the three committed messages');
      expect(subscriber.ids()).to.deep.equal(['m1', 'm2', 'm3']);
    });

    it('commit() applies acks and nacks together with publishes', async function () {
      const target = queue(unique('tx-ack'));
      const consumer = await h.subscribe(0, target, { ackMode: 'client-individual' });
      await h.publish(target, 'm1', 'm2');
      await waitFor(has(consumer, 2), DELIVERY_TIMEOUT_MS, 'two messages');
      const { subscription } = consumer;
      await h.at(0).commit([
        { op: 'ack', subscription, ackId: consumer.last('m1').ackId! },
        { op: 'nack', subscription, ackId: consumer.last('m2').ackId! },
        { op: 'publish', target, message: message('m3') },
      ]);
      await waitFor(has(consumer, 4), DELIVERY_TIMEOUT_MS, 'm2 again and m3');
      expect(consumer.ids().slice(2)).to.have.members(['m2', 'm3']);
      expect(consumer.last('m2').redelivered).to.equal(true);
      for (const id of ['m2', 'm3']) await subscription.ack(consumer.last(id).ackId!);
      await subscription.close();
      const next = await h.subscribe(1, target);
      await h.publish(target, 'barrier');
      await waitFor(has(next, 1), DELIVERY_TIMEOUT_MS, 'the barrier');
      await sleep(QUIET_MS);
      expect(next.ids(), 'm1 was acked by the commit').to.deep.equal(['barrier']);
    });

    it('commit() with a bad ackId rejects with bad_request and applies nothing', async function () {
      const target = topic(unique('tx-bad'));
      const subscriber = await h.subscribe(0, target);
      const consumer = await h.subscribe(0, queue(unique('tx-bad')), { ackMode: 'client-individual' });
      const ops = [
        { op: 'publish', target, message: message('m1') },
        { op: 'ack', subscription: consumer.subscription, ackId: 'no-such-ack-id' },
      ] as const;
      await expectServiceError(h.at(0).commit([...ops]), 'bad_request');
      await h.publish(target, 'barrier');
      await waitFor(has(subscriber, 1), DELIVERY_TIMEOUT_MS, 'the barrier');
      await sleep(QUIET_MS);
      expect(subscriber.ids(), 'the failed commit published nothing').to.deep.equal(['barrier']);
    });
  });

  describe('session directory', function () {
    it("lists a user's sessions from every instance, sorted by connectedAt, and only that user's", async function () {
      const alice = unique('alice');
      const later = sessionInfo(unique('s'), alice, '2024-05-01T10:00:02.000Z', 'instance-a');
      const earlier = sessionInfo(unique('s'), alice, '2024-05-01T10:00:01.000Z', 'instance-b');
      const bobs = sessionInfo(unique('s'), unique('bob'), '2024-05-01T10:00:00.000Z', 'instance-a');
      const prefixed = sessionInfo(unique('s'), `${alice}x`, '2024-05-01T10:00:00.000Z', 'instance-a');
      h.presenceAt(0).upsert(later);
      h.presenceAt(h.size - 1).upsert(earlier);
      h.presenceAt(0).upsert(bobs);
      h.presenceAt(0).upsert(prefixed);
      for (const presence of h.presences) {
        await waitFor(
          async () => (await presence.list(alice)).length === 2,
          DELIVERY_TIMEOUT_MS,
          "both of alice's sessions",
        );
        expect(await presence.list(alice)).to.deep.equal([earlier, later]);
        expect(await presence.list(bobs.user)).to.deep.equal([bobs]);
        expect(await presence.list(unique('nobody'))).to.deep.equal([]);
      }
      for (const info of [later, bobs, prefixed]) h.presenceAt(0).remove(info.sessionId);
      h.presenceAt(h.size - 1).remove(earlier.sessionId);
    });

    it('replaces an entry on upsert and forgets it on remove', async function () {
      const user = unique('erin');
      const info = sessionInfo(unique('s'), user, '2024-05-01T10:00:00.000Z', 'instance-a');
      const presence = h.presenceAt(0);
      presence.upsert(info);
      const updated = {
        ...info,
        subscriptions: [...info.subscriptions, { id: 'sub-1', destination: '/topic/x' }],
      };
      presence.upsert(updated);
      info.subscriptions.push({ id: 'mutated', destination: '/topic/after-upsert' });
      await waitFor(
        async () => (await h.presenceAt(h.size - 1).list(user)).some((s) => s.subscriptions.length === 2),
        DELIVERY_TIMEOUT_MS,
        'the updated entry',
      );
      expect(await h.presenceAt(h.size - 1).list(user)).to.deep.equal([updated]);
      presence.remove(info.sessionId);
      await waitFor(
        async () => (await h.presenceAt(h.size - 1).list(user)).length === 0,
        DELIVERY_TIMEOUT_MS,
        'removal',
      );
    });
  });

  describe('lifecycle', function () {
    it('is ready once started', async function () {
      for (const broker of h.brokers) expect(broker.readiness()).to.deep.equal({ ready: true });
    });

    it('after stop(), refuses publishes with broker_unavailable and delivers nothing more', async function () {
      const target = topic(unique('stopped'));
      const stopping = await h.subscribe(0, target);
      await h.publish(target, 'm1');
      await waitFor(has(stopping, 1), DELIVERY_TIMEOUT_MS, 'm1');
      await h.stop(0);
      await stopping.subscription.close(); // already closed by stop(): must still resolve
      await expectServiceError(h.at(0).publish(target, message('m2')), 'broker_unavailable');
      if (h.size > 1) {
        const live = await h.subscribe(1, target);
        await h.publish(target, 'm3');
        await waitFor(has(live, 1), DELIVERY_TIMEOUT_MS, 'm3 on a live instance (the barrier)');
      }
      await sleep(QUIET_MS);
      expect(stopping.ids()).to.deep.equal(['m1']);
    });
  });
}
