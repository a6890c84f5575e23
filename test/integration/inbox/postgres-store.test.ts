/**
 * The store suite on PostgreSQL (the local 15, role and database from ensure-postgres), with
 * several stores on one database as several instances would be; then what only a networked
 * database has: outages. A database that refuses connections or stops answering gives
 * `inbox_unavailable` within the configured bounds, never a hang, and the store recovers by itself
 * once the database answers again. (A real PostgreSQL restart is for the fault tests, under the
 * exclusive lock.) Every database made here is dropped; the suite checks none is left.
 */
import { expect } from 'chai';

import { PostgresEngine } from '../../../app/inbox/postgres';
import { SqlInboxStore } from '../../../app/inbox/sql-store';
import { silentLogger } from '../../../app/observability/logger';
import { expectServiceError } from '../../support/broker-harness';
import {
  createTestDatabase,
  dropTestDatabase,
  testDatabaseUrl,
  TEST_DATABASE_URL,
} from '../../support/postgres-databases';
import { DEFAULT_LIMITS, postgresFixture } from '../../support/store-fixtures';
import { item, pending, push, user } from '../../support/store-harness';
import { storeSuite } from '../../support/store-suite';
import { TcpProxy } from '../../support/tcp-proxy';

storeSuite(postgresFixture());

const CONNECT_TIMEOUT_MS = 500;
const STATEMENT_TIMEOUT_MS = 1000;
/** Longest any call may take while the database is out: connect bound + statement bound + slack. */
const OUTAGE_BOUND_MS = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS * 2 + 1000;

function storeAt(url: string): SqlInboxStore {
  const engine = new PostgresEngine({
    url,
    poolSize: 2,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    statementTimeoutMs: STATEMENT_TIMEOUT_MS,
    applicationName: 'stomp-relay outage test',
    logger: silentLogger,
  });
  return new SqlInboxStore({
    kind: 'postgres',
    connect: async () => engine,
    limits: DEFAULT_LIMITS,
    logger: silentLogger,
  });
}

/** Rejects with the call's error and how long it took; fails the test if it took longer than `bound`. */
async function bounded(call: Promise<unknown>, bound = OUTAGE_BOUND_MS): Promise<void> {
  const started = Date.now();
  await expectServiceError(call, 'inbox_unavailable');
  expect(Date.now() - started, 'answered within the bound, not hung').to.be.below(bound);
}

describe('inbox store: PostgreSQL outages', function () {
  this.timeout(30_000);
  let database: string;
  const proxy = new TcpProxy(
    new URL(TEST_DATABASE_URL).hostname,
    Number(new URL(TEST_DATABASE_URL).port || 5432),
  );
  const stores: SqlInboxStore[] = [];
  const viaProxy = (): SqlInboxStore => {
    const url = new URL(testDatabaseUrl(database));
    url.port = String(proxy.port);
    const store = storeAt(url.toString());
    stores.push(store);
    return store;
  };

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    await dropTestDatabase(database);
  });
  beforeEach(async () => proxy.up());
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.stop();
    await proxy.down();
  });

  it('answers inbox_unavailable at once where nothing listens, and says so in readiness()', async function () {
    await proxy.up();
    await proxy.down(); // a port where nothing listens
    const store = viaProxy();
    await bounded(store.start());
    await bounded(store.append([item(user(), 'm1')]));
    await bounded(
      store.read({ user: user(), device: 'd', destination: '/user/queue/inbox', from: { progress: true } }),
    );
    const readiness = store.readiness();
    expect(readiness.ready).to.equal(false);
    if (!readiness.ready) expect(readiness.reason).to.match(/unavailable/);
  });

  it('answers inbox_unavailable within the bounds when the database stops answering mid-way', async function () {
    const store = viaProxy();
    await store.start();
    const to = user();
    await push(store, to, 'm1');
    await proxy.hang();
    await bounded(store.append([item(to, 'm2')]));
    await bounded(store.ack([{ user: to, device: 'd', seq: 1 }]));
    await bounded(store.status(to, 'm1'));
  });

  it('recovers without a restart once the database is back, and lost nothing it had answered', async function () {
    const store = viaProxy();
    await store.start();
    const to = user();
    await push(store, to, 'before');
    await proxy.down();
    await bounded(store.append([item(to, 'during')]));
    await proxy.up();
    expect((await push(store, to, 'after')).seq).to.be.oneOf([2, 3]); // 'during' may have committed
    const kept = (await pending(store, to, 'd')).map((m) => m.id);
    expect(kept[0]).to.equal('before');
    expect(kept[kept.length - 1]).to.equal('after');
    expect(store.readiness()).to.deep.equal({ ready: true });
  });

  it('migrates on the first call after starting while the database was down', async function () {
    const fresh = await createTestDatabase();
    try {
      const url = new URL(testDatabaseUrl(fresh));
      url.port = String(proxy.port);
      await proxy.down();
      const store = storeAt(url.toString());
      stores.push(store);
      await bounded(store.start());
      await proxy.up();
      const to = user();
      expect((await push(store, to, 'm1')).seq).to.equal(1);
    } finally {
      for (const store of stores.splice(0)) await store.stop();
      await dropTestDatabase(fresh);
    }
  });
});
