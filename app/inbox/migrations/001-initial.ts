/**
 * The inbox schema. Tables are prefixed `inbox_` so the store can share a database with others.
 *
 * - inbox_users: one row per user ever pushed to. `last_seq` hands out seqs: appends lock the row
 *   until they commit, so seqs of one user follow commit order on every instance. `cut_seq`: every
 *   seq at or below it has expired by INBOX_MAX_MESSAGES (limit expiry only scans new ground).
 *   Rows stay when messages go, so a seq is never handed out twice.
 * - inbox_messages: the pushes. `prev_seq`: the seq of the user's previous kept message to the same
 *   destination when this one was committed (0: none), so a subscriber sees a gap in what arrives
 *   live. `expired_counted` marks a message whose expiry was counted for /metrics (and whose body
 *   was dropped: it is never delivered again); the sweep sets it for TTL expiry, append for limit
 *   expiry, each row once across instances.
 * - The outbox, in inbox_messages too: `publish_pending` until the broker confirmed the live
 *   publish (or the message expired: nothing left to publish); `publish_at` is when a catch-up may
 *   next claim it, moved forward by each claim so instances do not all republish the same rows.
 * - inbox_devices: devices known to a user; `known_after_seq` is the user's last seq when the
 *   device appeared, so "devices known when it was pushed" is `known_after_seq < seq`.
 * - inbox_deliveries: a device's progress on a message, created when it was first sent or acked
 *   (no row: pending). Keyed (user, seq, device): replay looks up one device's row per message,
 *   status and deletion take all of a message's rows.
 */
export const version = 1;
export const name = 'initial inbox schema';
export const sql = `
CREATE TABLE inbox_users (
  user_id text PRIMARY KEY,
  last_seq bigint NOT NULL DEFAULT 0,
  cut_seq bigint NOT NULL DEFAULT 0
);

CREATE TABLE inbox_messages (
  user_id text NOT NULL,
  seq bigint NOT NULL,
  prev_seq bigint NOT NULL,
  id text NOT NULL,
  destination text NOT NULL,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  idempotency_key text,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  expired_counted boolean NOT NULL DEFAULT false,
  publish_pending boolean NOT NULL DEFAULT true,
  publish_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, seq)
);
CREATE UNIQUE INDEX inbox_messages_user_id ON inbox_messages (user_id, id);
CREATE UNIQUE INDEX inbox_messages_idempotency_key ON inbox_messages (user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX inbox_messages_destination ON inbox_messages (user_id, destination, seq);
CREATE INDEX inbox_messages_expires_at ON inbox_messages (expires_at);
CREATE INDEX inbox_messages_uncounted ON inbox_messages (expires_at) WHERE NOT expired_counted;
CREATE INDEX inbox_messages_outbox ON inbox_messages (publish_at) WHERE publish_pending;

CREATE TABLE inbox_devices (
  user_id text NOT NULL,
  device_id text NOT NULL,
  known_after_seq bigint NOT NULL,
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, device_id)
);
CREATE INDEX inbox_devices_last_seen_at ON inbox_devices (last_seen_at);

CREATE TABLE inbox_deliveries (
  user_id text NOT NULL,
  seq bigint NOT NULL,
  device_id text NOT NULL,
  sent integer NOT NULL DEFAULT 0,
  acked_at timestamptz,
  PRIMARY KEY (user_id, seq, device_id)
);
`;
