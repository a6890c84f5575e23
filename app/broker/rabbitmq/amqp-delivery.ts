/**
 * The relay's AMQP side of topic and user delivery: the instance's two exclusive queues, their
 * bindings, user pushes, and what arrives on them turned into the service's messages.
 *
 * Topology, as the management UI shows it (one instance `a`):
 *   queue `stomp-relay.a.users`  (exclusive)  bound to exchange `stomp-relay.user` (direct), one
 *                                              binding per user key with a session or
 *                                              subscription on `a`
 *   queue `stomp-relay.a.topics` (exclusive)  bound to `amq.topic`, one binding per topic name
 *                                              subscribed on `a` (the STOMP plugin's `/topic/<name>`
 *                                              is amq.topic with routing key <name>)
 * Two queues per instance whatever the number of users and topics.
 *
 * User pushes are AMQP publishes to `stomp-relay.user` with the user's key, confirmed, and
 * `mandatory`: RabbitMQ returns a push no queue was bound for, which is how a push learns that no
 * instance had a session of that user (`online: false`). Topic messages arrive from whoever
 * published them on amq.topic (the relay's STOMP pool, a Web-STOMP client, an AMQP backend).
 *
 * Message shape. The relay's own messages carry their application headers in the AMQP headers
 * table (content-type included, never as the content_type property, so nothing on the way decodes
 * the body) and its own `x-relay-*` headers beside them. Messages from elsewhere may have a
 * content_type property; rabbitmq-client then hands text/plain bodies over as strings and JSON ones
 * parsed, which is turned back into bytes here (exact for UTF-8 text; JSON re-serialised).
 */
import type { AsyncMessage, Connection } from 'rabbitmq-client';

import type { OutgoingMessage } from '../broker';
import type { StoredMessage } from '../embedded/queue';
import { ServiceError } from '../../errors';
import { INTERNAL_HEADER_PREFIX, isRelayedHeader, allowedHeaderRecord } from '../../messaging/header-policy';
import type { UserBackbone, UserTarget } from '../../delivery/user-delivery';
import type { RelayLogger } from './connection-pool';
import { ConfirmedPublisher } from './confirmed-publisher';
import { InstanceQueue } from './instance-queue';
import { MESSAGE_ID_HEADER } from './wire';
import { replyRoutingKey } from '../../delivery/reply-queues';
import {
  EXCHANGES,
  EXCHANGE_DECLARATIONS,
  QUEUE_ROLES,
  TOPIC_EXCHANGE,
  instanceQueueName,
  userRoutingKey,
} from './topology';

export const USER_DESTINATION_HEADER = 'x-relay-user-destination';
/**
 * A topic message's reply-to, carried as a header of ours: the plugin would act on a `reply-to`
 * SEND header (create queues for `/temp-queue/`), and subscribers see it as `reply-to`.
 */
export const REPLY_TO_HEADER = 'x-relay-reply-to';
/** The application content-type of a message the relay sent over STOMP to a topic or user. */
export const CONTENT_TYPE_HEADER = 'x-relay-content-type';

export interface AmqpDeliveryOptions {
  instanceId: string;
  publishTimeoutMs: number;
  logger: RelayLogger;
  onTopicMessage(name: string, message: StoredMessage): void;
  onUserMessage(target: UserTarget, message: StoredMessage): void;
  /** A reply to a temp queue's token (routing key `r.<token>`, delivery/reply-queues.ts). */
  onReplyMessage(token: string, message: StoredMessage): void;
  /** `ready` changed. */
  onReadyChange(): void;
}

/** A value from an AMQP headers table as a header string, if it is one. */
function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function bodyBytes(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body === undefined || body === null) return Buffer.alloc(0);
  return Buffer.from(JSON.stringify(body), 'utf8');
}

function propertyHeader(headers: Record<string, string>, name: string, value: string | undefined): void {
  if (value !== undefined && value !== '' && isRelayedHeader(name) && !Object.hasOwn(headers, name))
    headers[name] = value;
}

/** A message from one of the instance queues, and the `x-relay-*` headers it carried. */
export function readAmqpMessage(message: AsyncMessage): {
  stored: StoredMessage;
  internal: Record<string, string>;
} {
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const internal: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const text = headerText(value);
    if (text === undefined) continue;
    const lower = name.toLowerCase();
    if (lower.startsWith(INTERNAL_HEADER_PREFIX)) internal[lower] = text;
    else if (isRelayedHeader(name)) headers[name] = text;
  }
  const replyTo = internal[REPLY_TO_HEADER];
  if (replyTo !== undefined) headers['reply-to'] = replyTo;
  // SEND headers RabbitMQ's plugin turns into AMQP properties (a topic SEND through the pool):
  // back to the headers they were, or a subscriber would not see them at all. Read one by one: a
  // table of them built per message was garbage on every delivery of the instance.
  propertyHeader(headers, 'correlation-id', message.correlationId);
  propertyHeader(headers, 'content-encoding', message.contentEncoding);
  propertyHeader(headers, 'type', message.type);
  propertyHeader(headers, 'app-id', message.appId);
  const contentType = internal[CONTENT_TYPE_HEADER] ?? message.contentType;
  if (contentType !== undefined && !Object.hasOwn(headers, 'content-type'))
    headers['content-type'] = contentType;
  const id = internal[MESSAGE_ID_HEADER] ?? message.messageId ?? '';
  return { stored: { id, headers, body: bodyBytes(message.body) }, internal };
}

/** `queue/greetings` → the user target of `user`, or undefined for anything else. */
function userTargetOf(user: string | undefined, destination: string | undefined): UserTarget | undefined {
  if (user === undefined || destination === undefined) return undefined;
  const slash = destination.indexOf('/');
  const type = destination.slice(0, slash);
  if ((type !== 'queue' && type !== 'topic') || slash + 1 >= destination.length) return undefined;
  return { kind: 'user', user, type, name: destination.slice(slash + 1) };
}

export class AmqpDelivery implements UserBackbone {
  readonly users: InstanceQueue;
  readonly topics: InstanceQueue;
  private readonly publisher: ConfirmedPublisher;
  private publishSeq = 0;
  /**
   * The users whose keys this instance holds, by key. A backend replying to a user sends the key
   * and the destination, not the name (README, backend protocol); the name is found here.
   */
  private readonly usersByKey = new Map<string, { user: string; holds: number }>();

  constructor(
    private readonly connection: Connection,
    private readonly options: AmqpDeliveryOptions,
  ) {
    const { instanceId, logger } = options;
    this.users = new InstanceQueue(connection, {
      name: instanceQueueName(instanceId, QUEUE_ROLES.users),
      exchange: EXCHANGES.user,
      logger,
      onMessage: (message) => this.receiveUser(message),
      onReadyChange: () => options.onReadyChange(),
    });
    this.topics = new InstanceQueue(connection, {
      name: instanceQueueName(instanceId, QUEUE_ROLES.topics),
      exchange: TOPIC_EXCHANGE,
      logger,
      onMessage: (message) => this.receiveTopic(message),
      onReadyChange: () => options.onReadyChange(),
    });
    this.publisher = new ConfirmedPublisher(connection, {
      exchanges: [EXCHANGE_DECLARATIONS.user],
      timeoutMs: options.publishTimeoutMs,
      timedOut: () => new Error(`user push confirm: no answer within ${options.publishTimeoutMs} ms`),
      returnKey: (returned) => returned.messageId,
      refusal: (err) => {
        if (err instanceof ServiceError) return err;
        const why = err instanceof Error ? err.message : String(err);
        return new ServiceError('broker_unavailable', `the broker did not take the push: ${why}`, {
          cause: err,
        });
      },
    });
  }

  /** Both queues declared on the current connection and bound again as before it. */
  get ready(): boolean {
    return this.users.ready && this.topics.ready;
  }

  async start(): Promise<void> {
    await this.users.start(this.options.instanceId);
    await this.topics.start(this.options.instanceId);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.users.stop(), this.topics.stop()]);
    await this.publisher.close();
  }

  hold(user: string): Promise<void> {
    const key = userRoutingKey(user);
    const entry = this.usersByKey.get(key);
    if (entry) entry.holds += 1;
    else this.usersByKey.set(key, { user, holds: 1 });
    return this.users.bindings.acquire(key);
  }

  release(user: string): void {
    const key = userRoutingKey(user);
    const entry = this.usersByKey.get(key);
    if (entry && --entry.holds === 0) this.usersByKey.delete(key);
    this.users.bindings.release(key);
  }

  /** Replies to `token` come to this instance from now on (its temp queue's binding). */
  holdReply(token: string): Promise<void> {
    return this.users.bindings.acquire(replyRoutingKey(token));
  }

  releaseReply(token: string): void {
    this.users.bindings.release(replyRoutingKey(token));
  }

  /** A reply to a temp queue, to whichever instance holds its token; `routed` false when none does. */
  publishReply(token: string, message: OutgoingMessage): Promise<{ routed: boolean }> {
    return this.send(replyRoutingKey(token), message, {});
  }

  holdTopic(name: string): Promise<void> {
    return this.topics.bindings.acquire(name);
  }

  releaseTopic(name: string): void {
    this.topics.bindings.release(name);
  }

  publish(target: UserTarget, message: OutgoingMessage): Promise<{ routed: boolean }> {
    return this.send(userRoutingKey(target.user), message, {
      [USER_DESTINATION_HEADER]: `${target.type}/${target.name}`,
    });
  }

  /** Mandatory and confirmed on the user exchange; `routed` false when no queue was bound for the key. */
  private async send(
    routingKey: string,
    message: OutgoingMessage,
    internal: Record<string, string>,
  ): Promise<{ routed: boolean }> {
    // rabbitmq-client would hold the publish until it reconnects; the caller is better told now.
    // And until this instance's own bindings are back, its users would wrongly read offline.
    if (!this.connection.ready) {
      throw new ServiceError('broker_unavailable', 'the AMQP connection to RabbitMQ is down');
    }
    if (!this.users.ready) {
      throw new ServiceError(
        'broker_unavailable',
        'the instance is binding its users again after a reconnect',
      );
    }
    // A publish id of its own names this publish in a basic.return: one message (a batch's
    // `users` item) may be in flight to several keys at once.
    const publishId = `${this.options.instanceId}-${++this.publishSeq}`;
    const envelope = {
      exchange: EXCHANGES.user,
      routingKey,
      mandatory: true,
      messageId: publishId,
      headers: {
        ...allowedHeaderRecord(Object.entries(message.headers), 'relay'),
        [MESSAGE_ID_HEADER]: message.id,
        ...internal,
      },
    };
    const verdict = await this.publisher.send(envelope, message.body, publishId);
    return { routed: verdict === 'routed' };
  }

  private receiveUser(message: AsyncMessage): void {
    const { stored, internal } = readAmqpMessage(message);
    if (message.routingKey.startsWith('r.')) {
      this.options.onReplyMessage(message.routingKey.slice(2), stored);
      return;
    }
    const user = this.usersByKey.get(message.routingKey)?.user;
    const target = userTargetOf(user, internal[USER_DESTINATION_HEADER]);
    if (!target) {
      // No local holder of the key any more (its last session just went), or no destination.
      if (user !== undefined) {
        this.options.logger.warn(
          { routingKey: message.routingKey },
          'dropped a user message without a destination',
        );
      }
      return;
    }
    this.options.onUserMessage(target, stored);
  }

  private receiveTopic(message: AsyncMessage): void {
    if (message.exchange !== TOPIC_EXCHANGE) return;
    this.options.onTopicMessage(message.routingKey, readAmqpMessage(message).stored);
  }
}
