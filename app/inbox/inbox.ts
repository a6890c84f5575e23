/**
 * The durable inbox as the rest of the service sees it (SPEC "The inbox: pushes that wait for the
 * user"): which destinations are durable, pushes (commit, then the live publish), the status call,
 * the store that durable subscriptions read (delivery/durable-subscription.ts, through the durable
 * delivery policy), readiness, and the periodic work (outbox catch-up, expiry sweep). As a part
 * (start.ts) it starts after the broker and stops before it.
 *
 * The path of a push: `store.append` commits it (the seq is assigned: the caller may answer 202
 * now), then one live publish to the user's key with `inbox-seq` and `inbox-prev-seq`, then
 * `markPublished`. A publish that fails (RabbitMQ down, a restart in that instant) leaves the
 * message unpublished in the store; the catch-up here republishes it, on whichever instance gets
 * to it first, and subscribers drop what they already sent. So a 202'd push reaches a subscribed
 * device without waiting for the device's next SUBSCRIBE, once the broker is back.
 *
 * Off (BROKER_URL without INBOX_DATABASE_URL): destinations are still recognised as durable, so a
 * push or SUBSCRIBE to one is refused with `inbox_unavailable` instead of going best-effort.
 */
import { randomUUID } from 'node:crypto';

import type { Broker, OutgoingMessage } from '../broker/broker';
import type { MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Part } from '../start';
import type { InboxSetup } from './create-inbox';
import type { InboxDeliveryMetrics } from './delivery-metrics';
import type { InboxStore, MessageStatus, Readiness, UnpublishedMessage, UserSeq } from './store';

/** Headers a durable message carries across the broker; `inbox-seq` also reaches clients. */
export const SEQ_HEADER = 'inbox-seq';
export const PREV_SEQ_HEADER = 'inbox-prev-seq';
/** Set on a catch-up republish: the subscriber checks the store instead of trusting its position. */
export const REPUBLISHED_HEADER = 'inbox-republished';

/** One push for one user (a batch `users` item is one per user, with the same id). */
export interface InboxPushItem {
  user: string;
  /** As the client subscribes to it: `/user/queue/inbox`. */
  destination: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Made here when absent. */
  id?: string;
  idempotencyKey?: string;
}

/** `online`: what the broker said of the live copy (a session of the user was there); absent when it was not published now. */
export type InboxPushStored = { ok: true; id: string; seq: number; duplicate: boolean; online?: boolean };
export type InboxPushResult = InboxPushStored | { ok: false; error: ServiceError };

/** A committed message on its way to the broker; `result` is the push's answer, to add `online` to. */
interface Live {
  user: string;
  destination: string;
  message: OutgoingMessage;
  seq: number;
  result?: InboxPushStored;
}

/** What the live copy of a stored message carries: its headers, and where it stands (seq, prev-seq). */
function live(
  user: string,
  stored: Pick<UnpublishedMessage, 'id' | 'destination' | 'headers' | 'body' | 'seq' | 'prevSeq'>,
  extra: Record<string, string> = {},
): Live {
  return {
    user,
    destination: stored.destination,
    seq: stored.seq,
    message: {
      id: stored.id,
      headers: {
        ...stored.headers,
        [SEQ_HEADER]: String(stored.seq),
        [PREV_SEQ_HEADER]: String(stored.prevSeq),
        ...extra,
      },
      body: stored.body,
    },
  };
}

export interface InboxOptions {
  setup: InboxSetup;
  broker: Broker;
  logger: Logger;
  metrics: InboxDeliveryMetrics;
  sweepIntervalMs: number;
  /** How often unpublished messages are looked for. */
  catchUpIntervalMs: number;
  /** A message is republished once it has been unpublished this long after its commit (INBOX_CATCH_UP_MS). */
  catchUpAfterMs: number;
}

const CATCH_UP_BATCH = 500;

/** `/user/queue/inbox` of `user` as a broker target. */
export function durableTarget(user: string, destination: string): Extract<MessageTarget, { kind: 'user' }> {
  const match = /^\/user\/(queue|topic)\/(.+)$/.exec(destination);
  if (!match) throw new ServiceError('bad_destination', `'${destination}' is not a user destination`);
  return { kind: 'user', user, type: match[1] as 'queue' | 'topic', name: match[2] };
}

export class Inbox implements Part {
  readonly name = 'inbox';
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private catchUpRunning = false;
  private sweepRunning = false;

  constructor(private readonly options: InboxOptions) {}

  get enabled(): boolean {
    return this.options.setup.enabled;
  }

  /** The store, or the reason there is none (`inbox_unavailable`). */
  get store(): InboxStore {
    const { setup } = this.options;
    if (!setup.enabled) throw setup.error;
    return setup.store;
  }

  get metrics(): InboxDeliveryMetrics {
    return this.options.metrics;
  }

  get logger(): Logger {
    return this.options.logger;
  }

  /** What the first log lines say about the inbox. */
  describe(): string {
    const { setup } = this.options;
    return setup.enabled ? `inbox: ${setup.description}` : setup.reason;
  }

  /** Whether pushes to `destination` (as subscribed: `/user/queue/inbox`) are kept; true while off too. */
  isDurable(destination: string): boolean {
    return this.options.setup.destinations.isDurable(destination);
  }

  /** For /readyz: `off` when there is no inbox, else the store's last outcome. */
  readiness(): Readiness | { ready: 'off'; reason: string } {
    const { setup } = this.options;
    return setup.enabled ? setup.store.readiness() : { ready: 'off', reason: setup.reason };
  }

  async start(): Promise<void> {
    const { setup, logger } = this.options;
    if (!setup.enabled) return;
    try {
      await setup.store.start();
    } catch (err: unknown) {
      // Non-durable traffic must not wait for PostgreSQL: the store reconnects on its next call.
      logger.warn({ err }, 'inbox: store not reachable at start; durable pushes answer 503 until it is');
    }
    this.options.metrics.watch(setup.store);
    const every = (ms: number, work: () => Promise<void>): void => {
      const timer = setInterval(() => void work(), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.options.catchUpIntervalMs, async () => {
      await this.catchUp();
    });
    every(this.options.sweepIntervalMs, () => this.sweep());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    if (this.options.setup.enabled) await this.options.setup.store.stop();
  }

  /**
   * Stores the items in one commit and publishes each new one live. Per item in item order;
   * rejects (`inbox_unavailable`) only when nothing could be stored.
   */
  async push(items: InboxPushItem[]): Promise<InboxPushResult[]> {
    const { setup } = this.options;
    if (!setup.enabled) return items.map(() => ({ ok: false, error: setup.error }));
    const appends = items.map((item) => ({
      user: item.user,
      id: item.id ?? randomUUID(),
      destination: item.destination,
      headers: item.headers,
      body: item.body,
      idempotencyKey: item.idempotencyKey,
    }));
    const outcomes = await setup.store.append(appends);
    const results: InboxPushResult[] = [];
    const fresh: Live[] = [];
    outcomes.forEach((outcome, index) => {
      if (!outcome.ok) {
        results.push(outcome);
        return;
      }
      const { push } = outcome;
      const result: InboxPushStored = { ok: true, id: push.id, seq: push.seq, duplicate: push.duplicate };
      results.push(result);
      if (push.duplicate) return;
      const item = appends[index];
      fresh.push({
        ...live(item.user, { ...item, id: push.id, seq: push.seq, prevSeq: push.prevSeq }),
        result,
      });
    });
    this.options.metrics.stored.inc(fresh.length);
    await this.publish(fresh);
    return results;
  }

  async status(user: string, id: string): Promise<MessageStatus | undefined> {
    return this.store.status(user, id);
  }

  /** Live publishes of committed messages; what the broker took is marked published. */
  private async publish(messages: Live[]): Promise<void> {
    if (messages.length === 0) return;
    const { broker, logger } = this.options;
    if (!broker.readiness().ready) return; // the catch-up publishes them once it is back
    const taken: UserSeq[] = [];
    await Promise.all(
      messages.map(async ({ user, destination, message, seq, result }) => {
        try {
          const receipt = await broker.publish(durableTarget(user, destination), message);
          if (result && receipt.online !== undefined) result.online = receipt.online;
          taken.push({ user, seq });
        } catch (err: unknown) {
          logger.debug(
            { err, user, seq },
            'inbox: live publish failed after commit; the catch-up will retry',
          );
        }
      }),
    );
    if (taken.length === 0) return;
    await this.store.markPublished(taken).catch((err: unknown) => {
      // Unmarked means republished later: harmless, subscribers drop seqs they already sent.
      logger.debug({ err }, 'inbox: marking publishes failed');
    });
  }

  /** The outbox catch-up: republishes committed messages whose live publish never happened. */
  async catchUp(): Promise<number> {
    const { setup, broker, logger } = this.options;
    if (!setup.enabled || this.stopped || this.catchUpRunning || !broker.readiness().ready) return 0;
    this.catchUpRunning = true;
    try {
      const due = await setup.store.claimUnpublished({
        olderThanMs: this.options.catchUpAfterMs,
        limit: CATCH_UP_BATCH,
      });
      if (due.length === 0) return 0;
      // In seq order per user, one at a time per user: subscribers then mostly see them in order.
      await this.publish(due.map((message) => this.republished(message)));
      this.options.metrics.republished.inc(due.length);
      logger.info({ count: due.length }, 'inbox: republished messages whose live publish had failed');
      return due.length;
    } catch (err: unknown) {
      logger.debug({ err }, 'inbox: catch-up failed; trying again later');
      return 0;
    } finally {
      this.catchUpRunning = false;
    }
  }

  private republished(message: UnpublishedMessage): Live {
    return live(message.user, message, { [REPUBLISHED_HEADER]: 'true' });
  }

  /** One expiry sweep, repeated while it hit its bound (bounded in rounds too). */
  async sweep(): Promise<void> {
    const { setup, logger } = this.options;
    if (!setup.enabled || this.stopped || this.sweepRunning) return;
    this.sweepRunning = true;
    try {
      for (let round = 0; round < 10 && !this.stopped; round++) {
        const result = await setup.store.expire();
        if (!result.more) break;
      }
    } catch (err: unknown) {
      logger.debug({ err }, 'inbox: sweep failed; trying again at the next interval');
    } finally {
      this.sweepRunning = false;
    }
  }
}
