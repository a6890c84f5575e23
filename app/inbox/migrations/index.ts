/**
 * Versioned schema changes, applied in order at start by every instance. Each runs with its version
 * row in one transaction, under a transaction-scoped advisory lock, so two instances starting at
 * once against an empty database do not both create the tables: the second waits, then finds the
 * versions applied and does nothing. A migration is never edited once released; changes are a new
 * file with the next version.
 */
import type { Queryable, SqlEngine } from '../engine';
import { int } from '../engine';
import * as initial from './001-initial';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [initial];

/** Any constant works; this one is "inbox" in ASCII, so a DBA reading pg_locks can tell whose it is. */
const MIGRATION_LOCK = 0x696e626f78;

async function appliedVersions(tx: Queryable): Promise<Set<number>> {
  await tx.query(`CREATE TABLE IF NOT EXISTS inbox_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const rows = await tx.query('SELECT version FROM inbox_schema_migrations');
  return new Set(rows.map((row) => int(row.version)));
}

/** Applies what is missing; resolves with the versions it applied (empty: the schema was current). */
export async function migrate(engine: SqlEngine, migrations = MIGRATIONS): Promise<number[]> {
  return engine.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    const applied = await appliedVersions(tx);
    const done: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO inbox_schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      done.push(migration.version);
    }
    return done;
  });
}
