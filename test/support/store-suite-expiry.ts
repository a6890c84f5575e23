/**
 * The store suite, part two: expiry by INBOX_TTL_S and INBOX_MAX_MESSAGES, the sweep, and the
 * counts /metrics shows. The suite's database is shared by its tests, so a test that sweeps first
 * moves its clock past everything earlier tests left and drains it; after that the sweep sees only
 * what the test itself pushed, and its counts can be exact.
 */
import { expect } from 'chai';

import type { InboxStore } from '../../app/inbox/store';
import {
  INBOX,
  RecordingObserver,
  TestClock,
  StoreHarness,
  ids,
  item,
  pending,
  push,
  since,
  stored,
  user,
} from './store-harness';

let epochs = 0;

/** A clock 10 years after the previous one: every earlier message is long expired by then. */
function laterClock(): TestClock {
  epochs += 1;
  return new TestClock(Date.UTC(2040 + 10 * epochs, 0, 1));
}

async function drain(store: InboxStore, observer: RecordingObserver): Promise<void> {
  for (let runs = 0; runs < 1000; runs++) {
    const result = await store.expire();
    if (!result.more) break;
  }
  observer.expiredBy.ttl = 0;
  observer.expiredBy.limit = 0;
}

export function storeExpirySuite(h: StoreHarness): void {
  describe('expiry', function () {
    it('expires by TTL: never read again, expired in status until INBOX_TTL_S later, then gone', async function () {
      const clock = laterClock();
      const observer = new RecordingObserver();
      const store = await h.store({ clock: clock.now, observer, limits: { ttlS: 100 } });
      await drain(store, observer);
      const to = user();
      const m1 = await push(store, to, 'm1');
      clock.advance(99);
      expect(ids(await pending(store, to, 'd'))).to.deep.equal(['m1']);
      clock.advance(1);
      expect(await pending(store, to, 'd'), 'expired at expiresAt').to.deep.equal([]);
      expect(await since(store, to, 'd', 0)).to.deep.equal([]);
      expect(await store.status(to, 'm1')).to.deep.include({ state: 'expired', expiresAt: m1.expiresAt });

      expect(await store.expire()).to.deep.equal({
        expired: 1,
        deleted: 0,
        devicesForgotten: 0,
        more: false,
      });
      expect(await store.expire(), 'counted once').to.deep.include({ expired: 0 });
      expect(observer.expiredBy).to.deep.equal({ ttl: 1, limit: 0 });
      clock.advance(99);
      await store.expire();
      expect(await store.status(to, 'm1'), 'readable for INBOX_TTL_S after expiry').to.deep.include({
        state: 'expired',
      });
      clock.advance(1);
      expect(await store.expire()).to.deep.include({ deleted: 1 });
      expect(await store.status(to, 'm1')).to.equal(undefined);
    });

    it('keeps the newest INBOX_MAX_MESSAGES per user across destinations; the oldest expire at once', async function () {
      const clock = new TestClock();
      const observer = new RecordingObserver();
      const store = await h.store({ clock: clock.now, observer, limits: { maxMessages: 3 } });
      const to = user();
      await push(store, to, 'm1');
      await push(store, to, 'm2', { destination: `${INBOX}.other` });
      await push(store, to, 'm3');
      clock.advance(10);
      await push(store, to, 'm4');
      expect(ids(await pending(store, to, 'd'))).to.deep.equal(['m3', 'm4']);
      expect(ids(await pending(store, to, 'd', `${INBOX}.other`))).to.deep.equal(['m2']);
      const m1 = await store.status(to, 'm1');
      expect(m1).to.deep.include({ state: 'expired' });
      expect(m1?.expiresAt.getTime(), 'expiresAt says when it expired').to.equal(clock.ms);
      expect(observer.expiredBy).to.deep.equal({ ttl: 0, limit: 1 });

      const batch = await store.append(['m5', 'm6', 'm7', 'm8', 'm9'].map((id) => item(to, id)));
      expect(batch.map((o) => stored(o).seq)).to.deep.equal([5, 6, 7, 8, 9]);
      expect(ids(await since(store, to, 'd', 0))).to.deep.equal(['m7', 'm8', 'm9']);
      expect(observer.expiredBy.limit).to.equal(6);
      expect(ids(await pending(store, user(), 'd')), 'other users keep theirs').to.deep.equal([]);
    });

    it('sweeps in bounded runs and counts each expiry once, with two stores sweeping at once', async function () {
      const clock = laterClock();
      const observers = [new RecordingObserver(), new RecordingObserver()];
      const stores = [
        await h.store({ clock: clock.now, observer: observers[0], limits: { ttlS: 10 } }),
        await h.store({ clock: clock.now, observer: observers[1], limits: { ttlS: 10 } }),
      ];
      await drain(stores[0], observers[0]);
      const to = user();
      await stores[0].append(Array.from({ length: 7 }, (_, i) => item(to, `m${i}`)));
      clock.advance(10);
      const first = await stores[0].expire({ limit: 3 });
      expect(first).to.deep.include({ expired: 3, more: true });
      await Promise.all(stores.map((s) => s.expire({ limit: 2 })));
      await Promise.all(stores.map((s) => s.expire({ limit: 2 })));
      expect(observers[0].expiredBy.ttl + observers[1].expiredBy.ttl).to.equal(7);
      clock.advance(10);
      let deleted = 0;
      for (let run = 0; run < 10 && deleted < 7; run++)
        deleted += (await stores[1].expire({ limit: 3 })).deleted;
      expect(deleted).to.equal(7);
    });

    it('forgets a device not seen for twice INBOX_TTL_S', async function () {
      const clock = laterClock();
      const observer = new RecordingObserver();
      const store = await h.store({ clock: clock.now, observer, limits: { ttlS: 100 } });
      await drain(store, observer);
      const to = user();
      await store.touchDevice(to, 'old');
      clock.advance(150);
      await store.touchDevice(to, 'recent');
      clock.advance(51);
      expect(await store.expire()).to.deep.include({ devicesForgotten: 1 });
      await push(store, to, 'm1');
      expect(await store.status(to, 'm1')).to.deep.include({ devices: { recent: 'pending' } });
    });

    it('counts the backlog by state', async function () {
      const clock = laterClock();
      const store = await h.store({ clock: clock.now, limits: { ttlS: 100 } });
      const before = await store.backlog();
      const to = user();
      await store.touchDevice(to, 'd');
      const [m1] = await store.append(['m1', 'm2', 'm3'].map((id) => item(to, id)));
      await store.ack([{ user: to, device: 'd', seq: stored(m1).seq }]);
      expect(await store.backlog()).to.deep.equal({
        pending: before.pending + 2,
        acked: before.acked + 1,
        expired: before.expired,
      });
      clock.advance(100);
      expect(await store.backlog()).to.deep.include({ pending: 0, acked: 0 });
      expect((await store.backlog()).expired).to.be.at.least(3);
    });
  });
}
