/**
 * The body of POST /api/messages/batch read into items. The call as a whole is refused only for
 * what makes it unreadable (not `{"messages": [...]}`: 400) or too big (more than REST_BATCH_MAX
 * messages: 413); an item that is wrong on its own becomes that item's error and the others go on,
 * so a backend's one bad recipient does not hold back a thousand good ones.
 *
 * Each item is checked as the single call with the same fields checks its body (the same schemas,
 * header policy, destination parser and body size), and its error says which item it is.
 */
import { Type } from '@sinclair/typebox';
import type { OutgoingMessage } from '../broker/broker';
import type { MessageTarget } from '../destinations/destination';
import { isServiceError, ServiceError, type ErrorCode } from '../errors';
import type { Principal } from './passport';
import { schemaCheck } from './schema-check';
import { BatchUserItem, BatchUsersItem, PushRequest } from './schemas';
import { sharedTarget, userTarget } from './targets';
import { messageOf, userName } from './validation';

/** Only the envelope: each item is checked on its own below, so that it can fail alone. */
const checkEnvelope = schemaCheck(
  Type.Object({ messages: Type.Array(Type.Unknown()) }, { additionalProperties: false }),
  {
    messages:
      'messages must be an array of items, e.g. [{"user": "alice", "destination": "/queue/x", "body": "hi"}]',
  },
);

const MESSAGE_REASONS = {
  destination: 'destination must be a string, e.g. "/queue/greetings"',
  body: 'body is required (a string or any JSON value)',
  headers: 'headers must be a JSON object of string values',
};
const checkUserItem = schemaCheck(BatchUserItem, {
  ...MESSAGE_REASONS,
  user: 'user must be a non-empty string',
});
const checkUsersItem = schemaCheck(BatchUsersItem, {
  ...MESSAGE_REASONS,
  users: 'users must be a non-empty array of user names',
});
const checkPublishItem = schemaCheck(PushRequest, MESSAGE_REASONS);

export type ItemKind = 'user' | 'destination';

/** An item that passed its checks: one message to one or more targets. */
export interface BatchItem {
  kind: ItemKind;
  /** A `users` item: its answer speaks of each user. */
  many: boolean;
  targets: MessageTarget[];
  message: Omit<OutgoingMessage, 'id'>;
}

/** An item refused on its own, as its result says it. */
export interface ItemError {
  error: ErrorCode;
  detail: string;
}

export interface BatchLimits {
  /** REST_BATCH_MAX: messages per call, each user of a `users` item counting as one. */
  maxMessages: number;
  /** REST_BODY_LIMIT_BYTES: an item's message body may be no larger than a single call's body. */
  maxBodyBytes: number;
}

/** The items of the batch: 400 for a body that is not `{"messages": [...]}`, 413 past the limit. */
export function batchEnvelope(body: unknown, limits: BatchLimits): unknown[] {
  if (body === undefined) {
    throw new ServiceError(
      'bad_request',
      'expected a JSON object body (send Content-Type: application/json)',
    );
  }
  const { messages } = checkEnvelope(body);
  if (messages.length > limits.maxMessages) {
    throw new ServiceError(
      'payload_too_large',
      `a batch holds at most ${limits.maxMessages} messages (REST_BATCH_MAX); this one has ${messages.length} items`,
    );
  }
  return messages;
}

/** What an item is for the metrics, whether or not it passed its checks. */
export function itemKind(value: unknown): ItemKind {
  return typeof value === 'object' && value !== null && ('user' in value || 'users' in value)
    ? 'user'
    : 'destination';
}

function kindOf(value: object): 'user' | 'users' | 'publish' {
  if ('users' in value) return 'users';
  if ('user' in value) return 'user';
  return 'publish';
}

function readItem(value: unknown, caller: Principal, limits: BatchLimits): BatchItem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServiceError('bad_request', 'an item must be a JSON object');
  }
  switch (kindOf(value)) {
    case 'user': {
      const fields = checkUserItem(value);
      const target = userTarget(fields.destination, userName(fields.user, 'user'));
      return { kind: 'user', many: false, targets: [target], message: sized(messageOf(fields), limits) };
    }
    case 'users': {
      const fields = checkUsersItem(value);
      // A name given twice is one recipient: the message reaches each user's sessions once.
      const users = [...new Set(fields.users.map((user, i) => userName(user, `users[${i}]`)))];
      const targets = users.map((user) => userTarget(fields.destination, user));
      return { kind: 'user', many: true, targets, message: sized(messageOf(fields), limits) };
    }
    case 'publish': {
      const fields = checkPublishItem(value);
      const target = sharedTarget(fields.destination, caller);
      return {
        kind: 'destination',
        many: false,
        targets: [target],
        message: sized(messageOf(fields), limits),
      };
    }
  }
}

function sized(message: Omit<OutgoingMessage, 'id'>, limits: BatchLimits): Omit<OutgoingMessage, 'id'> {
  if (message.body.length > limits.maxBodyBytes) {
    throw new ServiceError(
      'payload_too_large',
      `body is ${message.body.length} bytes, more than the ${limits.maxBodyBytes} a push may carry (REST_BODY_LIMIT_BYTES)`,
    );
  }
  return message;
}

/**
 * Each item read on its own: a BatchItem, or the error that item answers with (prefixed with its
 * position). Throws 413 when the items together reach more users than REST_BATCH_MAX.
 */
export function batchItems(
  values: unknown[],
  caller: Principal,
  limits: BatchLimits,
): (BatchItem | ItemError)[] {
  const items = values.map((value, i): BatchItem | ItemError => {
    try {
      return readItem(value, caller, limits);
    } catch (err: unknown) {
      if (!isServiceError(err)) throw err;
      return { error: err.code, detail: `messages[${i}]: ${err.message}` };
    }
  });
  const messages = items.reduce((n, item) => n + ('targets' in item ? item.targets.length : 0), 0);
  if (messages > limits.maxMessages) {
    throw new ServiceError(
      'payload_too_large',
      `a batch holds at most ${limits.maxMessages} messages (REST_BATCH_MAX), each user of a users item ` +
        `counting as one; this one has ${messages}`,
    );
  }
  return items;
}
