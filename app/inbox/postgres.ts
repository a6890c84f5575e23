/**
 * The PostgreSQL engine, on `pg` (node-postgres): a Pool of INBOX_POOL_SIZE connections. Every wait
 * is bounded, so a database that is down or hung answers `inbox_unavailable` instead of hanging:
 * connectionTimeoutMillis covers waiting for a pooled connection and opening one, statement_timeout
 * is the server's bound and query_timeout the client's (for a server that no longer answers at
 * all). A connection that failed is destroyed, and the Pool opens fresh ones on demand, so the
 * store recovers by itself once PostgreSQL is back.
 *
 * `pg` rather than `postgres` (porsager): both are well kept; the store's statements are a few
 * large unnest() batches per commit, where the driver's per-query cost does not show.
 */
import pg from 'pg';

import type { Logger } from '../observability/logger';
import { unreachable, type Queryable, type Row, type SqlEngine, type SqlValue } from './engine';

export interface PostgresOptions {
  /** INBOX_DATABASE_URL */
  url: string;
  poolSize: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  /** application_name, so pg_stat_activity tells instances apart. */
  applicationName: string;
  logger: Logger;
}

async function run(
  client: pg.Pool | pg.PoolClient,
  sql: string,
  params?: readonly SqlValue[],
): Promise<Row[]> {
  try {
    const result = await client.query<Row>(sql, params as unknown[] | undefined);
    return result.rows;
  } catch (err: unknown) {
    throw unreachable(err);
  }
}

function queryable(client: pg.PoolClient): Queryable {
  return {
    query: (sql, params) => run(client, sql, params),
    exec: async (script) => {
      await run(client, script);
    },
  };
}

export class PostgresEngine implements SqlEngine {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;

  constructor(options: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      statement_timeout: options.statementTimeoutMs,
      query_timeout: options.statementTimeoutMs + options.connectTimeoutMs,
      // A transaction left open by a stuck caller must not hold user locks for long.
      idle_in_transaction_session_timeout: options.statementTimeoutMs * 2,
      application_name: options.applicationName,
      keepAlive: true,
    });
    // Idle connections lost to a PostgreSQL restart emit here; without a listener that is a crash.
    this.pool.on('error', (err) =>
      options.logger.warn({ err: err.message }, 'inbox: idle PostgreSQL connection lost'),
    );
  }

  query(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    return run(this.pool, sql, params);
  }

  async exec(script: string): Promise<void> {
    await run(this.pool, script);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err: unknown) {
      throw unreachable(err);
    }
    const tx = queryable(client);
    let broken: Error | undefined;
    // A checked-out client reports a lost connection as an 'error' event too; unheard, it would crash.
    const onError = (err: Error): void => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await tx.exec('BEGIN');
      const result = await work(tx);
      await tx.exec('COMMIT');
      return result;
    } catch (err: unknown) {
      if (!broken) {
        await tx.exec('ROLLBACK').catch((rollbackError: unknown) => {
          // The connection is gone or confused: the Pool must not hand it out again.
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
      }
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
