/**
 * The only thing that differs between PostgreSQL and PGlite: how to connect, run one statement and
 * run a transaction. Everything above (statements.ts, sql-store.ts) is the same code on both.
 *
 * Values cross this seam in one shape: parameters are strings, numbers, booleans, Dates and arrays
 * of those (bodies as base64 text, both ways); rows come back as the driver parses them and are
 * normalised by `int`, `base64`, `date` and `text`.
 */
import { ServiceError } from '../errors';

export type SqlValue =
  string | number | boolean | Date | null | readonly (string | number | boolean | null)[];
export type Row = Record<string, unknown>;

export interface Queryable {
  /** One statement, with $1.. parameters. */
  query(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** A script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export interface SqlEngine extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction: COMMIT when it resolves, ROLLBACK when it rejects. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Housekeeping the database does not do by itself (PGlite has no autovacuum); run now and then. */
  maintain?(): Promise<void>;
  close(): Promise<void>;
}

/** int8 arrives as a string from pg and as a number from PGlite; seqs stay far below 2^53. */
export function int(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' || typeof value === 'bigint') return Number(value);
  throw new Error(`expected an integer column, got ${typeof value}`);
}

/** A body, selected as encode(body, 'base64'). */
export function base64(value: unknown): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  throw new Error(`expected a base64 text column, got ${typeof value}`);
}

export function date(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'string') return new Date(value);
  throw new Error(`expected a timestamptz column, got ${typeof value}`);
}

export function text(value: unknown): string {
  if (typeof value === 'string') return value;
  throw new Error(`expected a text column, got ${typeof value}`);
}

/** SQLSTATEs worth one more try of the whole transaction: another transaction won a lock race. */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === '40P01' || code === '40001';
}

function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * SQLSTATE classes that mean "the database cannot serve us now", as opposed to a statement the
 * database refused (a bug here): 08 connection, 53 resources, 57 operator intervention (shutdown,
 * statement timeout), 58 system error, 40 transaction rollback (after our retries).
 */
const UNAVAILABLE_CLASSES = new Set(['08', '53', '57', '58', '40']);

/**
 * What the engines throw for a driver failure without a SQLSTATE (refused, reset, connect or query
 * timeout, a closed embedded database): the database did not answer, whatever the statement was.
 */
export function unreachable(err: unknown): unknown {
  if (err instanceof ServiceError || sqlState(err) !== undefined) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new ServiceError('inbox_unavailable', `the inbox store is unavailable: ${reason}`, { cause: err });
}

/**
 * Maps what an operation threw to a ServiceError: ServiceErrors (the engines' `unreachable`, the
 * store's own) pass; a SQLSTATE is unavailable or a refused statement; anything else is a bug here.
 */
export function storeError(err: unknown, what: string): ServiceError {
  if (err instanceof ServiceError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  const code = sqlState(err);
  if (code !== undefined && UNAVAILABLE_CLASSES.has(code.slice(0, 2))) {
    return new ServiceError('inbox_unavailable', `the inbox store is unavailable (${what}: ${reason})`, {
      cause: err,
    });
  }
  const state = code === undefined ? '' : ` (SQLSTATE ${code})`;
  return new ServiceError('internal', `inbox store ${what} failed: ${reason}${state}`, { cause: err });
}
