/**
 * The durable per-user inbox (SPEC "The inbox: pushes that wait for the user"): what the delivery
 * path, the REST routes and the metrics ask of it, whatever engine keeps it. Implementations:
 * sql-store.ts on PostgreSQL (postgres.ts) and on embedded PGlite (pglite.ts), both running the
 * statements of statements.ts; all held to test/support/store-suite.ts.
 *
 * The model:
 * - A message belongs to one user and has a per-user `seq`, strictly increasing in commit order
 *   across every instance writing to the same database, and the push's `id` (the same on every
 *   device). Pushes of one user keep their order; pushes arriving together share one commit
 *   (appends are grouped by the store: callers just call append()).
 * - Each message also carries `prevSeq`, the seq of the user's previous kept message to the same
 *   destination when it was committed (0: none). seq is per user across destinations, and live
 *   publishes from several instances may arrive out of commit order: a subscriber that gets a live
 *   message whose prevSeq is above the last seq it delivered has a gap, and reads (last, seq) first.
 * - The outbox: every stored message starts unpublished. The delivery side calls markPublished()
 *   once the broker confirmed its live publish; a periodic catch-up on any instance republishes
 *   what claimUnpublished() hands it (a commit whose publish failed, an instance that died between
 *   the two). Republishing twice is harmless: subscribers drop seqs they already sent.
 * - A device (`device-id` on CONNECT) becomes known to its user by touchDevice(). Every device gets
 *   every message: a device's progress is its own set of delivered and acknowledged seqs.
 * - A message is `expired` once its expiresAt has passed (INBOX_TTL_S after the push, or at once
 *   when INBOX_MAX_MESSAGES newer ones are kept). Expired messages are never read again, but
 *   status() answers for them for INBOX_TTL_S more; then expire() deletes them, with their
 *   idempotency keys.
 * - `acked` in status(): at least one device has acknowledged the message and so has every device
 *   that was known when it was committed. (A user with no device known at push time would
 *   otherwise show "acked" before anyone saw the message.)
 *
 * Failures are ServiceErrors: `inbox_unavailable` when the database cannot answer within the
 * configured bounds (never a hang; the store recovers on its own once the database is back),
 * `idempotency_conflict` per item, `bad_request` for input the store refuses, `internal` for bugs.
 */
import type { ServiceError } from '../errors';

/** Same shape as the broker's, so /readyz can list both. */
export type Readiness = { ready: true } | { ready: false; reason: string };

export type InboxEngineKind = 'postgres' | 'pglite' | 'memory';

/** One push to store for one user. */
export interface InboxAppend {
  user: string;
  /** The push's id (made by whoever accepted it); unique per user. */
  id: string;
  /** As the client subscribes to it: `/user/queue/inbox`, `/user/queue/inbox.orders`. */
  destination: string;
  /** Application headers, as they go out on MESSAGE frames. */
  headers: Record<string, string>;
  body: Buffer;
  /** Idempotency-Key of the request; unique per user while its message is kept. */
  idempotencyKey?: string;
}

/** What a committed append answers (the 202 body's `id` and `seq`). */
export interface StoredPush {
  id: string;
  seq: number;
  /** The user's previous kept seq on the same destination (0: none): goes out with the live publish. */
  prevSeq: number;
  createdAt: Date;
  expiresAt: Date;
  /** true when an earlier push with the same Idempotency-Key and content answered this: nothing new was stored. */
  duplicate: boolean;
}

/** Per item, in the order given: a batch's items succeed or fail alone. */
export type AppendOutcome = { ok: true; push: StoredPush } | { ok: false; error: ServiceError };

export interface InboxMessage {
  id: string;
  seq: number;
  prevSeq: number;
  destination: string;
  headers: Record<string, string>;
  body: Buffer;
  createdAt: Date;
  expiresAt: Date;
  /** This device was sent it before (markDelivered), so the next MESSAGE carries `redelivered: true`. */
  redelivered: boolean;
}

export interface ReadRequest {
  user: string;
  device: string;
  destination: string;
  /**
   * `progress`: what this device has not acknowledged. `since`: every message with a larger seq,
   * acknowledged or not (`inbox-since`; 0 = from the oldest kept).
   */
  from: { progress: true } | { since: number };
  /** Continue after this seq (the last one of the previous page). */
  after?: number;
  /** Only seqs below this one: a gap, up to the live message that revealed it. */
  before?: number;
  /** Page size; default 500, at most 1000. */
  limit?: number;
}

export interface InboxPage {
  /** In seq order; never an expired message. */
  messages: InboxMessage[];
  /** More messages follow: read again with `after` = the last seq here. */
  more: boolean;
}

/** A message the outbox catch-up must publish again. */
export interface UnpublishedMessage extends Omit<InboxMessage, 'redelivered'> {
  user: string;
}

/** One user's message, for markPublished batches. */
export interface UserSeq {
  user: string;
  seq: number;
}

/** One device's progress on one message, for delivered/ack batches. */
export interface DeviceSeq {
  user: string;
  device: string;
  seq: number;
}

export type MessageState = 'pending' | 'acked' | 'expired';
export type DeviceState = 'pending' | 'delivered' | 'acked';

/** GET /api/users/{user}/messages/{id}, as SPEC names it; the REST layer formats the dates (ISO 8601 UTC). */
export interface MessageStatus {
  id: string;
  seq: number;
  destination: string;
  createdAt: Date;
  expiresAt: Date;
  state: MessageState;
  devices: Record<string, DeviceState>;
}

export interface DeviceTouch {
  /** First time this user's device was seen. */
  isNew: boolean;
  /** The user's highest seq when the device became known: messages above it count it for `acked`. */
  knownAfterSeq: number;
}

export interface SweepResult {
  /** Messages that expired by TTL since the last sweep (counted once across instances). */
  expired: number;
  /** Expired messages deleted after their INBOX_TTL_S of status readability, with their keys. */
  deleted: number;
  /** Devices not seen for twice INBOX_TTL_S, forgotten with their progress. */
  devicesForgotten: number;
  /** The run stopped at its bound: run again soon. */
  more: boolean;
}

export type Backlog = Record<MessageState, number>;

export type StoreOperation =
  'append' | 'read' | 'published' | 'claim' | 'delivered' | 'ack' | 'status' | 'device' | 'sweep' | 'backlog';

/** How the store reports to /metrics (app/inbox/metrics.ts makes one on a prom-client registry). */
export interface StoreObserver {
  /** Every database round of an operation: how long, and whether it failed. */
  operation(operation: StoreOperation, seconds: number, ok: boolean): void;
  /** Messages that became expired: by TTL (the sweep) or by INBOX_MAX_MESSAGES (at append). */
  expired(reason: 'ttl' | 'limit', count: number): void;
}

export interface InboxStore {
  readonly kind: InboxEngineKind;
  /**
   * Connects and applies migrations. With PostgreSQL down it rejects with `inbox_unavailable` and
   * the store keeps trying on the next call; the embedded store only starts on first use.
   */
  start(): Promise<void>;
  /** Finishes or rejects what is queued, closes connections. Idempotent. */
  stop(): Promise<void>;
  /** What /readyz says about the store: the outcome of its last database round. */
  readiness(): Readiness;

  /**
   * Stores pushes. Items of one call share one commit (with whatever else is queued); seqs follow
   * the item order per user. Rejects only when nothing could be stored (`inbox_unavailable`).
   */
  append(items: InboxAppend[]): Promise<AppendOutcome[]>;
  /** The outbox: the broker took these live publishes (batched with concurrent calls). */
  markPublished(entries: UserSeq[]): Promise<void>;
  /**
   * The outbox catch-up: up to `limit` kept messages still unpublished `olderThanMs` after their
   * commit (or their last claim). Claimed ones are not handed out again for `olderThanMs`, to any
   * instance; whatever is not marked published by then comes back.
   */
  claimUnpublished(options: { olderThanMs: number; limit: number }): Promise<UnpublishedMessage[]>;
  /** Makes the device known to its user (on CONNECT); returns whether it is new. */
  touchDevice(user: string, device: string): Promise<DeviceTouch>;
  read(request: ReadRequest): Promise<InboxPage>;
  /** Records that these were sent to the devices (before writing them out, so a crash errs on `redelivered`). */
  markDelivered(entries: DeviceSeq[]): Promise<void>;
  /** Acknowledges for the devices; acks of unknown or already deleted seqs are ignored. NACK is no call. */
  ack(entries: DeviceSeq[]): Promise<void>;
  /** undefined: no message `id` of `user` in the inbox (404). */
  status(user: string, id: string): Promise<MessageStatus | undefined>;
  /** One bounded sweep: TTL expiry, deletion after readability, idle devices. Run it periodically. */
  expire(options?: { limit?: number }): Promise<SweepResult>;
  /** Messages kept, by state (a full count: for /metrics, not per request). */
  backlog(): Promise<Backlog>;
}
