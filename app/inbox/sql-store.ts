/**
 * The InboxStore on SQL, identical on PostgreSQL and PGlite: the engine (engine.ts) is the only
 * difference. Appends, deliveries and acks go through Batchers, so concurrent callers share commits.
 *
 * Every database round is timed for the observer, sets readiness, and maps failures to
 * ServiceErrors; a lost lock race (deadlock, serialization) is retried a couple of times first.
 * Nothing waits unbounded: the engines bound connecting and every statement, and the batchers
 * bound what queues behind them.
 *
 * The engine and the schema are brought up on first need (start() or the first call) and again
 * after a failure, so a store created while the database is down works once it is back.
 */
import type { Logger } from '../observability/logger';
import { ServiceError } from '../errors';
import { appendRound } from './append';
import { Batcher } from './batcher';
import { base64, date, int, isRetryable, storeError, text, type Row, type SqlEngine } from './engine';
import { migrate } from './migrations';
import * as sql from './statements';
import type {
  AppendOutcome,
  Backlog,
  DeviceSeq,
  DeviceState,
  DeviceTouch,
  InboxAppend,
  InboxMessage,
  InboxPage,
  InboxStore,
  MessageState,
  MessageStatus,
  Readiness,
  ReadRequest,
  StoreObserver,
  StoreOperation,
  SweepResult,
  UnpublishedMessage,
  UserSeq,
} from './store';
import { checkAppend, checkDevice, checkDeviceSeq, checkRead, checkUser, checkUserSeq } from './validate';

export interface InboxLimits {
  /** INBOX_MAX_MESSAGES: messages kept per user. */
  maxMessages: number;
  /** INBOX_TTL_S: life of a message, and how long status() answers after it expired. */
  ttlS: number;
}

export interface SqlStoreOptions {
  /** Makes the engine; called on first need, and again if it failed. */
  connect: () => Promise<SqlEngine>;
  kind: 'postgres' | 'pglite';
  /** start() leaves the engine alone: it comes up on the first call (the embedded store). */
  lazy?: boolean;
  limits: InboxLimits;
  logger: Logger;
  observer?: StoreObserver;
  /** Milliseconds since the epoch; tests move it to expire messages. */
  clock?: () => number;
  /** Most items in one round (one commit). */
  maxBatch?: number;
  /** Most items waiting for a round, per kind of call, before calls are refused. */
  maxQueued?: number;
}

const ATTEMPTS = 3;
/** How often expire() also runs the engine's housekeeping (real time: tests move only the store's clock). */
const MAINTAIN_EVERY_MS = 10 * 60 * 1000;
const SWEEP_LIMIT = 1000;
const NO_OBSERVER: StoreObserver = { operation: () => undefined, expired: () => undefined };

const byProgressKey = (a: DeviceSeq, b: DeviceSeq): number =>
  a.user < b.user
    ? -1
    : a.user > b.user
      ? 1
      : a.seq - b.seq || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0);

/** One row per (user, seq, device), in lock order: ON CONFLICT may touch a row once per statement. */
function progressParams(entries: DeviceSeq[]): [string[], number[], string[]] {
  const seen = new Set<string>();
  const unique = [...entries].sort(byProgressKey).filter((entry) => {
    const key = `${entry.user}\0${entry.seq}\0${entry.device}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return [unique.map((e) => e.user), unique.map((e) => e.seq), unique.map((e) => e.device)];
}

function messageOf(row: Row): Omit<InboxMessage, 'redelivered'> {
  return {
    id: text(row.id),
    seq: int(row.seq),
    prevSeq: int(row.prev_seq),
    destination: text(row.destination),
    headers: row.headers as Record<string, string>,
    body: base64(row.body),
    createdAt: date(row.created_at),
    expiresAt: date(row.expires_at),
  };
}

const toMessage = (row: Row): InboxMessage => ({ ...messageOf(row), redelivered: row.redelivered === true });

export class SqlInboxStore implements InboxStore {
  readonly kind: 'postgres' | 'pglite';
  private engine?: Promise<SqlEngine>;
  private schema?: Promise<SqlEngine>;
  private lastReadiness: Readiness = { ready: true };
  private stopped = false;
  private lastMaintained = performance.now();
  private readonly clock: () => number;
  private readonly observer: StoreObserver;
  private readonly appends: Batcher<InboxAppend, AppendOutcome>;
  private readonly published: Batcher<UserSeq, undefined>;
  private readonly delivered: Batcher<DeviceSeq, undefined>;
  private readonly acks: Batcher<DeviceSeq, undefined>;

  constructor(private readonly options: SqlStoreOptions) {
    this.kind = options.kind;
    this.clock = options.clock ?? Date.now;
    this.observer = options.observer ?? NO_OBSERVER;
    const maxItems = options.maxBatch ?? 1000;
    const maxQueued = options.maxQueued ?? 20_000;
    this.appends = new Batcher((items) => this.appendNow(items), { maxItems, maxQueued, what: 'pushes' });
    this.published = new Batcher((items) => this.publishedNow(items), {
      maxItems,
      maxQueued,
      what: 'publish confirmations',
    });
    this.delivered = new Batcher((items) => this.progressNow('delivered', sql.MARK_DELIVERED, items), {
      maxItems,
      maxQueued,
      what: 'deliveries',
    });
    this.acks = new Batcher((items) => this.progressNow('ack', sql.ACK, items), {
      maxItems,
      maxQueued,
      what: 'acks',
    });
  }

  async start(): Promise<void> {
    if (!this.options.lazy) await this.ready();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = new ServiceError('inbox_unavailable', 'the inbox store is shut down');
    await Promise.all(
      [this.appends, this.published, this.delivered, this.acks].map((batcher) => batcher.close(closed)),
    );
    const engine = await this.engine?.catch(() => undefined);
    await engine?.close();
  }

  readiness(): Readiness {
    return this.lastReadiness;
  }

  async append(items: InboxAppend[]): Promise<AppendOutcome[]> {
    const outcomes: (AppendOutcome | undefined)[] = [];
    const valid: InboxAppend[] = [];
    for (const item of items) {
      try {
        checkAppend(item);
        outcomes.push(undefined);
        valid.push(item);
      } catch (err: unknown) {
        outcomes.push({ ok: false, error: storeError(err, 'append') });
      }
    }
    const stored = await this.appends.submit(valid);
    let next = 0;
    return outcomes.map((outcome) => outcome ?? stored[next++]);
  }

  async touchDevice(user: string, device: string): Promise<DeviceTouch> {
    checkUser(user);
    checkDevice(device);
    const [row] = await this.round('device', (db) => db.query(sql.TOUCH_DEVICE, [user, device, this.now()]));
    return { isNew: row.inserted === true, knownAfterSeq: int(row.known_after_seq) };
  }

  async read(request: ReadRequest): Promise<InboxPage> {
    const { after, before, limit, since } = checkRead(request);
    const rows = await this.round('read', (db) =>
      db.query(sql.READ_AFTER, [
        request.user,
        request.device,
        request.destination,
        after,
        this.now(),
        since !== undefined,
        limit + 1,
        before,
      ]),
    );
    return { messages: rows.slice(0, limit).map(toMessage), more: rows.length > limit };
  }

  async markPublished(entries: UserSeq[]): Promise<void> {
    entries.forEach(checkUserSeq);
    await this.published.submit(entries);
  }

  async claimUnpublished(options: { olderThanMs: number; limit: number }): Promise<UnpublishedMessage[]> {
    if (this.idle()) return [];
    const now = this.clock();
    const rows = await this.round('claim', (db) =>
      db.query(sql.CLAIM_UNPUBLISHED, [new Date(now), new Date(now - options.olderThanMs), options.limit]),
    );
    return rows
      .map((row) => ({ user: text(row.user_id), ...messageOf(row) }))
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : a.seq - b.seq));
  }

  async markDelivered(entries: DeviceSeq[]): Promise<void> {
    entries.forEach(checkDeviceSeq);
    await this.delivered.submit(entries);
  }

  async ack(entries: DeviceSeq[]): Promise<void> {
    entries.forEach(checkDeviceSeq);
    await this.acks.submit(entries);
  }

  async status(user: string, id: string): Promise<MessageStatus | undefined> {
    const [row] = await this.round('status', (db) => db.query(sql.STATUS, [user, id, this.now()]));
    if (!row) return undefined;
    return {
      id: text(row.id),
      seq: int(row.seq),
      destination: text(row.destination),
      createdAt: date(row.created_at),
      expiresAt: date(row.expires_at),
      state: text(row.state) as MessageState,
      devices: (typeof row.devices === 'string' ? JSON.parse(row.devices) : row.devices) as Record<
        string,
        DeviceState
      >,
    };
  }

  async expire(options: { limit?: number } = {}): Promise<SweepResult> {
    if (this.idle()) return { expired: 0, deleted: 0, devicesForgotten: 0, more: false };
    const limit = options.limit ?? SWEEP_LIMIT;
    const now = this.clock();
    const ttlMs = this.options.limits.ttlS * 1000;
    const count = async (statement: string, before: number): Promise<number> => {
      const [row] = await this.round('sweep', (db) => db.query(statement, [new Date(before), limit]));
      return int(row.n);
    };
    const expired = await count(sql.SWEEP_EXPIRED, now);
    if (expired > 0) this.observer.expired('ttl', expired);
    const deleted = await count(sql.SWEEP_DELETE, now - ttlMs);
    const devicesForgotten = await count(sql.SWEEP_DEVICES, now - 2 * ttlMs);
    if (performance.now() - this.lastMaintained >= MAINTAIN_EVERY_MS) {
      this.lastMaintained = performance.now();
      await this.round('sweep', async (db) => db.maintain?.());
    }
    return {
      expired,
      deleted,
      devicesForgotten,
      more: Math.max(expired, deleted, devicesForgotten) >= limit,
    };
  }

  async backlog(): Promise<Backlog> {
    if (this.idle()) return { pending: 0, acked: 0, expired: 0 };
    const rows = await this.round('backlog', (db) => db.query(sql.BACKLOG, [this.now()]));
    const backlog: Backlog = { pending: 0, acked: 0, expired: 0 };
    for (const row of rows) backlog[text(row.state) as MessageState] = int(row.n);
    return backlog;
  }

  /**
   * A lazy store nobody has used yet holds nothing: periodic work (sweep, catch-up, /metrics)
   * answers from that instead of starting the engine.
   */
  private idle(): boolean {
    return this.options.lazy === true && this.engine === undefined && !this.stopped;
  }

  private now(): Date {
    return new Date(this.clock());
  }

  private async appendNow(items: InboxAppend[]): Promise<AppendOutcome[]> {
    const nowMs = this.clock();
    const context = {
      now: new Date(nowMs),
      expiresAt: new Date(nowMs + this.options.limits.ttlS * 1000),
      maxMessages: this.options.limits.maxMessages,
    };
    const result = await this.round('append', (db) =>
      db.transaction((tx) => appendRound(tx, items, context)),
    );
    if (result.expiredByLimit > 0) this.observer.expired('limit', result.expiredByLimit);
    return result.outcomes;
  }

  private async publishedNow(entries: UserSeq[]): Promise<undefined[]> {
    const sorted = [...entries].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : a.seq - b.seq));
    await this.round('published', (db) =>
      db.query(sql.MARK_PUBLISHED, [sorted.map((e) => e.user), sorted.map((e) => e.seq)]),
    );
    return entries.map(() => undefined);
  }

  private async progressNow(
    operation: StoreOperation,
    statement: string,
    entries: DeviceSeq[],
  ): Promise<undefined[]> {
    const params = progressParams(entries);
    const extra = operation === 'ack' ? [this.now()] : [];
    await this.round(operation, (db) => db.query(statement, [...params, ...extra]));
    return entries.map(() => undefined);
  }

  /** The engine with the schema applied; a failure is forgotten so the next call tries again. */
  private ready(): Promise<SqlEngine> {
    if (this.stopped)
      return Promise.reject(new ServiceError('inbox_unavailable', 'the inbox store is shut down'));
    this.engine ??= this.options.connect().catch((err: unknown) => {
      this.engine = undefined;
      throw err;
    });
    this.schema ??= this.engine
      .then(async (engine) => {
        const applied = await migrate(engine);
        if (applied.length > 0) this.options.logger.info({ versions: applied }, 'inbox: schema migrated');
        return engine;
      })
      .catch((err: unknown) => {
        this.schema = undefined;
        throw err;
      });
    return this.schema;
  }

  private async round<T>(operation: StoreOperation, work: (engine: SqlEngine) => Promise<T>): Promise<T> {
    const started = performance.now();
    let ok = false;
    try {
      const engine = await this.ready();
      for (let attempt = 1; ; attempt++) {
        try {
          const result = await work(engine);
          ok = true;
          this.setReadiness({ ready: true });
          return result;
        } catch (err: unknown) {
          if (attempt >= ATTEMPTS || !isRetryable(err)) throw err;
        }
      }
    } catch (err: unknown) {
      const error = storeError(err, operation);
      if (error.code === 'inbox_unavailable') this.setReadiness({ ready: false, reason: error.message });
      throw error;
    } finally {
      this.observer.operation(operation, (performance.now() - started) / 1000, ok);
    }
  }

  private setReadiness(next: Readiness): void {
    if (next.ready === this.lastReadiness.ready) {
      this.lastReadiness = next;
      return;
    }
    this.lastReadiness = next;
    if (next.ready) this.options.logger.info('inbox: store available again');
    else this.options.logger.warn({ reason: next.reason }, 'inbox: store unavailable');
  }
}
