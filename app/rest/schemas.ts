/**
 * The JSON shapes of the REST API, as JSON Schema (2020-12, the dialect of OpenAPI 3.1) built with
 * TypeBox: the request bodies the routes validate with (validation.ts compiles these with ajv) and
 * the answers they give. openapi.ts puts the same objects into GET /api/openapi.json, so what the
 * document says and what a route checks cannot drift apart; the REST tests check every real answer
 * against the document.
 *
 * What a schema cannot say stays in code, in validation.ts: which header names are allowed (the
 * header policy), that user names are printable, how deeply a body may nest. The descriptions below
 * say so, for the reader of the document.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { MAX_APPLICATION_HEADERS } from '../messaging/header-policy';

/** The longest user name (code units), as for a token's `sub`. */
export const MAX_USER_NAME = 200;
/** The longest value of one message header. */
export const MAX_HEADER_VALUE = 4096;

export const UserName = Type.String({
  minLength: 1,
  maxLength: MAX_USER_NAME,
  description:
    "A user name, as in a token's `sub` claim: printable, no spaces or control characters " +
    '(checked by the service beyond this schema).',
  examples: ['alice'],
});

const Destination = Type.String({
  description:
    'Where the message goes. `POST /api/messages`: `/topic/<name>` or `/queue/<name>`. A user push: ' +
    '`/queue/<name>` or `/topic/<name>`, which the user subscribes to as `/user/queue/<name>` or ' +
    '`/user/topic/<name>` (that spelling is accepted too). Anything else answers 400 `bad_destination`.',
  examples: ['/queue/greetings', '/topic/prices'],
});

const MessageBody = Type.Unknown({
  description:
    'Any JSON value. A string is sent as its UTF-8 bytes (`content-type: text/plain;charset=utf-8`), ' +
    'anything else as its JSON text (`application/json`); a `content-type` header given in `headers` wins.',
  examples: [{ hello: 'alice' }, 'hello'],
});

export const MessageHeaders = Type.Unsafe<Record<string, string>>({
  type: 'object',
  additionalProperties: Type.String({ maxLength: MAX_HEADER_VALUE }),
  maxProperties: MAX_APPLICATION_HEADERS,
  description:
    'Application headers of the message, as STOMP subscribers read them. Names are HTTP tokens of ' +
    '1-64 characters; names the service, RabbitMQ or STOMP give a meaning to (destination, ' +
    'message-id, reply-to, x-queue-*, x-relay-*, authorization, ...) are refused with 400 naming the ' +
    'header, and values must not contain control characters (both checked by the service).',
  examples: [{ trace: 't-1' }],
});

/** The body of both push calls: `{"destination", "body", "headers"}`. */
export const PushRequest = Type.Object(
  {
    destination: Destination,
    body: MessageBody,
    headers: Type.Optional(MessageHeaders),
  },
  { additionalProperties: false },
);

const MessageId = Type.String({
  format: 'uuid',
  description: "The message's id: the `message-id` header every subscriber's MESSAGE carries.",
});

const Seq = Type.Integer({
  minimum: 1,
  description: "The message's `inbox-seq`: per user, increasing in the order pushes were accepted.",
});

const Online = Type.Boolean({
  description:
    'Whether any instance held a live session of the user when the broker routed the message ' +
    '(`false`: no live session got it; for a durable destination it waits in the inbox).',
});

/** 202 of `POST /api/messages`, and each taken item of a batch. */
export const PushAccepted = Type.Object({ id: MessageId }, { additionalProperties: false });

/** 202 of a user push to a durable (inbox) destination: answered once the store has committed it. */
export const StoredPushAccepted = Type.Object(
  {
    id: MessageId,
    seq: Seq,
    stored: Type.Literal(true),
    online: Type.Optional(Online),
  },
  { additionalProperties: false },
);

/** 202 of `POST /api/users/{user}/messages`. */
export const UserPushAccepted = Type.Union([
  Type.Object({ id: MessageId, online: Type.Optional(Online) }, { additionalProperties: false }),
  StoredPushAccepted,
]);

export const DevTokenRequest = Type.Object(
  {
    user: UserName,
    scope: Type.Optional(
      Type.String({
        pattern: '^(|[!-~]{1,100}( [!-~]{1,100}){0,15})$',
        description: 'Space-separated scopes for the token; `push` for the push calls.',
        examples: ['push'],
      }),
    ),
  },
  { additionalProperties: false },
);

export const DevToken = Type.Object(
  {
    token: Type.String({ description: 'A JWT for `Authorization: Bearer <jwt>` or a STOMP CONNECT.' }),
    user: UserName,
    expiresIn: Type.Integer({ minimum: 1, description: 'Seconds until the token expires.' }),
  },
  { additionalProperties: false },
);

export const SessionInfo = Type.Object(
  {
    sessionId: Type.String(),
    user: UserName,
    instance: Type.String({ description: 'The instance (`INSTANCE_ID`) holding the session.' }),
    transport: Type.String({
      pattern: '^(websocket|tcp|sockjs/[a-z_-]+)$',
      description:
        'How the client is connected: `websocket` (`/stomp`), `tcp` (`STOMP_TCP_PORT`) or ' +
        '`sockjs/<sub-transport>` (`/ws`, e.g. `sockjs/websocket`, `sockjs/xhr-streaming`).',
    }),
    connectedAt: Type.String({ format: 'date-time' }),
    subscriptions: Type.Array(
      Type.Object(
        {
          id: Type.String({ description: "The SUBSCRIBE frame's `id`." }),
          destination: Type.String({ description: 'As the client subscribed to it.' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const SessionList = Type.Object(
  { user: UserName, sessions: Type.Array(SessionInfo) },
  { additionalProperties: false },
);

/** Every error answer: `{"error": "<code>", "detail": "<reason>"}`. */
export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'A short code a program can branch on.', examples: ['bad_request'] }),
    detail: Type.String({ description: 'Why, in words a person can act on.' }),
  },
  { additionalProperties: false },
);

export const Health = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false });

export const Ready = Type.Object(
  {
    status: Type.Literal('ready'),
    broker: Type.String({ description: '`embedded` or `rabbitmq`.', examples: ['rabbitmq'] }),
    inbox: Type.Union([Type.Literal('ready'), Type.Literal('unavailable'), Type.Literal('off')], {
      description:
        'The inbox store: `unavailable` while its database cannot answer (durable pushes then answer ' +
        '503; everything else goes on, so the instance stays ready), `off` when it is not configured.',
    }),
    inboxReason: Type.Optional(
      Type.String({ description: 'Why the inbox is unavailable or off, naming the dependency.' }),
    ),
  },
  { additionalProperties: false },
);

// The batch call: one request body, one item per message, one result per item, in item order.

const BatchMessage = {
  destination: Destination,
  body: MessageBody,
  headers: Type.Optional(MessageHeaders),
};

export const BatchUserItem = Type.Object(
  { user: UserName, ...BatchMessage },
  { additionalProperties: false },
);

export const BatchUsersItem = Type.Object(
  { users: Type.Array(UserName, { minItems: 1 }), ...BatchMessage },
  { additionalProperties: false },
);

/**
 * An invalid item fails alone (its result is an error, the others go on), so the route checks the
 * body's shape with `messages` as any array, and each item on its own with the item schemas.
 */
export const BatchRequest = Type.Object(
  {
    messages: Type.Array(Type.Union([BatchUserItem, BatchUsersItem, PushRequest]), {
      description:
        'Up to `REST_BATCH_MAX` items (more answers 413 for the whole call): a push to one user ' +
        '(`user`), the same message to several users (`users`), or a publish to a topic or queue ' +
        '(neither: a `PushRequest`). Each item is checked as the single calls check their bodies.',
    }),
  },
  { additionalProperties: false },
);

/** A `users` item to a durable destination: one id, each user's own `inbox-seq`. */
export const StoredMultiPushAccepted = Type.Object(
  {
    id: MessageId,
    seq: Type.Record(Type.String(), Seq, { description: "Each user's `inbox-seq`." }),
    stored: Type.Literal(true),
  },
  { additionalProperties: false },
);

/** A `user` item the broker has taken: `online` as the single user push answers it. */
export const BatchUserAccepted = Type.Object(
  { id: MessageId, online: Type.Optional(Online) },
  { additionalProperties: false },
);

/** A `users` item the broker has taken: `online` for each user. */
export const BatchUsersAccepted = Type.Object(
  {
    id: MessageId,
    online: Type.Record(Type.String(), Online, { description: 'For each user: as `online` for one user.' }),
  },
  { additionalProperties: false },
);

export const BatchResults = Type.Object(
  {
    results: Type.Array(
      Type.Union(
        [BatchUserAccepted, BatchUsersAccepted, StoredPushAccepted, StoredMultiPushAccepted, ErrorBody],
        {
          description:
            'In item order: the id of each item the broker has taken (with `online` for a user ' +
            'item, per user for a `users` item, where the broker can tell; with `seq` and `stored` ' +
            'for a durable destination), or `{"error", "detail"}` for an item refused on its own.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

// The inbox: a durable push, as its status call reports it.

const DeliveryState = Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('acked')]);

export const InboxMessage = Type.Object(
  {
    id: MessageId,
    seq: Seq,
    destination: Type.String({
      description: 'As the client subscribes to it.',
      examples: ['/user/queue/inbox'],
    }),
    createdAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time' }),
    state: Type.Union([Type.Literal('pending'), Type.Literal('acked'), Type.Literal('expired')], {
      description:
        '`expired` once expired; else `acked` when every device of the user known when it was ' +
        'pushed has acknowledged it; else `pending`.',
    }),
    devices: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), DeliveryState, {
      description: 'Each device id (the CONNECT header `device-id`) and where this message is for it.',
    }),
  },
  { additionalProperties: false },
);

/** Every named schema, as the document's `components.schemas`. */
export const NAMED_SCHEMAS: Readonly<Record<string, TSchema>> = {
  UserName,
  MessageHeaders,
  PushRequest,
  PushAccepted,
  UserPushAccepted,
  StoredPushAccepted,
  DevTokenRequest,
  DevToken,
  SessionInfo,
  SessionList,
  ErrorBody,
  Health,
  Ready,
  BatchRequest,
  BatchUserItem,
  BatchUsersItem,
  BatchResults,
  BatchUserAccepted,
  BatchUsersAccepted,
  StoredMultiPushAccepted,
  InboxMessage,
};
