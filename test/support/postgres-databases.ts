/**
 * Databases the inbox tests make on the local PostgreSQL (ensure-postgres.cjs made the role, with
 * CREATEDB): one per use, named `stomp_relay_tmp_<base36 ms>_<hex>` so that a crashed run's are
 * recognised and dropped later, and dropped by the test that made them.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_DATABASE_URL =
  process.env.INBOX_TEST_DATABASE_URL ??
  'postgres://stomp_relay_test:stomp_relay_test@127.0.0.1:5432/stomp_relay_test';

const PREFIX = 'stomp_relay_tmp_';

export function testDatabaseUrl(database: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<string> {
  const name = `${PREFIX}${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE ${name}`));
  return name;
}

export async function dropTestDatabase(name: string): Promise<void> {
  if (!name.startsWith(PREFIX)) throw new Error(`not a test database: ${name}`);
  await withAdmin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

export async function leftTestDatabases(): Promise<string[]> {
  return withAdmin(async (client) => {
    const result = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
      [PREFIX],
    );
    return result.rows.map((row) => row.datname);
  });
}
