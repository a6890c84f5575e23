/**
 * The store suite on the embedded engine, PGlite, in memory (INBOX_DATA_DIR unset) and in a
 * directory (kept across restarts); then what only PGlite needs: housekeeping the store runs itself.
 */
import { expect } from 'chai';

import { migrate } from '../../../app/inbox/migrations';
import { PgliteEngine } from '../../../app/inbox/pglite';
import { silentLogger } from '../../../app/observability/logger';
import { pgliteFixture } from '../../support/store-fixtures';
import { storeSuite } from '../../support/store-suite';

storeSuite(pgliteFixture('memory'));
storeSuite(pgliteFixture('files'));

describe('PGlite engine housekeeping', function () {
  this.timeout(60_000);

  it('vacuums and analyzes the inbox tables (no autovacuum in PGlite), after which the planner knows their size', async function () {
    const engine = await PgliteEngine.open({ logger: silentLogger });
    try {
      await migrate(engine);
      await engine.query(
        "INSERT INTO inbox_users (user_id, last_seq) SELECT 'u' || g, g FROM generate_series(1, 500) AS g",
      );
      await engine.maintain();
      const [row] = await engine.query("SELECT reltuples FROM pg_class WHERE relname = 'inbox_users'");
      expect(Number(row.reltuples)).to.equal(500);
    } finally {
      await engine.close();
    }
  });
});
