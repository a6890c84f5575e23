/**
 * THE behaviour suite every InboxStore must pass (the model is in app/inbox/store.ts, the contract
 * in SPEC "The inbox"), run on PGlite in memory, PGlite on files and PostgreSQL, as the broker
 * suite runs on both brokers. Tests keep apart by unique user names, so one database serves the
 * whole suite; where several stores can share a database (PostgreSQL), concurrency is checked
 * across store instances, as several service instances would write.
 */
import { expect } from 'chai';

import { expectServiceError } from './broker-harness';
import type { StoreFixture } from './store-fixtures';
import {
  StoreHarness,
  INBOX,
  TestClock,
  ids,
  item,
  pending,
  push,
  since,
  stored,
  user,
} from './store-harness';
import { storeLifecycleSuite } from './store-suite-lifecycle';
import { storeExpirySuite } from './store-suite-expiry';
import { storeOutboxSuite } from './store-suite-outbox';

export function storeSuite(fixture: StoreFixture): void {
  describe(`inbox store: ${fixture.name}`, function () {
    this.timeout(60_000);
    const h = new StoreHarness(fixture);
    before(async () => fixture.setUp());
    after(async () => fixture.tearDown());
    afterEach(async () => h.tearDown());

    describe('seq', function () {
      it('numbers each user’s pushes 1, 2, 3... in order, apart from other users', async function () {
        const store = await h.store();
        const [alice, bob] = [user('alice'), user('bob')];
        const outcomes = await store.append([
          item(alice, 'a1'),
          item(bob, 'b1'),
          item(alice, 'a2'),
          item(alice, 'a3'),
        ]);
        expect(outcomes.map((o) => stored(o).seq)).to.deep.equal([1, 1, 2, 3]);
        expect((await push(store, bob, 'b2')).seq).to.equal(2);
        expect(ids(await pending(store, alice, 'default'))).to.deep.equal(['a1', 'a2', 'a3']);
      });

      it('answers each append with its id, createdAt and expiresAt (INBOX_TTL_S later)', async function () {
        const clock = new TestClock();
        const store = await h.store({ clock: clock.now, limits: { ttlS: 3600 } });
        const result = await push(store, user(), 'm1');
        expect(result).to.deep.include({ id: 'm1', seq: 1, duplicate: false });
        expect(result.createdAt.getTime()).to.equal(clock.ms);
        expect(result.expiresAt.getTime()).to.equal(clock.ms + 3600_000);
      });

      it('hands out every seq once, increasing per caller, under concurrent appends from several stores', async function () {
        const stores = await Promise.all([0, 1, 2].map(() => h.store()));
        if (!fixture.shared) stores.splice(1); // one PGlite per process: its callers still race
        const [alice, bob] = [user('alice'), user('bob')];
        const workers = Array.from({ length: 6 }, (_, w) => ({ store: stores[w % stores.length], w }));
        const perWorker = await Promise.all(
          workers.map(async ({ store, w }) => {
            const seqs: number[] = [];
            for (let i = 0; i < 15; i++) {
              const [a, b] = await store.append([item(alice, `w${w}-${i}`), item(bob, `w${w}-${i}`)]);
              seqs.push(stored(a).seq);
              expect(stored(b).seq).to.be.greaterThan(0);
            }
            return seqs;
          }),
        );
        for (const seqs of perWorker) {
          expect(seqs, 'one caller’s pushes keep their order').to.deep.equal([...seqs].sort((x, y) => x - y));
        }
        const all = perWorker.flat().sort((x, y) => x - y);
        expect(all).to.deep.equal(Array.from({ length: 90 }, (_, i) => i + 1));
        const replay = await pending(stores[0], alice, 'default');
        expect(replay.map((m) => m.seq)).to.deep.equal(all);
      });

      it('keeps one batch’s items in item order, and refuses a bad item alone', async function () {
        const store = await h.store();
        const to = user();
        const outcomes = await store.append([
          item(to, 'm1'),
          item(to, 'bad', { destination: '/queue/not-a-user-destination' }),
          item(to, 'm2'),
        ]);
        expect(stored(outcomes[0]).seq).to.equal(1);
        expect(outcomes[1].ok).to.equal(false);
        if (!outcomes[1].ok) expect(outcomes[1].error.code).to.equal('bad_destination');
        expect(stored(outcomes[2]).seq).to.equal(2);
      });
    });

    describe('idempotency', function () {
      it('answers a retry with the same key and body with the first result and stores nothing new', async function () {
        const store = await h.store();
        const to = user();
        const first = await push(store, to, 'm1', { idempotencyKey: 'key-1' });
        const retry = await push(store, to, 'retry-id', {
          idempotencyKey: 'key-1',
          body: Buffer.from('body of m1'),
        });
        expect(retry).to.deep.equal({ ...first, duplicate: true });
        expect((await push(store, to, 'm2')).seq, 'no seq was used by the retry').to.equal(2);
        expect(ids(await pending(store, to, 'default'))).to.deep.equal(['m1', 'm2']);
      });

      it('refuses the same key with a different body or headers (idempotency_conflict), alone in its batch', async function () {
        const store = await h.store();
        const to = user();
        await push(store, to, 'm1', { idempotencyKey: 'k' });
        const outcomes = await store.append([
          item(to, 'x1', { idempotencyKey: 'k', body: Buffer.from('another body') }),
          item(to, 'x2', {
            idempotencyKey: 'k',
            body: Buffer.from('body of m1'),
            headers: { other: 'header' },
          }),
          item(to, 'm2'),
        ]);
        for (const outcome of outcomes.slice(0, 2)) {
          expect(outcome.ok).to.equal(false);
          if (!outcome.ok) expect(outcome.error.code).to.equal('idempotency_conflict');
        }
        expect(stored(outcomes[2]).seq).to.equal(2);
      });

      it('keeps keys per user, and catches a key repeated inside one batch', async function () {
        const store = await h.store();
        const [alice, bob] = [user('alice'), user('bob')];
        const outcomes = await store.append([
          item(alice, 'a1', { idempotencyKey: 'same' }),
          item(bob, 'b1', { idempotencyKey: 'same' }),
          item(alice, 'a1-again', { idempotencyKey: 'same', body: Buffer.from('body of a1') }),
        ]);
        expect(outcomes.map((o) => [stored(o).id, stored(o).seq, stored(o).duplicate])).to.deep.equal([
          ['a1', 1, false],
          ['b1', 1, false],
          ['a1', 1, true],
        ]);
      });

      it('keeps a key while its message is readable, also after it expired; frees it once deleted', async function () {
        const clock = new TestClock();
        const store = await h.store({ clock: clock.now, limits: { ttlS: 100 } });
        const to = user();
        const first = await push(store, to, 'm1', { idempotencyKey: 'k' });
        clock.advance(150); // expired, still readable through status
        expect(
          await push(store, to, 'again', { idempotencyKey: 'k', body: Buffer.from('body of m1') }),
        ).to.deep.equal({
          ...first,
          duplicate: true,
        });
        clock.advance(100); // readable for INBOX_TTL_S after expiry: over now
        await store.expire();
        const fresh = await push(store, to, 'm2', { idempotencyKey: 'k' });
        expect(fresh).to.deep.include({ id: 'm2', seq: 2, duplicate: false });
      });
    });

    describe('devices', function () {
      it('gives every device every message; one device’s ack does not take from another', async function () {
        const store = await h.store();
        const to = user();
        await store.touchDevice(to, 'phone');
        await store.touchDevice(to, 'laptop');
        const seqs = await Promise.all(['m1', 'm2', 'm3'].map((id) => push(store, to, id)));
        expect(ids(await pending(store, to, 'phone'))).to.deep.equal(['m1', 'm2', 'm3']);
        await store.ack([
          { user: to, device: 'phone', seq: seqs[0].seq },
          { user: to, device: 'phone', seq: seqs[2].seq },
        ]);
        expect(ids(await pending(store, to, 'phone'))).to.deep.equal(['m2']);
        expect(ids(await pending(store, to, 'laptop'))).to.deep.equal(['m1', 'm2', 'm3']);
      });

      it('gives a device that appears later everything kept that it has not acknowledged', async function () {
        const store = await h.store();
        const to = user();
        await push(store, to, 'm1');
        expect(await store.touchDevice(to, 'tablet')).to.deep.equal({ isNew: true, knownAfterSeq: 1 });
        expect(await store.touchDevice(to, 'tablet')).to.deep.equal({ isNew: false, knownAfterSeq: 1 });
        expect(ids(await pending(store, to, 'tablet'))).to.deep.equal(['m1']);
      });

      it('marks what a device was sent: redelivered for that device only, and a NACK (no call) keeps it pending', async function () {
        const store = await h.store();
        const to = user();
        const [m1, m2] = [await push(store, to, 'm1'), await push(store, to, 'm2')];
        await store.markDelivered([
          { user: to, device: 'phone', seq: m1.seq },
          { user: to, device: 'phone', seq: m2.seq },
        ]);
        await store.ack([{ user: to, device: 'phone', seq: m2.seq }]);
        const phone = await pending(store, to, 'phone');
        expect(phone.map((m) => [m.id, m.redelivered])).to.deep.equal([['m1', true]]);
        const laptop = await pending(store, to, 'laptop');
        expect(laptop.map((m) => [m.id, m.redelivered])).to.deep.equal([
          ['m1', false],
          ['m2', false],
        ]);
        const history = await since(store, to, 'phone', 0);
        expect(history.map((m) => [m.id, m.redelivered])).to.deep.equal([
          ['m1', true],
          ['m2', true],
        ]);
      });

      it('ignores acks and deliveries of seqs that do not exist, and acks twice without harm', async function () {
        const store = await h.store();
        const to = user();
        const m1 = await push(store, to, 'm1');
        const entries = [
          { user: to, device: 'd', seq: 999 },
          { user: to, device: 'd', seq: m1.seq },
          { user: to, device: 'd', seq: m1.seq },
        ];
        await store.markDelivered(entries);
        await store.ack(entries);
        await store.ack(entries);
        expect(await pending(store, to, 'd')).to.deep.equal([]);
        expect(await store.status(to, 'm1')).to.deep.include({ state: 'acked' });
      });

      it('refuses a device id outside 1-64 of A-Z a-z 0-9 _ -', async function () {
        const store = await h.store();
        for (const bad of ['', 'a b', 'x'.repeat(65), 'ü', 'a/b']) {
          await expectServiceError(store.touchDevice(user(), bad), 'bad_request');
        }
        await expectServiceError(store.ack([{ user: user(), device: 'no spaces', seq: 1 }]), 'bad_request');
        expect(await store.touchDevice(user(), `A-z_0${'9'.repeat(59)}`)).to.deep.include({ isNew: true });
      });
    });

    describe('reading', function () {
      it('reads from inbox-since: 0 is the oldest kept, acknowledged or not; a seq past the last is empty', async function () {
        const store = await h.store();
        const to = user();
        for (const id of ['m1', 'm2', 'm3', 'm4']) await push(store, to, id);
        await store.ack([1, 2, 3, 4].map((seq) => ({ user: to, device: 'phone', seq })));
        expect(await pending(store, to, 'phone')).to.deep.equal([]);
        expect(ids(await since(store, to, 'phone', 0))).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
        expect(ids(await since(store, to, 'phone', 2))).to.deep.equal(['m3', 'm4']);
        expect(await since(store, to, 'phone', 4)).to.deep.equal([]);
        expect(await since(store, to, 'phone', 1000)).to.deep.equal([]);
        await expectServiceError(
          store.read({ user: to, device: 'phone', destination: INBOX, from: { since: -1 } }),
          'bad_request',
        );
      });

      it('reads one destination only, with headers and body bytes as pushed', async function () {
        const store = await h.store();
        const to = user();
        const body = Buffer.from([0, 1, 2, 255, 10, 0]);
        await push(store, to, 'orders', {
          destination: `${INBOX}.orders`,
          headers: { 'content-type': 'application/octet-stream', x: 'ü:\n' },
          body,
        });
        await push(store, to, 'plain');
        const [orders] = await pending(store, to, 'default', `${INBOX}.orders`);
        expect(orders).to.deep.include({ id: 'orders', seq: 1, destination: `${INBOX}.orders` });
        expect(orders.headers).to.deep.equal({ 'content-type': 'application/octet-stream', x: 'ü:\n' });
        expect(orders.body.equals(body)).to.equal(true);
        expect(ids(await pending(store, to, 'default'))).to.deep.equal(['plain']);
      });

      it('replays 1,000 pending messages in seq order, in pages', async function () {
        const store = await h.store();
        const to = user();
        const batch = Array.from({ length: 1000 }, (_, i) => item(to, `m${i + 1}`));
        expect((await store.append(batch)).every((o) => o.ok)).to.equal(true);
        const first = await store.read({
          user: to,
          device: 'd',
          destination: INBOX,
          from: { progress: true },
          limit: 400,
        });
        expect(first.messages).to.have.length(400);
        expect(first.more).to.equal(true);
        const all = await pending(store, to, 'd');
        expect(all.map((m) => m.seq)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i + 1));
      });

      it('shows another user nothing: not by read, status or ack', async function () {
        const store = await h.store();
        const [alice, mallory] = [user('alice'), user('mallory')];
        const m1 = await push(store, alice, 'secret');
        expect(await since(store, mallory, 'default', 0)).to.deep.equal([]);
        expect(await store.status(mallory, 'secret')).to.equal(undefined);
        await store.ack([{ user: mallory, device: 'default', seq: m1.seq }]);
        expect(ids(await pending(store, alice, 'default'))).to.deep.equal(['secret']);
      });
    });

    describe('status', function () {
      it('says pending until every device known at push time acked, then acked; devices map to their state', async function () {
        const store = await h.store();
        const to = user();
        await store.touchDevice(to, 'phone');
        await store.touchDevice(to, 'laptop');
        const m1 = await push(store, to, 'm1');
        await store.touchDevice(to, 'later');
        expect(await store.status(to, 'm1')).to.deep.include({
          state: 'pending',
          devices: { phone: 'pending', laptop: 'pending', later: 'pending' },
        });
        await store.markDelivered([{ user: to, device: 'laptop', seq: m1.seq }]);
        await store.ack([{ user: to, device: 'phone', seq: m1.seq }]);
        expect(await store.status(to, 'm1')).to.deep.include({
          state: 'pending',
          devices: { phone: 'acked', laptop: 'delivered', later: 'pending' },
        });
        await store.ack([{ user: to, device: 'laptop', seq: m1.seq }]);
        const status = await store.status(to, 'm1');
        expect(status, 'a device that appeared after the push does not hold it back').to.deep.include({
          state: 'acked',
        });
        expect(status?.devices).to.deep.equal({ phone: 'acked', laptop: 'acked', later: 'pending' });
        expect(status).to.have.all.keys(
          'id',
          'seq',
          'destination',
          'createdAt',
          'expiresAt',
          'state',
          'devices',
        );
        expect(status).to.deep.include({ id: 'm1', seq: m1.seq, destination: INBOX });
      });

      it('says pending for a user with no device yet, until one acknowledges it', async function () {
        const store = await h.store();
        const to = user();
        const m1 = await push(store, to, 'm1');
        expect(await store.status(to, 'm1')).to.deep.include({ state: 'pending', devices: {} });
        await store.touchDevice(to, 'first');
        await store.ack([{ user: to, device: 'first', seq: m1.seq }]);
        expect(await store.status(to, 'm1')).to.deep.include({ state: 'acked', devices: { first: 'acked' } });
      });

      it('answers undefined for an id that is not in the inbox', async function () {
        const store = await h.store();
        const to = user();
        await push(store, to, 'm1');
        expect(await store.status(to, 'm2')).to.equal(undefined);
        expect(await store.status(user(), 'm1')).to.equal(undefined);
      });
    });

    storeOutboxSuite(h);
    storeExpirySuite(h);
    storeLifecycleSuite(h);
  });
}
