/**
 * The broker seam. Sessions, REST and app handlers talk to a Broker and never learn which one it is:
 * the embedded in-process broker (one instance, no RabbitMQ) or the RabbitMQ relay (any number of
 * instances). Both implement the same semantics and are held to them by one shared test suite
 * (test/support/broker-suite.ts).
 *
 * Semantics every implementation keeps:
 * - topic: every live subscription of the topic gets each message once.
 * - queue: competing consumers; each message goes to one subscription. With ack mode `client` an
 *   ACK acknowledges that message and every earlier unacknowledged one of the same subscription;
 *   with `client-individual` just that one. NACK returns the message(s) to the queue to be delivered
 *   again (redelivered = true). Closing a subscription returns its unacknowledged messages.
 *   At most `prefetch` unacknowledged messages are outstanding per subscription.
 * - user: a push to (user U, /user/queue/x) reaches every live subscription of U to /user/queue/x,
 *   on every instance, once each. Nobody else's.
 * - publish() resolves only once the broker has taken the message (receipt or confirm) and rejects
 *   with ServiceError('broker_unavailable') when it cannot; nothing resolved is dropped later.
 *   What it resolves with is what the broker knows about the message (PublishReceipt): for a user
 *   target whether any instance held a session of that user when it was routed.
 */
import { formatTarget, type MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { MessageProperties } from '../messaging/header-policy';
import type { RawTarget } from '../destinations/raw-destination';

export type AckMode = 'auto' | 'client' | 'client-individual';

export interface OutgoingMessage {
  /** End-to-end id, made by whoever accepted the message; becomes `message-id` on MESSAGE frames. */
  id: string;
  /** Application headers only (content-type and custom ones); STOMP control headers are stripped. */
  headers: Record<string, string>;
  body: Buffer;
  /**
   * What the sender asked of the broker for this message (header-policy.ts messageProperties):
   * honoured by the RabbitMQ relay for `/queue/` targets; the embedded broker keeps none of them.
   */
  properties?: MessageProperties;
}

/**
 * What the broker tells the publisher about a message it took. Fields a broker cannot know are
 * left out, never guessed.
 */
export interface PublishReceipt {
  /**
   * User targets: whether any instance held a live session of that user when the broker routed
   * the message (false: nobody got it). Absent for topics and queues.
   */
  online?: boolean;
  /**
   * Where the message was put, for a delivery policy that keeps history (the durable inbox: the
   * committed `inbox-seq`, as a string). A subscription can start after it (ResumeFrom `after`).
   */
  position?: string;
  /**
   * The id the message is kept under, for a delivery policy that keeps history, when it is not the
   * one given: a retry with the same idempotency key is answered with the first push's.
   */
  id?: string;
}

/**
 * Where a subscription to a destination that keeps history starts (SubscribeRequest.resumeFrom):
 * - `cursor`: after what the subscribing device has acknowledged (its cursor in that history);
 *   what it was sent and did not acknowledge comes again.
 * - `after`: after this position (a PublishReceipt/Delivery position), whatever the device has
 *   acknowledged: re-reading history (`inbox-since`).
 */
export type ResumeFrom = { kind: 'cursor' } | { kind: 'after'; position: string };

export interface Delivery {
  messageId: string;
  /** The PublishReceipt position this message got, where the delivery policy assigns one. */
  position?: string;
  headers: Readonly<Record<string, string>>;
  body: Buffer;
  /** Set when the subscription's ack mode needs acknowledgement; the client quotes it back. */
  ackId?: string;
  redelivered: boolean;
  /**
   * The broker's message this delivery passes on unchanged (id, headers and body as they are), the
   * same object for every subscriber it was handed to: equal frames are then made once
   * (session/shared-frames.ts). Unset where a delivery's headers are its own.
   */
  origin?: object;
}

export interface SubscribeRequest {
  sessionId: string;
  user: string;
  target: MessageTarget;
  ackMode: AckMode;
  /** Most unacknowledged deliveries outstanding (client modes); also bounds buffering. */
  prefetch: number;
  /**
   * The subscribing device (CONNECT `device-id`): a policy that keeps history keeps each device's
   * progress apart. Absent: `default`.
   */
  device?: string;
  /**
   * Where to start before live messages, for a destination whose policy keeps history (absent
   * there: `cursor`). Best-effort delivery has no history: it starts with the next live message,
   * and refuses an `after` position (app/delivery/policies.ts).
   */
  resumeFrom?: ResumeFrom;
  deliver(delivery: Delivery): void;
  /**
   * The broker ended this subscription on its own (refused it when restoring it after a
   * reconnect): only this subscriber is told; nothing else is affected.
   */
  ended?(reason: ServiceError): void;
}

export interface BrokerSubscription {
  ack(ackId: string): Promise<void>;
  /**
   * Returns the message(s) to the queue to be delivered again, or with `requeue` false gives them
   * up: dropped, or dead-lettered where the queue is configured to (RabbitMQ's basic.reject).
   */
  nack(ackId: string, requeue?: boolean): Promise<void>;
  /** Unsubscribes; unacknowledged messages go back to their queue. Idempotent. */
  close(): Promise<void>;
}

/** A subscription to a raw broker destination (destinations/raw-destination.ts), the operator allowed. */
export interface RawSubscribeRequest extends Omit<SubscribeRequest, 'target' | 'device' | 'resumeFrom'> {
  target: RawTarget;
  /** RabbitMQ's SUBSCRIBE headers that reach the broker as they are (x-queue-name, x-stream-offset). */
  brokerHeaders: Record<string, string>;
}

/** One session's temp queue: replies to `token` reach it until close(). */
export interface TempQueue {
  readonly token: string;
  close(): void;
}

/** The broker seam's part of request/reply (Broker.replies; delivery/reply-queues.ts says how). */
export interface ReplyQueues {
  /** A new temp queue delivering to `deliver`; resolves once a reply sent now would reach it. */
  open(deliver: (delivery: Delivery) => void): Promise<TempQueue>;
  /**
   * Sends a reply to `token`. Resolves once the broker took it: `delivered` false when no session
   * held the token (the reply was dropped, and counted). Rejects only when the broker is away.
   */
  reply(token: string, message: OutgoingMessage): Promise<{ delivered: boolean }>;
}

/** Work a STOMP transaction collected; applied all together at COMMIT, or not at all. */
export type TransactionOp =
  | { op: 'publish'; target: MessageTarget; message: OutgoingMessage }
  | { op: 'ack' | 'nack'; subscription: BrokerSubscription; ackId: string; requeue?: boolean };

export type Readiness = { ready: true } | { ready: false; reason: string };

/** An `/app` message no in-process handler took, for a backend service (messaging/app-router.ts). */
export interface BackendMessage {
  route: string;
  user: string;
  sessionId: string;
  messageId: string;
  headers: Record<string, string>;
  body: Buffer;
  /** The SEND's reply-to as it goes on (a temp queue's `/reply-queue/<token>`, temp-queues.ts). */
  replyTo?: string;
}

export interface Broker {
  /** 'embedded' or 'rabbitmq': for logs and /readyz, never for branching. */
  readonly kind: string;
  start(): Promise<void>;
  /** Closes subscriptions and connections; pending publishes are finished or rejected. */
  stop(): Promise<void>;
  readiness(): Readiness;
  /**
   * Connections to the broker that are up, of those this instance keeps (the relay's STOMP pool);
   * absent where there is no connection (the embedded broker). For the cluster view.
   */
  connections?(): { up: number; total: number };
  /** Called whenever readiness changes (broker lost, broker back). */
  onReadinessChange(listener: (readiness: Readiness) => void): void;
  subscribe(request: SubscribeRequest): Promise<BrokerSubscription>;
  /**
   * Resolves once the broker took the message. `/queue/` messages reach their queues in the order
   * publish() was called for them, whether or not the earlier ones were confirmed yet (a session
   * sends them ahead of the confirms: session/frame-order.ts).
   */
  publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt>;
  commit(ops: TransactionOp[]): Promise<void>;
  /**
   * A session of `user` opened on this instance (the presence directory says so, app/presence/):
   * from now on the user's pushes are routed here, and a push's `online` counts it, until the
   * matching localSessionClosed. Counted: two sessions need two closes.
   */
  localSessionOpened(user: string): void;
  localSessionClosed(user: string): void;
  /**
   * Hands an `/app` message to the backend services, where this broker reaches some (the relay's
   * AMQP bridge); absent where none can be reached. Resolves once a backend's queue holds it.
   */
  readonly forwardToBackend?: (message: BackendMessage) => Promise<void>;
  /**
   * Raw broker destinations (`/amq/queue/`, `/exchange/`), where this broker has them (the relay);
   * absent on the embedded broker. Same promises as subscribe() and publish().
   */
  /** Temp queues for request/reply (delivery/reply-queues.ts): `reply-to: /temp-queue/<name>`. */
  readonly replies: ReplyQueues;
  readonly raw?: {
    subscribe(request: RawSubscribeRequest): Promise<BrokerSubscription>;
    publish(target: RawTarget, message: OutgoingMessage): Promise<void>;
  };
}

/**
 * Every broker refuses a subscription to another user's destination. The destination parser
 * already makes that unspellable; this holds for callers that build targets by hand.
 */
export function assertOwnUserTarget(request: SubscribeRequest): void {
  const { target } = request;
  if (target.kind === 'user' && target.user !== request.user) {
    throw new ServiceError('forbidden', `${formatTarget(target)} of another user cannot be subscribed to`);
  }
}
