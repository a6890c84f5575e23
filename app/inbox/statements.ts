/**
 * Every statement the inbox runs, shared by PostgreSQL and PGlite. Batches travel as parallel
 * arrays through unnest(), so a 1,000-item append is one INSERT. Bodies travel as base64 both
 * ways: no driver has to agree on binary arrays, and PGlite's bytea (hex) parsing was the larger
 * part of reading a page. Times are parameters from the
 * store's clock, never now(): tests move the clock, and all instances judge expiry the same way.
 *
 * Lock order, to keep concurrent transactions from deadlocking: user rows in user order (append);
 * delivery rows in (user, seq, device) order (ack, delivered). Both come sorted from the store.
 */

/** Creates missing user rows and locks all of the batch's, in user order; returns their counters. */
export const LOCK_USERS = `
INSERT INTO inbox_users (user_id)
SELECT u FROM unnest($1::text[]) AS u ORDER BY u
ON CONFLICT (user_id) DO UPDATE SET last_seq = inbox_users.last_seq
RETURNING user_id, last_seq, cut_seq`;

/** Earlier pushes holding the batch's Idempotency-Keys (expired ones too: keys live as long as status does). */
export const FIND_KEYS = `
SELECT m.user_id, m.idempotency_key, m.id, m.seq, m.prev_seq, m.fingerprint, m.created_at, m.expires_at
FROM inbox_messages m
JOIN unnest($1::text[], $2::text[]) AS k(user_id, idempotency_key)
  ON m.user_id = k.user_id AND m.idempotency_key = k.idempotency_key`;

/** The newest kept seq of each (user, destination) of the batch, read under the users' locks. */
export const LAST_KEPT = `
SELECT v.user_id, v.destination,
  COALESCE((SELECT m.seq FROM inbox_messages m
            WHERE m.user_id = v.user_id AND m.destination = v.destination AND m.expires_at > $3
            ORDER BY m.seq DESC LIMIT 1), 0) AS seq
FROM unnest($1::text[], $2::text[]) AS v(user_id, destination)`;

/**
 * The write of an append round, in one statement: insert the messages ($10: already expired by
 * INBOX_MAX_MESSAGES, in a batch larger than it), set the users' counters, and expire each
 * user's seqs in (low, high]: seqs of a user have no gaps, so the newest `max` are exactly those
 * above last_seq - max, and cut_seq makes each range new ground. Already expired ones (by TTL,
 * not yet swept) are left for the sweep to count.
 */
export const WRITE_APPEND = `
WITH inserted AS (
  INSERT INTO inbox_messages (user_id, seq, prev_seq, id, destination, headers, body, idempotency_key,
    fingerprint, created_at, expires_at, expired_counted, publish_pending, publish_at)
  SELECT v.user_id, v.seq, v.prev_seq, v.id, v.destination, v.headers::jsonb, decode(v.body, 'base64'),
         v.idempotency_key, v.fingerprint, $11::timestamptz,
         CASE WHEN v.expired THEN $11::timestamptz ELSE $12::timestamptz END,
         v.expired, NOT v.expired, $11::timestamptz
  FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::boolean[])
    AS v(user_id, seq, prev_seq, id, destination, headers, body, idempotency_key, fingerprint, expired)
  RETURNING 1
), counters AS (
  UPDATE inbox_users u SET last_seq = c.last_seq, cut_seq = c.high
  FROM unnest($13::text[], $14::int8[], $15::int8[], $16::int8[]) AS c(user_id, last_seq, low, high)
  WHERE u.user_id = c.user_id
  RETURNING 1
), expired AS (
  UPDATE inbox_messages m
  SET expires_at = $11::timestamptz, expired_counted = true, publish_pending = false, body = ''::bytea,
      headers = '{}'::jsonb
  FROM unnest($13::text[], $15::int8[], $16::int8[]) AS c(user_id, low, high)
  WHERE m.user_id = c.user_id AND m.seq > c.low AND m.seq <= c.high AND m.expires_at > $11::timestamptz
  RETURNING 1
)
SELECT (SELECT count(*) FROM expired) AS n, (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM counters) AS counted`;

/**
 * Seqs in ($4, $8) of one destination. `$6` true: inbox-since, acknowledged ones too; false: only
 * what this device has not acknowledged. The device's progress is looked up per message by its
 * whole key, not joined: a join's plan depends on statistics, and PGlite never gathers any (no
 * autovacuum), where a nested loop over the deliveries turned a 1,000-message replay into seconds.
 */
export const READ_AFTER = `
SELECT m.seq, m.prev_seq, m.id, m.destination, m.headers, encode(m.body, 'base64') AS body,
       m.created_at, m.expires_at,
       EXISTS (SELECT 1 FROM inbox_deliveries d
               WHERE d.user_id = m.user_id AND d.seq = m.seq AND d.device_id = $2 AND d.sent > 0) AS redelivered
FROM inbox_messages m
WHERE m.user_id = $1 AND m.destination = $3 AND m.seq > $4 AND m.seq < $8 AND m.expires_at > $5
  AND ($6::boolean OR NOT EXISTS (
    SELECT 1 FROM inbox_deliveries d
    WHERE d.user_id = m.user_id AND d.seq = m.seq AND d.device_id = $2 AND d.acked_at IS NOT NULL))
ORDER BY m.seq
LIMIT $7`;

/** The outbox: the broker confirmed these live publishes. */
export const MARK_PUBLISHED = `
UPDATE inbox_messages m SET publish_pending = false
FROM unnest($1::text[], $2::int8[]) AS v(user_id, seq)
WHERE m.user_id = v.user_id AND m.seq = v.seq AND m.publish_pending`;

/**
 * The outbox catch-up: kept messages still unpublished whose publish_at is before `$2`, claimed
 * by moving publish_at to `$1` (now): another instance's catch-up skips them (SKIP LOCKED while
 * this runs, publish_at after it) until they are that old again.
 */
export const CLAIM_UNPUBLISHED = `
WITH due AS (
  SELECT user_id, seq FROM inbox_messages
  WHERE publish_pending AND publish_at <= $2 AND expires_at > $1
  ORDER BY publish_at LIMIT $3
  FOR UPDATE SKIP LOCKED
)
UPDATE inbox_messages m SET publish_at = $1
FROM due WHERE m.user_id = due.user_id AND m.seq = due.seq
RETURNING m.user_id, m.seq, m.prev_seq, m.id, m.destination, m.headers, encode(m.body, 'base64') AS body,
  m.created_at, m.expires_at`;

/** Rows only for messages that exist: an ack of a deleted seq leaves nothing behind. */
const PROGRESS_ROWS = `
SELECT v.user_id, v.seq, v.device_id
FROM unnest($1::text[], $2::int8[], $3::text[]) AS v(user_id, seq, device_id)
WHERE EXISTS (SELECT 1 FROM inbox_messages m WHERE m.user_id = v.user_id AND m.seq = v.seq)
ORDER BY v.user_id, v.seq, v.device_id`;

export const MARK_DELIVERED = `
INSERT INTO inbox_deliveries (user_id, seq, device_id, sent)
SELECT p.user_id, p.seq, p.device_id, 1 FROM (${PROGRESS_ROWS}) AS p
ON CONFLICT (user_id, seq, device_id) DO UPDATE SET sent = inbox_deliveries.sent + 1`;

export const ACK = `
INSERT INTO inbox_deliveries (user_id, seq, device_id, acked_at)
SELECT p.user_id, p.seq, p.device_id, $4::timestamptz FROM (${PROGRESS_ROWS}) AS p
ON CONFLICT (user_id, seq, device_id)
DO UPDATE SET acked_at = COALESCE(inbox_deliveries.acked_at, EXCLUDED.acked_at)`;

/** `inserted`: no earlier row (xmax is 0 only on a freshly inserted tuple). */
export const TOUCH_DEVICE = `
INSERT INTO inbox_devices (user_id, device_id, known_after_seq, first_seen_at, last_seen_at)
VALUES ($1, $2, COALESCE((SELECT last_seq FROM inbox_users WHERE user_id = $1), 0), $3, $3)
ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
RETURNING known_after_seq, (xmax::text = '0') AS inserted`;

const acked = (device: string) => `EXISTS (
  SELECT 1 FROM inbox_deliveries a
  WHERE a.user_id = m.user_id AND a.seq = m.seq AND a.acked_at IS NOT NULL${device})`;

/**
 * The one definition of a message's state (status and backlog both use it), at time `now`:
 * expired; else acked when some device acked it and no device known at push time has not; else pending.
 */
function stateOf(now: string): string {
  return `CASE
  WHEN m.expires_at <= ${now} THEN 'expired'
  WHEN ${acked('')} AND NOT EXISTS (
    SELECT 1 FROM inbox_devices dv
    WHERE dv.user_id = m.user_id AND dv.known_after_seq < m.seq
      AND NOT ${acked(' AND a.device_id = dv.device_id')})
  THEN 'acked'
  ELSE 'pending' END`;
}

export const STATUS = `
SELECT m.seq, m.id, m.destination, m.created_at, m.expires_at, ${stateOf('$3')} AS state,
  (SELECT COALESCE(json_object_agg(dv.device_id,
      CASE WHEN d.acked_at IS NOT NULL THEN 'acked' WHEN d.sent > 0 THEN 'delivered' ELSE 'pending' END), '{}')
   FROM inbox_devices dv
   LEFT JOIN inbox_deliveries d ON d.user_id = dv.user_id AND d.seq = m.seq AND d.device_id = dv.device_id
   WHERE dv.user_id = m.user_id) AS devices
FROM inbox_messages m
WHERE m.user_id = $1 AND m.id = $2`;

export const BACKLOG = `
SELECT s.state, count(*) AS n
FROM (SELECT ${stateOf('$1')} AS state FROM inbox_messages m) AS s
GROUP BY s.state`;

/** Counts (once, across instances: SKIP LOCKED and the recheck) and empties messages past their TTL. */
export const SWEEP_EXPIRED = `
WITH due AS (
  SELECT user_id, seq FROM inbox_messages
  WHERE NOT expired_counted AND expires_at <= $1
  ORDER BY expires_at LIMIT $2
  FOR UPDATE SKIP LOCKED
), counted AS (
  UPDATE inbox_messages m
  SET expired_counted = true, publish_pending = false, body = ''::bytea, headers = '{}'::jsonb
  FROM due WHERE m.user_id = due.user_id AND m.seq = due.seq AND NOT m.expired_counted
  RETURNING 1
)
SELECT count(*) AS n FROM counted`;

/** `$1`: now - INBOX_TTL_S. Deletes counted messages whose status time is over, and their progress. */
export const SWEEP_DELETE = `
WITH due AS (
  SELECT user_id, seq FROM inbox_messages
  WHERE expired_counted AND expires_at <= $1
  ORDER BY expires_at LIMIT $2
  FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM inbox_messages m USING due
  WHERE m.user_id = due.user_id AND m.seq = due.seq
  RETURNING m.user_id, m.seq
), progress AS (
  DELETE FROM inbox_deliveries d USING gone WHERE d.user_id = gone.user_id AND d.seq = gone.seq
)
SELECT count(*) AS n FROM gone`;

/** `$1`: the last-seen time before which a device is forgotten. */
export const SWEEP_DEVICES = `
WITH due AS (
  SELECT user_id, device_id FROM inbox_devices
  WHERE last_seen_at < $1
  ORDER BY last_seen_at LIMIT $2
  FOR UPDATE SKIP LOCKED
), gone AS (
  DELETE FROM inbox_devices dv USING due
  WHERE dv.user_id = due.user_id AND dv.device_id = due.device_id
  RETURNING dv.user_id, dv.device_id
), progress AS (
  DELETE FROM inbox_deliveries d USING gone WHERE d.user_id = gone.user_id AND d.device_id = gone.device_id
)
SELECT count(*) AS n FROM gone`;
