/**
 * One append round: the transaction that stores a group of pushes (several callers' worth, from
 * the Batcher). In order: lock the users' counters (in user order, held to COMMIT: this is what
 * makes seqs follow commit order across instances), answer Idempotency-Key retries from what is
 * stored, insert the rest with the next seqs, advance the counters, expire what INBOX_MAX_MESSAGES
 * no longer keeps.
 */
import { createHash } from 'node:crypto';

import { ServiceError } from '../errors';
import { date, int, text, type Queryable } from './engine';
import * as sql from './statements';
import type { AppendOutcome, InboxAppend, StoredPush } from './store';

export interface AppendContext {
  now: Date;
  expiresAt: Date;
  maxMessages: number;
}

/** What identifies "the same request" for an Idempotency-Key: destination, headers and body. */
export function fingerprint(item: InboxAppend): string {
  const hash = createHash('sha256');
  hash.update(item.destination).update('\0');
  const headers = Object.keys(item.headers)
    .sort()
    .map((name) => [name, item.headers[name]]);
  hash.update(JSON.stringify(headers)).update('\0');
  hash.update(item.body);
  return hash.digest('hex');
}

interface Stored {
  push: Omit<StoredPush, 'duplicate'>;
  fingerprint: string;
}

const keyOf = (user: string, key: string): string => `${user}\0${key}`;
const streamOf = (user: string, destination: string): string => `${user}\0${destination}`;

/** The newest kept seq per (user, destination) of the batch; read under the users' locks, so it holds to COMMIT. */
async function findLastKept(tx: Queryable, items: InboxAppend[], now: Date): Promise<Map<string, number>> {
  const streams = new Map<string, { user: string; destination: string }>();
  for (const item of items) streams.set(streamOf(item.user, item.destination), item);
  const list = [...streams.values()];
  const rows = await tx.query(sql.LAST_KEPT, [list.map((s) => s.user), list.map((s) => s.destination), now]);
  return new Map(rows.map((row) => [streamOf(text(row.user_id), text(row.destination)), int(row.seq)]));
}

async function findKeys(tx: Queryable, items: InboxAppend[]): Promise<Map<string, Stored>> {
  const keyed = items.filter((item) => item.idempotencyKey !== undefined);
  const found = new Map<string, Stored>();
  if (keyed.length === 0) return found;
  const rows = await tx.query(sql.FIND_KEYS, [
    keyed.map((item) => item.user),
    keyed.map((item) => item.idempotencyKey ?? ''),
  ]);
  for (const row of rows) {
    found.set(keyOf(text(row.user_id), text(row.idempotency_key)), {
      push: {
        id: text(row.id),
        seq: int(row.seq),
        prevSeq: int(row.prev_seq),
        createdAt: date(row.created_at),
        expiresAt: date(row.expires_at),
      },
      fingerprint: text(row.fingerprint),
    });
  }
  return found;
}

function conflict(item: InboxAppend): AppendOutcome {
  return {
    ok: false,
    error: new ServiceError(
      'idempotency_conflict',
      `Idempotency-Key '${item.idempotencyKey}' was used for a different message to ${item.user}`,
    ),
  };
}

export interface AppendRoundResult {
  outcomes: AppendOutcome[];
  expiredByLimit: number;
}

export async function appendRound(
  tx: Queryable,
  items: InboxAppend[],
  context: AppendContext,
): Promise<AppendRoundResult> {
  const users = [...new Set(items.map((item) => item.user))].sort();
  const counters = new Map<string, { last: number; cut: number }>();
  for (const row of await tx.query(sql.LOCK_USERS, [users])) {
    counters.set(text(row.user_id), { last: int(row.last_seq), cut: int(row.cut_seq) });
  }
  const known = await findKeys(tx, items);
  const lastKept = await findLastKept(tx, items, context.now);
  const outcomes: AppendOutcome[] = [];
  const rows: { item: InboxAppend; push: StoredPush; fingerprint: string }[] = [];
  for (const item of items) {
    const print = fingerprint(item);
    const key = item.idempotencyKey === undefined ? undefined : keyOf(item.user, item.idempotencyKey);
    const earlier = key === undefined ? undefined : known.get(key);
    if (earlier) {
      outcomes.push(
        earlier.fingerprint === print
          ? { ok: true, push: { ...earlier.push, duplicate: true } }
          : conflict(item),
      );
      continue;
    }
    const counter = counters.get(item.user);
    if (!counter) throw new Error(`no seq counter locked for user ${item.user}`);
    counter.last += 1;
    const stream = streamOf(item.user, item.destination);
    const prevSeq = lastKept.get(stream) ?? 0;
    lastKept.set(stream, counter.last);
    const push: StoredPush = {
      id: item.id,
      seq: counter.last,
      prevSeq,
      createdAt: context.now,
      expiresAt: context.expiresAt,
      duplicate: false,
    };
    if (key !== undefined) known.set(key, { push, fingerprint: print }); // a repeat within the batch
    rows.push({ item, push, fingerprint: print });
    outcomes.push({ ok: true, push });
  }
  if (rows.length === 0) return { outcomes, expiredByLimit: 0 };
  return { outcomes, expiredByLimit: await write(tx, rows, counters, context) };
}

/**
 * One statement for the rest: the new messages, the users' counters, and INBOX_MAX_MESSAGES
 * expiry of older messages (a CTE cannot see rows inserted by its own statement, so new messages
 * already beyond the limit, in a batch larger than it, are inserted expired instead).
 */
async function write(
  tx: Queryable,
  rows: { item: InboxAppend; push: StoredPush; fingerprint: string }[],
  counters: Map<string, { last: number; cut: number }>,
  context: AppendContext,
): Promise<number> {
  const cuts = [...counters].map(([user, counter]) => ({
    user,
    last: counter.last,
    low: counter.cut,
    high: Math.max(counter.cut, counter.last - context.maxMessages),
  }));
  const highOf = new Map(cuts.map((cut) => [cut.user, cut.high]));
  let expiredNow = 0;
  for (const row of rows) {
    if (row.push.seq > (highOf.get(row.item.user) ?? 0)) continue;
    row.push.expiresAt = context.now;
    expiredNow++;
  }
  const isExpired = (row: { push: StoredPush }): boolean => row.push.expiresAt === context.now;
  const [result] = await tx.query(sql.WRITE_APPEND, [
    rows.map((row) => row.item.user),
    rows.map((row) => row.push.seq),
    rows.map((row) => row.push.prevSeq),
    rows.map((row) => row.item.id),
    rows.map((row) => row.item.destination),
    rows.map((row) => (isExpired(row) ? '{}' : JSON.stringify(row.item.headers))),
    rows.map((row) => (isExpired(row) ? '' : row.item.body.toString('base64'))),
    rows.map((row) => row.item.idempotencyKey ?? null),
    rows.map((row) => row.fingerprint),
    rows.map((row) => isExpired(row)),
    context.now,
    context.expiresAt,
    cuts.map((cut) => cut.user),
    cuts.map((cut) => cut.last),
    cuts.map((cut) => cut.low),
    cuts.map((cut) => cut.high),
  ]);
  return expiredNow + int(result.n);
}
