/**
 * The REST side of the inbox (SPEC "The inbox: pushes that wait for the user"): a user push to a
 * durable destination, and the status call. A durable push answers 202 `{"id", "seq", "stored":
 * true}` once the store has committed it, whether or not RabbitMQ took the live copy (the outbox
 * catch-up publishes it later); `Idempotency-Key` makes a retry answer the first 202 again.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestHandler } from 'express';

import type { PublishReceipt } from '../broker/broker';
import type { DeliveryPolicies } from '../delivery/policies';
import { ServiceError } from '../errors';
import type { Inbox } from '../inbox/inbox';
import type { MessageStatus } from '../inbox/store';
import type { BatchInbox, ItemResult } from './batch';
import { userName } from './validation';

/** The one header SPEC names for retries; 1-256 printable ASCII characters (an index key). */
export function idempotencyKeyOf(req: { headers: IncomingHttpHeaders }): string | undefined {
  const value = req.headers['idempotency-key'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ServiceError('bad_request', 'Idempotency-Key is given twice');
  if (!/^[\x21-\x7e]{1,256}$/.test(value)) {
    throw new ServiceError(
      'bad_request',
      'Idempotency-Key must be 1-256 printable characters without spaces',
    );
  }
  return value;
}

/** A durable push's 202 body. */
export interface StoredAnswer {
  id: string;
  seq: number;
  stored: true;
  online?: boolean;
}

/**
 * A durable push's 202 body from the durable policy's receipt: `id` the message's, or on an
 * idempotent retry the first push's; `online` when the live copy went out now (SPEC, REST): false
 * means it waits in the inbox.
 */
export function storedAnswer(id: string, receipt: PublishReceipt): StoredAnswer {
  return {
    id: receipt.id ?? id,
    seq: Number(receipt.position),
    stored: true,
    ...(receipt.online === undefined ? {} : { online: receipt.online }),
  };
}

function statusBody(status: MessageStatus): Record<string, unknown> {
  return {
    id: status.id,
    seq: status.seq,
    destination: status.destination,
    createdAt: status.createdAt.toISOString(),
    expiresAt: status.expiresAt.toISOString(),
    state: status.state,
    devices: status.devices,
  };
}

/** GET /api/users/{user}/messages/{id} (scope push, checked before this). */
export function statusHandler(inbox: Inbox): RequestHandler {
  return async (req, res) => {
    const user = userName(req.params.user, 'the user in the URL');
    const id = String(req.params.id);
    if (id.length === 0 || id.length > 256)
      throw new ServiceError('bad_request', 'a message id is 1-256 characters');
    const status = await inbox.status(user, id);
    if (!status)
      throw new ServiceError('not_found', `no message '${id.slice(0, 64)}' in the inbox of ${user}`);
    res.json(statusBody(status));
  };
}

/**
 * The batch's durable items through the delivery seam: every user of every item in one
 * publishMany (the durable policy stores them in one commit), then one result per item: `seq` a
 * number for a `user` item, per user for a `users` one. A `users` item whose store refused one
 * user answers that user's error (the others are stored).
 */
export function batchInboxOf(deliveries: DeliveryPolicies): BatchInbox {
  return {
    isDurable: (target) => deliveries.policyFor(target).keepsHistory,
    async push(items) {
      const stored = await deliveries.publishMany(
        items.flatMap((item) => item.targets.map((target) => ({ target, message: item.message }))),
      );
      let next = 0;
      return items.map((item): ItemResult => {
        const mine = stored.slice(next, next + item.targets.length);
        next += item.targets.length;
        const failed = mine.find((r) => !r.ok);
        if (failed && !failed.ok) return { error: failed.error.code, detail: failed.error.message };
        const seqs = mine.map((r) => (r.ok ? Number(r.receipt.position) : 0));
        if (!item.many) return { id: item.id, seq: seqs[0], stored: true };
        const users = item.targets.map((t) => (t.kind === 'user' ? t.user : ''));
        return { id: item.id, seq: Object.fromEntries(users.map((u, i) => [u, seqs[i]])), stored: true };
      });
    },
  };
}
