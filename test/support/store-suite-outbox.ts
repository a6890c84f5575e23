/**
 * The store suite, part four: what the live path needs to join the broker's stream to the store
 * without a gap. prevSeq on every stored message (per destination), reads bounded to a gap, and
 * the outbox (unpublished messages claimed by one catch-up at a time, until marked published).
 */
import { expect } from 'chai';

import type { InboxStore } from '../../app/inbox/store';
import { INBOX, StoreHarness, TestClock, ids, item, pending, push, stored, user } from './store-harness';

/** Marks everything earlier tests left unpublished as published: the outbox then holds only this test's. */
async function drainOutbox(store: InboxStore): Promise<void> {
  for (let runs = 0; runs < 100; runs++) {
    const claimed = await store.claimUnpublished({ olderThanMs: 0, limit: 1000 });
    if (claimed.length === 0) return;
    await store.markPublished(claimed.map((m) => ({ user: m.user, seq: m.seq })));
  }
}

export function storeOutboxSuite(h: StoreHarness): void {
  describe('gaps and the outbox', function () {
    it('gives each push the seq of the previous kept one to the same destination (prevSeq)', async function () {
      const store = await h.store();
      const to = user();
      const other = `${INBOX}.other`;
      expect((await push(store, to, 'a1')).prevSeq).to.equal(0);
      expect((await push(store, to, 'b1', { destination: other })).prevSeq).to.equal(0);
      const batch = await store.append([
        item(to, 'a2'),
        item(to, 'b2', { destination: other }),
        item(to, 'a3'),
      ]);
      expect(batch.map((o) => [stored(o).seq, stored(o).prevSeq])).to.deep.equal([
        [3, 1],
        [4, 2],
        [5, 3],
      ]);
      const replay = await pending(store, to, 'd');
      expect(replay.map((m) => [m.seq, m.prevSeq])).to.deep.equal([
        [1, 0],
        [3, 1],
        [5, 3],
      ]);
    });

    it('reads a gap: only seqs after `after` and before `before`', async function () {
      const store = await h.store();
      const to = user();
      await store.append(['m1', 'm2', 'm3', 'm4', 'm5'].map((id) => item(to, id)));
      const gap = await store.read({
        user: to,
        device: 'd',
        destination: INBOX,
        from: { progress: true },
        after: 1,
        before: 4,
      });
      expect(ids(gap.messages)).to.deep.equal(['m2', 'm3']);
      expect(gap.more).to.equal(false);
    });

    it('hands unpublished messages to one catch-up at a time until they are marked published', async function () {
      const clock = new TestClock(Date.UTC(2031, 0, 1));
      const stores = [await h.store({ clock: clock.now }), await h.store({ clock: clock.now })];
      await drainOutbox(stores[0]);
      const to = user();
      await stores[0].append(['m1', 'm2', 'm3'].map((id) => item(to, id)));
      const mine = async (index: number) =>
        (await stores[index].claimUnpublished({ olderThanMs: 1000, limit: 100 })).filter(
          (m) => m.user === to,
        );
      expect(await mine(0), 'not before olderThanMs').to.deep.equal([]);
      clock.advance(1);
      const claimed = await mine(0);
      expect(claimed.map((m) => [m.id, m.seq, m.destination])).to.deep.equal([
        ['m1', 1, INBOX],
        ['m2', 2, INBOX],
        ['m3', 3, INBOX],
      ]);
      expect(claimed[0].body.toString()).to.equal('body of m1');
      expect(await mine(1), 'claimed: no other catch-up gets them').to.deep.equal([]);
      await stores[0].markPublished([
        { user: to, seq: 1 },
        { user: to, seq: 2 },
      ]);
      clock.advance(1);
      const again = await mine(1);
      expect(
        again.map((m) => m.id),
        'back once the claim is as old, unless published',
      ).to.deep.equal(['m3']);
      await stores[1].markPublished([{ user: to, seq: 3 }]);
      clock.advance(1);
      expect(await mine(0)).to.deep.equal([]);
    });

    it('never hands out an expired message, and shares a backlog between concurrent catch-ups', async function () {
      const clock = new TestClock(Date.UTC(2032, 0, 1));
      const stores = [
        await h.store({ clock: clock.now, limits: { ttlS: 10 } }),
        await h.store({ clock: clock.now, limits: { ttlS: 10 } }),
      ];
      await drainOutbox(stores[0]);
      const to = user();
      await stores[0].append(Array.from({ length: 20 }, (_, i) => item(to, `m${i + 1}`)));
      clock.advance(5);
      const claims = await Promise.all(
        stores.map((s) => s.claimUnpublished({ olderThanMs: 1000, limit: 1000 })),
      );
      const claimed = claims
        .flat()
        .filter((m) => m.user === to)
        .map((m) => m.seq);
      expect(
        claimed.sort((a, b) => a - b),
        'each once',
      ).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
      clock.advance(5);
      const late = await stores[0].claimUnpublished({ olderThanMs: 1000, limit: 1000 });
      expect(late.filter((m) => m.user === to)).to.deep.equal([]);
    });
  });
}
