/**
 * Every HTTP call of the service, as the API description (GET /api/openapi.json) tells it: path,
 * who may call it, its parameters and body, its answers and every error code it can give. The
 * schemas are schemas.ts's, the very ones the routes validate with; the status and headers of each
 * error come from rest/errors.ts, the place that writes them. openapi.ts turns this list into the
 * document.
 *
 * A new route adds its entry here (and its body schemas to schemas.ts); the REST tests check each
 * real answer against the document, so a route that answers a status, header or body its entry
 * does not name fails them, and so does a route missing from this list.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import type { Settings } from '../../config/settings';
import { adminEnabled } from '../admin/access';
import { ClusterAnswer } from '../admin/schema';
import type { HttpErrorCode } from './errors';
import {
  BatchRequest,
  BatchResults,
  DevToken,
  DevTokenRequest,
  Health,
  InboxMessage,
  PushAccepted,
  PushRequest,
  Ready,
  SessionList,
  UserName,
  UserPushAccepted,
} from './schemas';

/** `push` / `admin`: a bearer token whose scope includes that word; `token`: any valid bearer token. */
export type Auth = 'none' | 'token' | 'push' | 'admin';

export interface HeaderSpec {
  description: string;
  schema: TSchema;
}

export interface AnswerSpec {
  description: string;
  /** The body's schema; absent for an answer without a body. */
  schema?: TSchema;
  /** Defaults to application/json. */
  mediaType?: string;
  headers?: Readonly<Record<string, HeaderSpec>>;
}

export interface ParameterSpec {
  name: string;
  in: 'path' | 'header';
  description: string;
  schema: TSchema;
  required: boolean;
}

export interface OperationSpec {
  method: 'get' | 'post';
  /** As OpenAPI writes it: `/api/users/{user}/messages`. */
  path: string;
  operationId: string;
  summary: string;
  description: string;
  auth: Auth;
  parameters?: readonly ParameterSpec[];
  body?: { schema: TSchema; description: string };
  /** Answers other than errors, by status. */
  answers: Readonly<Record<number, AnswerSpec>>;
  /** Every error code the call can answer; grouped by the status rest/errors.ts gives each. */
  errors: readonly HttpErrorCode[];
}

const userParameter: ParameterSpec = {
  name: 'user',
  in: 'path',
  description: "The user (the `sub` of the user's tokens), URL-encoded.",
  schema: UserName,
  required: true,
};

/** What every push can answer besides its 202: the body, the token, the broker, the instance. */
const PUSH_ERRORS = [
  'bad_request',
  'bad_destination',
  'unauthenticated',
  'token_expired',
  'forbidden',
  'payload_too_large',
  'limit_exceeded',
  'internal',
  'broker_unavailable',
  'draining',
  'overloaded',
] as const satisfies readonly HttpErrorCode[];

const TAKEN =
  'Answered only after the broker has taken the message (the store, for a durable destination); ' +
  'any failure on the way is an error status, never a 202 for a message that may be lost.';

const PUSH_TO_USER: OperationSpec = {
  method: 'post',
  path: '/api/users/{user}/messages',
  operationId: 'pushToUser',
  summary: 'Push a message to a user',
  description:
    "Like Spring's `convertAndSendToUser`: every live session of the user subscribed to " +
    '`/user/queue/<name>` (or `/user/topic/<name>`), on any instance, gets it. A durable ' +
    "(inbox) destination keeps it until each of the user's devices has it. " +
    TAKEN,
  auth: 'push',
  parameters: [
    userParameter,
    {
      name: 'Idempotency-Key',
      in: 'header',
      description:
        'For a durable destination: a retry with the same key for the same user answers the ' +
        'same 202 body and stores nothing new; the same key with a different body answers 409 ' +
        '`idempotency_conflict`. Keys are kept as long as their message is readable.',
      schema: Type.String({ minLength: 1 }),
      required: false,
    },
  ],
  body: { schema: PushRequest, description: 'The message and where it goes.' },
  answers: {
    202: {
      description:
        'The broker has taken the message: `{"id"}`, with `"online"`; for a durable ' +
        'destination `{"id", "seq", "stored": true}`, once the store has committed it.',
      schema: UserPushAccepted,
    },
  },
  errors: [...PUSH_ERRORS, 'idempotency_conflict', 'inbox_unavailable'],
};

function pushes(settings: Settings): OperationSpec[] {
  return [
    PUSH_TO_USER,
    {
      method: 'post',
      path: '/api/messages',
      operationId: 'publish',
      summary: 'Publish a message to a topic or queue',
      description:
        "Like Spring's `convertAndSend`: to every subscriber of a `/topic/<name>` on every instance, " +
        `or onto a \`/queue/<name>\` for one of its consumers. ${TAKEN}`,
      auth: 'push',
      body: { schema: PushRequest, description: 'The message and where it goes.' },
      answers: { 202: { description: 'The broker has taken the message.', schema: PushAccepted } },
      errors: PUSH_ERRORS,
    },
    {
      method: 'post',
      path: '/api/messages/batch',
      operationId: 'pushBatch',
      summary: 'Push many messages in one call',
      description:
        'Each item is a user push, one message to several users, or a publish, answered in item ' +
        'order: an item the broker has taken gets its id, a refused one (invalid, or durable while ' +
        'the inbox is off) its own `{"error", "detail"}`, and the other items go on. 503 when the ' +
        'broker is down and the batch holds a non-durable item. Messages to the same destination ' +
        'arrive in item order. More than `REST_BATCH_MAX` messages (each user of a `users` item ' +
        `counting as one) answers 413, as does a body over ${settings.restBatchBodyLimitBytes} bytes ` +
        '(`REST_BATCH_BODY_LIMIT_BYTES`).',
      auth: 'push',
      body: { schema: BatchRequest, description: 'The messages, in order.' },
      answers: { 200: { description: 'One result per item, in item order.', schema: BatchResults } },
      errors: [
        'bad_request',
        'unauthenticated',
        'token_expired',
        'forbidden',
        'payload_too_large',
        'internal',
        'broker_unavailable',
        'draining',
        'overloaded',
      ],
    },
  ];
}

const READS: OperationSpec[] = [
  {
    method: 'get',
    path: '/api/users/{user}/sessions',
    operationId: 'listSessions',
    summary: "List a user's live sessions",
    description:
      'Every live session of the user across all instances, oldest first. A user may list their ' +
      "own sessions with any valid token; another user's need a token with scope `push`.",
    auth: 'token',
    parameters: [userParameter],
    answers: { 200: { description: "The user's sessions.", schema: SessionList } },
    errors: [
      'bad_request',
      'unauthenticated',
      'token_expired',
      'forbidden',
      'internal',
      'broker_unavailable',
    ],
  },
  {
    method: 'get',
    path: '/api/users/{user}/messages/{id}',
    operationId: 'getInboxMessage',
    summary: 'Where a durable push is',
    description:
      'A message pushed to a durable destination: when it expires, and which of the devices of the ' +
      'user have it. 404 for an id that is not in the inbox.',
    auth: 'push',
    parameters: [
      userParameter,
      {
        name: 'id',
        in: 'path',
        description: 'The id the push answered with.',
        schema: Type.String({ format: 'uuid' }),
        required: true,
      },
    ],
    answers: { 200: { description: 'The message and its delivery state.', schema: InboxMessage } },
    errors: [
      'bad_request',
      'unauthenticated',
      'token_expired',
      'forbidden',
      'not_found',
      'internal',
      'inbox_unavailable',
    ],
  },
];

function devToken(settings: Settings): OperationSpec {
  return {
    method: 'post',
    path: '/api/dev/token',
    operationId: 'issueDevToken',
    summary: 'Issue a development token',
    description:
      `Development only (absent with NODE_ENV=production): a JWT valid for ${settings.devTokenTtlS} s ` +
      'for any user and scope, so the demo page and curl examples work without an identity provider. ' +
      'Needs a shared secret (JWT_SECRET); an instance verifying with JWT_PUBLIC_KEY answers 501.',
    auth: 'none',
    body: { schema: DevTokenRequest, description: 'Who the token is for.' },
    answers: {
      200: {
        description: 'The token.',
        schema: DevToken,
        headers: {
          'Cache-Control': {
            description: 'A token is never cached.',
            schema: Type.Literal('no-store'),
          },
        },
      },
    },
    errors: ['bad_request', 'payload_too_large', 'internal', 'not_implemented'],
  };
}

const ADMIN: OperationSpec = {
  method: 'get',
  path: '/api/admin/cluster',
  operationId: 'getCluster',
  summary: 'The live cluster view',
  description:
    'What the page at /admin shows: every instance this one hears from, with its sessions by ' +
    'transport, users, subscriptions, broker state, pushes, deliveries and slow-consumer cuts, and ' +
    "the cluster's push and delivery rates over the last ADMIN_HISTORY_S seconds. Built from the " +
    "instances' own announcements, so at most one DIRECTORY_ANNOUNCE_MS old. Needs a token with " +
    'scope `admin`; absent with NODE_ENV=production unless ADMIN_ENABLED=true.',
  auth: 'admin',
  answers: {
    200: {
      description: 'The cluster as this instance sees it.',
      schema: ClusterAnswer,
      headers: {
        'Cache-Control': { description: 'Always current.', schema: Type.Literal('no-store') },
      },
    },
  },
  errors: ['unauthenticated', 'token_expired', 'forbidden', 'internal'],
};

const OPS: OperationSpec[] = [
  {
    method: 'get',
    path: '/api/openapi.json',
    operationId: 'getApiDescription',
    summary: 'This API description',
    description: 'The OpenAPI 3.1 document of every HTTP call of the service (no token needed).',
    auth: 'none',
    answers: { 200: { description: 'This document.', schema: Type.Object({ openapi: Type.String() }) } },
    errors: ['internal'],
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    summary: 'Liveness',
    description: 'The process answers; independent of the broker, so an outage does not restart it.',
    auth: 'none',
    answers: { 200: { description: 'Alive.', schema: Health } },
    errors: ['internal'],
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'readiness',
    summary: 'Readiness for a load balancer',
    description:
      'Ready while the broker connection is up and the instance is not draining. The answer also ' +
      'names the inbox store: `"inbox": "unavailable"` with `inboxReason` while PostgreSQL cannot ' +
      'answer (only durable pushes are refused then, so the instance stays ready).',
    auth: 'none',
    answers: { 200: { description: 'Ready.', schema: Ready } },
    errors: ['internal', 'not_ready'],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    description:
      'Prometheus text format: sessions by transport, subscriptions, frames and bytes in and out, ' +
      'pushes, broker reconnects, errors by kind, limits hit, latency histograms.',
    auth: 'none',
    answers: {
      200: { description: 'The metrics.', mediaType: 'text/plain', schema: Type.String() },
    },
    errors: ['internal'],
  },
];

/** Every call this instance serves, as its settings make it. */
export function operations(settings: Settings): OperationSpec[] {
  return [
    ...pushes(settings),
    ...READS,
    ...(settings.nodeEnv === 'production' ? [] : [devToken(settings)]),
    ...(adminEnabled(settings) ? [ADMIN] : []),
    ...OPS,
  ];
}
