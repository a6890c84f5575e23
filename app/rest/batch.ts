/**
 * POST /api/messages/batch (SPEC "Batch pushes"): many pushes in one call, one result per item in
 * item order, each item held to the single call's rule: `{"id"}` only once the broker has taken
 * every message of the item; an item refused on its own gets `{"error", "detail"}` and the others
 * go on.
 *
 * The broker work is pipelined: every message goes to the broker at once and the call waits for all
 * confirmations together, so a batch costs about one broker round trip instead of one per item.
 * The one exception keeps order: messages to the same destination (the same user's destination,
 * the same topic or queue) go one after the other, each once the broker has taken the one before,
 * so they arrive in item order as the same pushes made one call after another would.
 *
 * Durable items (a user destination in INBOX_DESTINATIONS) go through the inbox, all of them in one
 * call of the inbox, and answer once it has committed them.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import type { Settings } from '../../config/settings';
import type { OutgoingMessage, PublishReceipt } from '../broker/broker';
import { formatTarget, printable, type MessageTarget } from '../destinations/destination';
import { isServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import {
  batchEnvelope,
  batchItems,
  itemKind,
  type BatchItem,
  type ItemError,
  type ItemKind,
} from './batch-items';
import { principalOf, type Principal } from './passport';
import { refusedOutcome, type PushOutcome } from './push-outcome';
import type { RestPublisher } from './publisher';

/** What an item answers once taken: `{"id"}`, or the inbox's `{"id", "seq", "stored"}`. */
export type ItemAccepted =
  | { id: string; online?: boolean | Record<string, boolean> }
  | { id: string; seq: number | Record<string, number>; stored: true };

export type ItemResult = ItemAccepted | ItemError;

/** The 200 body: one result per item, in item order. */
export interface BatchAnswer {
  results: ItemResult[];
}

/** A durable item as the inbox gets it: its id, its message and the users it is for. */
export interface DurableItem {
  id: string;
  targets: MessageTarget[];
  /** A `users` item: its `seq` is answered per user. */
  many: boolean;
  message: OutgoingMessage;
}

/** The inbox as the batch uses it: which targets are durable, and many items stored at once. */
export interface BatchInbox {
  isDurable(target: MessageTarget): boolean;
  /** One result per item, in order; resolves once the store has committed the accepted ones. */
  push(items: DurableItem[]): Promise<ItemResult[]>;
}

export interface BatchDeps {
  settings: Settings;
  publisher: RestPublisher;
  inbox: BatchInbox;
  metrics: Metrics;
  logger: Logger;
}

function errorResult(err: unknown): ItemError {
  if (isServiceError(err) && err.code !== 'internal') return { error: err.code, detail: err.message };
  return { error: 'broker_unavailable', detail: 'the broker did not take the message' };
}

/**
 * `{"id"}`, with `online` where the broker could tell: for a `user` item whether a live session got
 * it, for a `users` item the same per user (SPEC, REST section: the single push's answer).
 */
function accepted(id: string, item: BatchItem, receipts: PublishReceipt[]): ItemAccepted {
  if (receipts.some((r) => r.online === undefined)) return { id };
  if (!item.many) return { id, online: receipts[0].online === true };
  const online: Record<string, boolean> = {};
  item.targets.forEach((target, i) => {
    if (target.kind === 'user') online[target.user] = receipts[i].online === true;
  });
  return { id, online };
}

/** The key messages of one batch keep their order under: one per destination a subscriber reads. */
function orderKey(target: MessageTarget): string {
  return target.kind === 'user' ? `${target.user}\n${formatTarget(target)}` : formatTarget(target);
}

type Indexed = { index: number; item: BatchItem };
type Publish = (target: MessageTarget, message: OutgoingMessage) => Promise<PublishReceipt>;

const REST_SOURCE = { source: 'rest' } as const;

/**
 * `publish`, except that a message to a destination an earlier message of the batch goes to waits
 * for that one to be taken (not for it to succeed: a refused one answers its own error and the next
 * still goes), so they arrive in item order. Only destinations the batch names more than once pay
 * for the chain; the others go at once.
 */
function inItemOrder(items: Indexed[], publish: Publish): Publish {
  const uses = new Map<string, number>();
  for (const { item } of items) {
    for (const target of item.targets) {
      const key = orderKey(target);
      uses.set(key, (uses.get(key) ?? 0) + 1);
    }
  }
  if (uses.size === items.reduce((n, { item }) => n + item.targets.length, 0)) return publish;
  const tails = new Map<string, Promise<unknown>>();
  return (target, message) => {
    const key = orderKey(target);
    if (uses.get(key) === 1) return publish(target, message);
    const before = tails.get(key);
    const done =
      before === undefined ? publish(target, message) : before.then(() => publish(target, message));
    tails.set(
      key,
      done.catch(() => undefined),
    );
    return done;
  };
}

/** Publishes every live item at once, one after another only to the same destination. */
async function publishAll(deps: BatchDeps, items: Indexed[], results: ItemResult[]): Promise<void> {
  const { publisher, metrics } = deps;
  const count = items.reduce((n, { item }) => n + item.targets.length, 0);
  await publisher.publishBatch(count, async (brokerPublish) => {
    const publish = inItemOrder(items, brokerPublish);
    const started = performance.now();
    const taken = (id: string, index: number, item: BatchItem, receipts: PublishReceipt[]): void => {
      metrics.publishLatency.observe(REST_SOURCE, (performance.now() - started) / 1000);
      results[index] = accepted(id, item, receipts);
      for (const receipt of receipts) if (receipt.online === false) metrics.pushesOffline.inc();
    };
    const refused = (index: number, err: unknown): void => {
      results[index] = errorResult(err);
    };
    await Promise.all(
      items.map(({ index, item }) => {
        const id = randomUUID();
        const message = { id, ...item.message };
        const receipts =
          item.targets.length === 1
            ? publish(item.targets[0], message).then((receipt) => [receipt])
            : Promise.all(item.targets.map((target) => publish(target, message)));
        return receipts.then(
          (all) => taken(id, index, item, all),
          (err: unknown) => refused(index, err),
        );
      }),
    );
  });
}

/** Stores every durable item in one call of the inbox. */
async function storeAll(inbox: BatchInbox, items: Indexed[], results: ItemResult[]): Promise<void> {
  if (items.length === 0) return;
  const durable = items.map(({ item }): DurableItem => {
    const id = randomUUID();
    return { id, targets: item.targets, many: item.many, message: { id, ...item.message } };
  });
  const stored = await inbox.push(durable).catch((err: unknown) => items.map(() => errorResult(err)));
  items.forEach(({ index }, i) => {
    results[index] = stored[i] ?? errorResult(undefined);
  });
}

/**
 * Counts each item's outcome under its kind, as the single push counts its one: one increment per
 * kind and outcome the batch has, not one per item.
 */
function countOutcomes(
  metrics: Metrics,
  values: unknown[],
  items: (BatchItem | ItemError)[],
  results: ItemResult[],
): void {
  const counts = new Map<string, { kind: ItemKind; outcome: PushOutcome; n: number }>();
  items.forEach((item, index) => {
    const kind = 'error' in item ? itemKind(values[index]) : item.kind;
    const result = results[index];
    const outcome = 'error' in result ? refusedOutcome(result.error) : 'accepted';
    const key = `${kind} ${outcome}`;
    const count = counts.get(key);
    if (count) count.n += 1;
    else counts.set(key, { kind, outcome, n: 1 });
  });
  for (const { kind, outcome, n } of counts.values()) metrics.pushes.inc({ kind, outcome }, n);
}

/**
 * The call itself, for whichever route read the request (the express route below, or the lean one,
 * lean-push.ts): the 200 body for `caller` and the parsed request body, or the ServiceError the
 * call as a whole answers with.
 */
export function batchCall(deps: BatchDeps): (caller: Principal, body: unknown) => Promise<BatchAnswer> {
  const { settings, publisher, inbox, metrics, logger } = deps;
  const limits = { maxMessages: settings.restBatchMax, maxBodyBytes: settings.restBodyLimitBytes };
  return async (caller, body) => {
    publisher.assertAdmitting();
    const values = batchEnvelope(body, limits);
    const items = batchItems(values, caller, limits);
    const results: ItemResult[] = new Array<ItemResult>(items.length);
    const live: Indexed[] = [];
    const durable: Indexed[] = [];
    items.forEach((item, index) => {
      if ('error' in item) results[index] = item;
      else if (item.targets.some((t) => inbox.isDurable(t))) durable.push({ index, item });
      else live.push({ index, item });
    });
    const messages = live.reduce((n, { item }) => n + item.targets.length, 0);
    if (messages > 0) {
      // The call as a whole: nothing is published unless all of it may be.
      publisher.assertReady();
      publisher.assertRoomFor(messages);
    }
    await Promise.all([publishAll(deps, live, results), storeAll(inbox, durable, results)]);
    countOutcomes(metrics, values, items, results);
    if (logger.isLevelEnabled('debug')) {
      const refused = results.filter((r) => 'error' in r).length;
      logger.debug(
        { caller: printable(caller.user), items: items.length, messages, refused },
        'REST batch answered',
      );
    }
    return { results };
  };
}

/** The express route of the batch call: what the lean route leaves to express. */
export function batchHandler(deps: BatchDeps): RequestHandler {
  const call = batchCall(deps);
  return async (req, res) => {
    res.status(200).json(await call(principalOf(req), req.body));
  };
}
