/**
 * The store suite, part three: what happens around the data. Migrations (applied once, also when
 * several stores start at once against an empty database), what survives a restart (file-backed
 * PGlite, PostgreSQL) and what does not (PGlite in memory), and a stopped store refusing work.
 */
import { expect } from 'chai';

import { MIGRATIONS } from '../../app/inbox/migrations';
import { expectServiceError } from './broker-harness';
import type { StorePlace } from './store-fixtures';
import { StoreHarness, ids, item, pending, push, user } from './store-harness';

async function versions(h: StoreHarness, place: StorePlace): Promise<number[]> {
  const rows = await h.fixture.inspect(place, 'SELECT version FROM inbox_schema_migrations ORDER BY version');
  return rows.map((row) => Number(row.version));
}

function defineMigrationTests(h: StoreHarness, all: number[]): void {
  const { fixture } = h;
  it('applies each migration once; starting again changes nothing', async function () {
    await h.store();
    await h.store();
    expect(await versions(h, fixture.main)).to.deep.equal(all);
    const tables = await fixture.inspect(
      fixture.main,
      "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'inbox%' ORDER BY table_name",
    );
    expect(tables.map((row) => row.table_name)).to.deep.equal([
      'inbox_deliveries',
      'inbox_devices',
      'inbox_messages',
      'inbox_schema_migrations',
      'inbox_users',
    ]);
  });

  if (fixture.shared) {
    it('migrates an empty database once when several stores start at the same moment', async function () {
      const place = await fixture.newPlace();
      const stores = await Promise.all([0, 1, 2, 3].map(() => fixture.open(place)));
      try {
        await Promise.all(stores.map((store) => store.start()));
        expect(await versions(h, place)).to.deep.equal(all);
        const to = user();
        const outcomes = await Promise.all(stores.map((store, i) => push(store, to, `m${i}`)));
        expect(outcomes.map((o) => o.seq).sort()).to.deep.equal([1, 2, 3, 4]);
      } finally {
        await Promise.all(stores.map((store) => store.stop()));
      }
    });
  }
}

export function storeLifecycleSuite(h: StoreHarness): void {
  const { fixture } = h;
  const all = MIGRATIONS.map((migration) => migration.version);

  describe('lifecycle', function () {
    if (fixture.sql) defineMigrationTests(h, all);

    if (fixture.persistent) {
      it('keeps messages, seqs and device progress across a restart', async function () {
        const to = user();
        const first = await h.store();
        await first.touchDevice(to, 'phone');
        await first.append(['m1', 'm2'].map((id) => item(to, id, { idempotencyKey: id })));
        await first.ack([{ user: to, device: 'phone', seq: 1 }]);
        await first.stop();
        await fixture.reopen(fixture.main);
        const second = await h.store();
        expect(ids(await pending(second, to, 'phone'))).to.deep.equal(['m2']);
        expect((await push(second, to, 'm3')).seq).to.equal(3);
        expect(
          await push(second, to, 'retry', { idempotencyKey: 'm1', body: Buffer.from('body of m1') }),
        ).to.deep.include({ id: 'm1', duplicate: true });
        expect(await second.status(to, 'm1')).to.deep.include({
          state: 'acked',
          devices: { phone: 'acked' },
        });
      });
    } else {
      it('keeps nothing across a restart (in memory: INBOX_DATA_DIR unset)', async function () {
        const to = user();
        const first = await h.store();
        await push(first, to, 'm1');
        await first.stop();
        await fixture.reopen(fixture.main);
        const second = await h.store();
        expect(await pending(second, to, 'phone')).to.deep.equal([]);
        expect((await push(second, to, 'm2')).seq).to.equal(1);
      });
    }

    it('is ready once started, and refuses work once stopped (inbox_unavailable); stop is idempotent', async function () {
      const store = await h.store();
      expect(store.readiness()).to.deep.equal({ ready: true });
      await push(store, user(), 'm1');
      await store.stop();
      await store.stop();
      await expectServiceError(store.append([item(user(), 'm2')]), 'inbox_unavailable');
      await expectServiceError(
        store.read({ user: user(), device: 'd', destination: '/user/queue/inbox', from: { progress: true } }),
        'inbox_unavailable',
      );
    });
  });
}
