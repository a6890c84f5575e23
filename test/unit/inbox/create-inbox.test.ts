import { expect } from 'chai';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError, loadConfig } from '../../../app/config';
import { createInbox } from '../../../app/inbox/create-inbox';
import { DurableDestinations } from '../../../app/inbox/durable-destinations';
import { parseDeviceId } from '../../../app/inbox/validate';
import { silentLogger } from '../../../app/observability/logger';

const deps = { logger: silentLogger };

describe('inbox settings and engine choice', () => {
  it('has the documented defaults', () => {
    const s = loadConfig({});
    expect(s.inboxDestinations).to.deep.equal(['/user/queue/inbox', '/user/queue/inbox.**']);
    expect(s.inboxMaxMessages).to.equal(1000);
    expect(s.inboxTtlS).to.equal(604_800);
    expect(s.inboxDatabaseUrl).to.equal('');
  });

  it('uses PostgreSQL when INBOX_DATABASE_URL is set, with or without BROKER_URL', async () => {
    for (const env of [{}, { BROKER_URL: 'stomp://guest:guest@127.0.0.1:61613' }]) {
      const setup = createInbox(
        loadConfig({ ...env, INBOX_DATABASE_URL: 'postgres://u:p@db.example:5432/inbox' }),
        deps,
      );
      expect(setup.enabled).to.equal(true);
      if (!setup.enabled) continue;
      expect(setup.store.kind).to.equal('postgres');
      expect(setup.description).to.equal('PostgreSQL at db.example:5432/inbox');
      expect(setup.description, 'no password in logs').to.not.include('p@');
      await setup.store.stop();
    }
  });

  it('uses the in-memory store with the embedded broker and no INBOX_DATA_DIR', async () => {
    const setup = createInbox(loadConfig({}), deps);
    expect(setup.enabled).to.equal(true);
    if (!setup.enabled) return;
    expect(setup.store.kind).to.equal('memory');
    expect(setup.description).to.equal('embedded, in memory (lost at exit; INBOX_DATA_DIR keeps it)');
    await setup.store.stop();
  });

  it('uses PGlite in INBOX_DATA_DIR with the embedded broker, opened only on first use', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'inbox-lazy-'));
    try {
      const setup = createInbox(loadConfig({ INBOX_DATA_DIR: dataDir }), deps);
      expect(setup.enabled).to.equal(true);
      if (!setup.enabled) return;
      expect(setup.store.kind).to.equal('pglite');
      expect(setup.description).to.equal(`embedded PGlite in ${dataDir}, opened on first use`);
      await setup.store.start();
      expect(await setup.store.backlog()).to.deep.equal({ pending: 0, acked: 0, expired: 0 });
      expect(await setup.store.expire()).to.deep.include({ expired: 0, more: false });
      expect(await setup.store.claimUnpublished({ olderThanMs: 0, limit: 10 })).to.deep.equal([]);
      expect(readdirSync(dataDir), 'nothing opened yet').to.deep.equal([]);
      await setup.store.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is off, with a reason and an inbox_unavailable error, with BROKER_URL and no INBOX_DATABASE_URL', () => {
    const setup = createInbox(loadConfig({ BROKER_URL: 'stomp://guest:guest@127.0.0.1:61613' }), deps);
    expect(setup.enabled).to.equal(false);
    if (setup.enabled) return;
    expect(setup.reason).to.match(/inbox is off.*BROKER_URL.*INBOX_DATABASE_URL/);
    expect(setup.error.code).to.equal('inbox_unavailable');
    expect(setup.error.message).to.equal(setup.reason);
    expect(setup.destinations.isDurable('/user/queue/inbox'), 'still knows which are durable').to.equal(true);
  });

  for (const [env, setting] of [
    [{ INBOX_DATABASE_URL: 'mysql://x' }, /INBOX_DATABASE_URL/],
    [{ INBOX_MAX_MESSAGES: '0' }, /INBOX_MAX_MESSAGES/],
    [{ INBOX_TTL_S: 'week' }, /INBOX_TTL_S/],
  ] as const) {
    it(`refuses ${Object.entries(env)[0].join('=')} at load`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, setting);
    });
  }

  for (const [env, setting] of [
    [{ INBOX_DESTINATIONS: '/topic/prices' }, /INBOX_DESTINATIONS.*not a user destination/],
    [{ INBOX_DESTINATIONS: ' , ' }, /INBOX_DESTINATIONS.*at least one/],
    [{ INBOX_DATABASE_URL: 'postgres://h/db', INBOX_DATA_DIR: '/tmp/x' }, /INBOX_DATA_DIR/],
  ] as const) {
    it(`refuses ${Object.entries(env)
      .map((e) => e.join('='))
      .join(' ')} with one line naming the setting`, () => {
      expect(() => createInbox(loadConfig(env), deps)).to.throw(ConfigError, setting);
    });
  }
});

describe('durable destinations (INBOX_DESTINATIONS)', () => {
  it('matches in the syntax of the authorization rules', () => {
    const durable = new DurableDestinations([
      '/user/queue/inbox',
      '/user/queue/inbox.**',
      '/user/topic/alerts.*',
    ]);
    for (const yes of [
      '/user/queue/inbox',
      '/user/queue/inbox.orders',
      '/user/queue/inbox.a.b',
      '/user/topic/alerts.x',
    ]) {
      expect(durable.isDurable(yes), yes).to.equal(true);
    }
    for (const no of [
      '/user/queue/inboxes',
      '/user/queue/greetings',
      '/user/topic/alerts.x.y',
      '/queue/inbox',
      '/user/topic/inbox',
    ]) {
      expect(durable.isDurable(no), no).to.equal(false);
    }
  });
});

describe('device-id', () => {
  it('is `default` when absent, itself when 1-64 of A-Z a-z 0-9 _ -, refused otherwise', () => {
    expect(parseDeviceId(undefined)).to.equal('default');
    expect(parseDeviceId('Phone_2-b')).to.equal('Phone_2-b');
    for (const bad of ['', ' ', 'a.b', 'x'.repeat(65), 'é'])
      expect(() => parseDeviceId(bad), bad).to.throw(/device-id/);
  });
});
