/**
 * The setups every inbox delivery test runs on: the embedded broker with the in-memory store (what
 * `npm start` runs), and RabbitMQ with the local PostgreSQL (what a cluster runs; a fresh database
 * per suite, dropped after). Run files using the second under `testlock -s`.
 */
import type { Settings } from '../../config/settings';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from './postgres-databases';
import { STOMP_URL } from './rabbitmq';

export interface InboxSetup {
  name: string;
  /** Settings for services of this setup (several share one database). */
  settings(): Partial<Settings>;
  before(): Promise<void>;
  after(): Promise<void>;
}

export function embeddedSetup(): InboxSetup {
  return {
    name: 'embedded broker, in-memory store',
    settings: () => ({}),
    before: async () => undefined,
    after: async () => undefined,
  };
}

export function rabbitPostgresSetup(): InboxSetup {
  let database = '';
  return {
    name: 'RabbitMQ and PostgreSQL',
    settings: () => ({ brokerUrl: STOMP_URL, inboxDatabaseUrl: testDatabaseUrl(database) }),
    async before() {
      database = await createTestDatabase();
    },
    async after() {
      if (database) await dropTestDatabase(database);
    },
  };
}

export const INBOX_SETUPS: (() => InboxSetup)[] = [embeddedSetup, rabbitPostgresSetup];
