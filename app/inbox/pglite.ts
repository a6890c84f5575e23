/**
 * The embedded engine: PGlite (PostgreSQL compiled to WebAssembly) in this process, running the
 * same statements as PostgreSQL. File-backed in INBOX_DATA_DIR when set, in memory otherwise.
 *
 * Created on first use, not at start: a fresh in-memory PGlite runs initdb, which takes seconds and
 * several hundred MB (reopening an existing data directory skips initdb and costs less), while a
 * service whose clients never touch a durable destination should cost nothing for it. The first
 * use says so in the log. PGlite is one connection: its transaction() serialises, which is what
 * a single embedded instance needs.
 */
import type { PGlite } from '@electric-sql/pglite';

import type { Logger } from '../observability/logger';
import { unreachable, type Queryable, type Row, type SqlEngine, type SqlValue } from './engine';

export interface PgliteOptions {
  /** INBOX_DATA_DIR; undefined: in memory, gone when the process ends. */
  dataDir?: string;
  logger: Logger;
}

interface PgliteQueryable {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
}

async function run(db: PgliteQueryable, sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
  try {
    return (await db.query<Row>(sql, params ? [...params] : undefined)).rows;
  } catch (err: unknown) {
    throw unreachable(err);
  }
}

function queryable(db: PgliteQueryable): Queryable {
  return {
    query: (sql, params) => run(db, sql, params),
    exec: async (script) => {
      try {
        await db.exec(script);
      } catch (err: unknown) {
        throw unreachable(err);
      }
    },
  };
}

export class PgliteEngine implements SqlEngine {
  readonly kind = 'pglite';
  private readonly tx: Queryable;

  private constructor(private readonly db: PGlite) {
    this.tx = queryable(db);
  }

  static async open(options: PgliteOptions): Promise<PgliteEngine> {
    const where = options.dataDir
      ? `in ${options.dataDir}`
      : 'in memory (lost at exit; set INBOX_DATA_DIR to keep it)';
    options.logger.info(`inbox: starting the embedded store (PGlite) ${where} on first use`);
    const started = performance.now();
    try {
      // Loaded here too: a service that never uses the inbox does not load PGlite at all.
      const { PGlite } = await import('@electric-sql/pglite');
      const db = await PGlite.create(options.dataDir);
      options.logger.info({ ms: Math.round(performance.now() - started) }, 'inbox: embedded store ready');
      return new PgliteEngine(db);
    } catch (err: unknown) {
      throw unreachable(err);
    }
  }

  query(sql: string, params?: readonly SqlValue[]): Promise<Row[]> {
    return this.tx.query(sql, params);
  }

  exec(script: string): Promise<void> {
    return this.tx.exec(script);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    // Errors of `work` pass as they are; only PGlite's own (BEGIN, COMMIT, closed) are mapped.
    let failed: { err: unknown } | undefined;
    try {
      return await this.db.transaction(async (tx) => {
        try {
          return await work(queryable(tx));
        } catch (err: unknown) {
          failed = { err };
          throw err;
        }
      });
    } catch (err: unknown) {
      throw failed ? failed.err : unreachable(err);
    }
  }

  /** What autovacuum does on a server: reclaim dead rows, refresh the planner's statistics. */
  async maintain(): Promise<void> {
    await this.exec('VACUUM (ANALYZE) inbox_users, inbox_messages, inbox_devices, inbox_deliveries');
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}
