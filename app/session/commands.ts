/**
 * What the server does for each client command, one function per command, dispatched through a
 * table (an unknown command is a protocol error in stomp-session.ts, never a crash). Each handler
 * names its section of the STOMP 1.2 spec: https://stomp.github.io/stomp-specification-1.2.html
 * A handler throws ServiceError for anything the client got wrong; the session turns that into an
 * ERROR frame and closes, as the spec requires.
 */
import { randomUUID } from 'node:crypto';
import type {
  AckMode,
  BrokerSubscription,
  Delivery,
  OutgoingMessage,
  ResumeFrom,
  SubscribeRequest,
} from '../broker/broker';
import { bearerToken } from '../auth/bearer';
import { parseDestination, printable, type MessageTarget } from '../destinations/destination';
import { isRawSpelling } from '../destinations/raw-destination';
import { parseDeviceId } from '../inbox/validate';
import { ServiceError } from '../errors';
import { allowedHeaderRecord, messageProperties } from '../messaging/header-policy';
import { frame as makeFrame, header, type Frame } from '../stomp/frame';
import { negotiateHeartbeat, negotiateVersion } from '../stomp/negotiate';
import type { CommandSession } from './command-session';
import type { Started } from './frame-order';
import { rawSubscription, sendRaw } from './raw-commands';
import { replyTo, replyToken, sendReply } from './reply-commands';
import { TEMP_QUEUE_PREFIX } from './temp-queues';
import { REPLY_QUEUE_PREFIX } from '../delivery/reply-queues';
import { abort, begin, checkTransactionBytes, commit, openTransaction } from './transaction-commands';
import type { ClientSubscription } from './subscriptions';

type CommandHandler = (session: CommandSession, frame: Frame) => Promise<void> | void;
/** Resolves once the SEND is done, or with the broker confirm it still waits for (frame-order.ts). */
type SendHandler = (session: CommandSession, frame: Frame) => Promise<Started | undefined>;

const ACK_MODES: readonly AckMode[] = ['auto', 'client', 'client-individual'];

function required(frame: Frame, name: string): string {
  const value = header(frame, name);
  if (value === undefined || value === '') {
    throw new ServiceError('bad_frame', `${frame.command} needs a '${name}' header`);
  }
  return value;
}

/**
 * The token a CONNECT presents: its Authorization header (read exactly as REST reads one, so a value
 * REST refuses is refused here too, not passed over for another placement), else `passcode`, else
 * the one the handshake carried.
 */
function connectToken(session: CommandSession, frame: Frame): string | undefined {
  const authorization = header(frame, 'Authorization') ?? header(frame, 'authorization');
  if (authorization !== undefined) {
    const token = bearerToken(authorization);
    if (token === undefined) {
      throw new ServiceError(
        'unauthenticated',
        'the Authorization header is not a bearer token (Bearer <jwt>)',
      );
    }
    return token;
  }
  return header(frame, 'passcode') ?? session.socket.info.handshakeToken;
}

/** §CONNECT or STOMP Frames, §Protocol Negotiation, §Heart-beating. */
function connect(session: CommandSession, frame: Frame): void {
  const { settings, verifier, registry, broker, metrics, isDraining } = session.ctx;
  const supported = session.supportedVersions();
  const version = negotiateVersion(header(frame, 'accept-version'), supported);
  if (!version) {
    throw new ServiceError(
      'unsupported_version',
      `no common STOMP version: this server speaks ${supported.join(', ')}`,
    );
  }
  session.version = version;
  const token = connectToken(session, frame);
  if (!token) {
    throw new ServiceError(
      'unauthenticated',
      "no token: send 'Authorization: Bearer <jwt>' or 'passcode: <jwt>' in CONNECT, or access_token in the URL",
    );
  }
  const identity = verifier.verify(token);
  session.device = parseDeviceId(header(frame, 'device-id'));
  if (isDraining())
    throw new ServiceError('draining', 'this instance is draining: connect to another instance');
  const readiness = broker.readiness();
  if (!readiness.ready)
    throw new ServiceError('broker_unavailable', `broker unavailable: ${readiness.reason}`);
  if (registry.countForUser(identity.user) >= settings.maxSessionsPerUser) {
    metrics.limitsHit.inc({ limit: 'sessions_per_user' });
    throw new ServiceError(
      'limit_exceeded',
      `user already has ${settings.maxSessionsPerUser} sessions on this instance`,
    );
  }
  const heartbeat = negotiateHeartbeat(
    header(frame, 'heart-beat'),
    settings.heartbeatSendMs,
    settings.heartbeatReceiveMs,
  );
  session.user = identity.user;
  session.scopes = identity.scopes;
  session.sendFrame(
    makeFrame('CONNECTED', {
      version,
      'heart-beat': heartbeat.header,
      server: session.ctx.serverName,
      session: session.id,
      'user-name': identity.user,
      instance: settings.instanceId,
    }),
  );
  session.startConnected(heartbeat, identity.expiresAt);
}

/**
 * Whether `frame` may start before the frames ahead of it are answered (frame-order.ts): a SEND to
 * `/queue/` outside a transaction. Such publishes all go over one confirm channel, in the order
 * they are made (broker.ts, Broker.publish), so a session's queue messages keep their order however
 * many are in flight. Not a topic SEND (the pool spreads publishes over its connections) nor an
 * `/app` one (a handler may take any time before it publishes).
 */
export function overlapsOthers(frame: Frame): boolean {
  return (
    frame.command === 'SEND' &&
    header(frame, 'destination')?.startsWith('/queue/') === true &&
    header(frame, 'transaction') === undefined
  );
}

/** §SEND. `/app` goes to handlers, `/topic` and `/queue` to the broker; `/user` only via /app or REST. */
async function send(session: CommandSession, frame: Frame): Promise<Started | undefined> {
  const { authorizer, deliveries, appRouter, metrics } = session.ctx;
  const destination = required(frame, 'destination');
  if (isRawSpelling(destination)) {
    await sendRaw(session, frame, destination);
    return undefined;
  }
  const token = replyToken(destination);
  if (token !== undefined) {
    await sendReply(session, frame, destination, token);
    return undefined;
  }
  if (destination.startsWith(TEMP_QUEUE_PREFIX)) {
    throw new ServiceError(
      'forbidden',
      `cannot send to '${printable(destination)}': a temp queue is named in reply-to, and replies go to the reply-to a message carries`,
    );
  }
  const target = parseDestination(destination, session.user);
  if (target.kind === 'user') {
    throw new ServiceError(
      'forbidden',
      `cannot send to '${printable(destination)}': user destinations are written by the service (use /app/... or the REST API)`,
    );
  }
  if (!authorizer.canSend(session, destination)) {
    throw new ServiceError('forbidden', `not allowed to send to '${printable(destination)}'`);
  }
  // After the checks above: a refused SEND makes no temp queue.
  const reply = await replyTo(session, frame);
  // Reserved names are stripped, not refused (header-policy.ts says why); the message goes on.
  const message: OutgoingMessage = {
    id: randomUUID(),
    headers: allowedHeaderRecord(frame.headers, 'send'),
    body: frame.body,
    // priority, expiration/expires, persistent: checked and passed to the broker for a queue (a bad
    // value is an ERROR, never dropped silently); elsewhere they are stripped like other reserved
    // names. reply-to goes on everywhere (a temp queue's becomes its /reply-queue/<token>).
    properties:
      target.kind === 'queue'
        ? { ...messageProperties(frame.headers), replyTo: reply }
        : reply === undefined
          ? undefined
          : { replyTo: reply },
  };
  const transaction = header(frame, 'transaction');
  if (target.kind === 'app') {
    if (transaction !== undefined)
      throw new ServiceError('bad_frame', '/app messages cannot be part of a transaction');
    const handled = await appRouter.dispatch({
      route: target.route,
      user: session.user,
      sessionId: session.id,
      messageId: message.id,
      headers: message.headers,
      body: message.body,
      replyTo: reply,
    });
    if (!handled) throw new ServiceError('no_route', `no handler for '${printable(destination)}'`);
    return undefined;
  }
  if (transaction !== undefined) {
    const tx = openTransaction(session, transaction);
    checkTransactionBytes(session, message.body.length);
    tx.ops.push({ op: 'publish', target, message });
    return undefined;
  }
  const stop = metrics.publishLatency.startTimer({ source: 'stomp' });
  // Sent now, confirmed later: the session answers the frame once the broker has it.
  return { confirmed: deliveries.publish(target, message).then(() => stop()) };
}

/** The broker's callbacks of a subscription: made in subscribe(), they held its whole scope (the
 *  SUBSCRIBE frame and its headers too) while the subscription lived. */
function deliveryCallbacks(
  session: CommandSession,
  sub: ClientSubscription,
): { deliver(delivery: Delivery): void; ended(reason: ServiceError): void } {
  return {
    deliver: (delivery) => session.deliver(sub, delivery),
    // A subscription the broker ends on its own ends this session alone, with the reason.
    ended: (reason) => session.fail(reason),
  };
}

/** §SUBSCRIBE. Every destination is checked against the user before the broker hears of it. */
async function subscribe(session: CommandSession, frame: Frame): Promise<void> {
  const { settings, metrics, registry } = session.ctx;
  const destination = required(frame, 'destination');
  // STOMP 1.0 made `id` optional; the destination then names the subscription.
  const id = session.version === '1.0' ? (header(frame, 'id') ?? destination) : required(frame, 'id');
  if (session.subscriptions.get(id))
    throw new ServiceError('duplicate_subscription', `subscription id '${printable(id)}' is already in use`);
  if (session.subscriptions.size >= settings.maxSubscriptionsPerSession) {
    metrics.limitsHit.inc({ limit: 'subscriptions_per_session' });
    throw new ServiceError(
      'limit_exceeded',
      `at most ${settings.maxSubscriptionsPerSession} subscriptions per session`,
    );
  }
  const ack = header(frame, 'ack') ?? 'auto';
  if (!ACK_MODES.includes(ack as AckMode))
    throw new ServiceError('bad_frame', `ack must be one of ${ACK_MODES.join(', ')}`);
  const opening = isRawSpelling(destination)
    ? rawSubscription(session, frame, destination)
    : serviceSubscription(session, frame, destination);
  const sub: ClientSubscription = {
    id,
    destination,
    target: opening.target,
    ackMode: ack as AckMode,
    closed: false,
  };
  // Counted from the moment the table holds it: finish() uncounts every subscription in the table,
  // including one whose broker subscribe is still pending when the connection goes.
  session.subscriptions.add(sub);
  metrics.subscriptions.inc();
  try {
    const brokerSub = await opening.open({
      sessionId: session.id,
      user: session.user,
      ackMode: sub.ackMode,
      prefetch: subscriptionPrefetch(frame, settings.brokerPrefetch),
      ...deliveryCallbacks(session, sub),
    });
    if (sub.closed) {
      // The session ended (or the client unsubscribed) while the broker was still subscribing.
      await brokerSub.close();
      return;
    }
    sub.broker = brokerSub;
  } catch (err: unknown) {
    if (session.subscriptions.remove(id)) metrics.subscriptions.dec();
    throw err;
  }
  registry.update(session.info());
}

/**
 * A SUBSCRIBE to one of the service's own destinations: checked, then opened through the delivery
 * seam, which knows which policy serves the destination. `inbox-since` says where to start in a
 * destination's history; without it a destination that keeps one starts at this device's cursor.
 */
function serviceSubscription(
  session: CommandSession,
  frame: Frame,
  destination: string,
): { target: MessageTarget; open(request: Omit<SubscribeRequest, 'target'>): Promise<BrokerSubscription> } {
  const { authorizer, deliveries } = session.ctx;
  if (destination.startsWith(TEMP_QUEUE_PREFIX) || destination.startsWith(REPLY_QUEUE_PREFIX)) {
    throw new ServiceError(
      'forbidden',
      `cannot subscribe to '${printable(destination)}': a temp queue is read through reply-to (a SEND with reply-to: /temp-queue/<name> subscribes its session to it)`,
    );
  }
  const target = parseDestination(destination, session.user);
  if (target.kind === 'app')
    throw new ServiceError(
      'bad_destination',
      `cannot subscribe to '${printable(destination)}': /app is for SEND`,
    );
  if (!authorizer.canSubscribe(session, destination)) {
    throw new ServiceError('forbidden', `not allowed to subscribe to '${printable(destination)}'`);
  }
  const since = header(frame, 'inbox-since');
  const resumeFrom: ResumeFrom =
    since === undefined ? { kind: 'cursor' } : { kind: 'after', position: since };
  return {
    target,
    open: (request) => deliveries.subscribe({ ...request, target, device: session.device, resumeFrom }),
  };
}

/**
 * The SUBSCRIBE's `prefetch-count` (RabbitMQ's header: most unacknowledged messages outstanding),
 * honoured up to BROKER_PREFETCH, which is also what a subscription without one gets: a client may
 * ask for less buffering, never for more. Not a whole number >= 1: ERROR.
 */
function subscriptionPrefetch(frame: Frame, maximum: number): number {
  const asked = header(frame, 'prefetch-count');
  if (asked === undefined) return maximum;
  if (!/^\d{1,9}$/.test(asked) || Number(asked) < 1) {
    throw new ServiceError(
      'bad_frame',
      `prefetch-count must be a whole number from 1 (at most ${maximum} are outstanding), got '${printable(asked)}'`,
    );
  }
  return Math.min(Number(asked), maximum);
}

/** §UNSUBSCRIBE. Only this session's own subscription ids exist for it. */
async function unsubscribe(session: CommandSession, frame: Frame): Promise<void> {
  const id =
    session.version === '1.0'
      ? (header(frame, 'id') ?? required(frame, 'destination'))
      : required(frame, 'id');
  const sub = session.subscriptions.remove(id);
  if (!sub) throw new ServiceError('unknown_subscription', `no subscription with id '${printable(id)}'`);
  session.ctx.metrics.subscriptions.dec();
  session.ctx.registry.update(session.info());
  await sub.broker?.close();
}

/** §ACK and §NACK: 1.2 quotes the MESSAGE's `ack` header as `id`; 1.0/1.1 quote `message-id`. */
function acknowledge(op: 'ack' | 'nack'): CommandHandler {
  return async (session, frame) => {
    const transaction = header(frame, 'transaction');
    const requeue = op === 'nack' ? nackRequeue(frame) : undefined;
    // Inside a transaction the delivery is settled only at COMMIT: ABORT leaves it acknowledgeable.
    const settle = transaction === undefined;
    const target =
      session.version === '1.2'
        ? session.subscriptions.resolveToken(required(frame, 'id'), settle)
        : session.subscriptions.resolveMessageId(
            required(frame, 'message-id'),
            header(frame, 'subscription'),
            settle,
          );
    if (!target)
      throw new ServiceError(
        'bad_frame',
        `${frame.command} for a message this session has no pending acknowledgement of`,
      );
    const brokerSub = target.subscription.broker;
    if (!brokerSub) return;
    if (transaction !== undefined) {
      const tx = openTransaction(session, transaction);
      for (const open of session.transactions.values()) {
        if (open.acks.includes(target.token)) {
          throw new ServiceError(
            'bad_frame',
            `${frame.command} for a message already acknowledged in a transaction`,
          );
        }
      }
      tx.ops.push({ op, subscription: brokerSub, ackId: target.brokerAckId, requeue });
      tx.acks.push(target.token);
      return;
    }
    await (op === 'ack' ? brokerSub.ack(target.brokerAckId) : brokerSub.nack(target.brokerAckId, requeue));
  };
}

/**
 * NACK's `requeue` header (RabbitMQ's): `true` (the default) redelivers, `false` gives the message
 * up, to be dropped or dead-lettered as its queue says. Anything else is an ERROR.
 */
function nackRequeue(frame: Frame): boolean {
  const value = header(frame, 'requeue');
  if (value === undefined || value === 'true') return true;
  if (value === 'false') return false;
  throw new ServiceError('bad_frame', `NACK requeue must be true or false, got '${printable(value)}'`);
}

/** §DISCONNECT: the receipt, if asked for, is the last frame; then the connection closes. */
function disconnect(session: CommandSession, frame: Frame): void {
  const receipt = header(frame, 'receipt');
  if (receipt !== undefined) session.sendFrame(makeFrame('RECEIPT', { 'receipt-id': receipt }));
  session.close('client_disconnect');
}

export const COMMANDS: ReadonlyMap<string, CommandHandler | SendHandler> = new Map<
  string,
  CommandHandler | SendHandler
>(
  Object.entries({
    CONNECT: connect,
    STOMP: connect,
    SEND: send,
    SUBSCRIBE: subscribe,
    UNSUBSCRIBE: unsubscribe,
    ACK: acknowledge('ack'),
    NACK: acknowledge('nack'),
    BEGIN: begin,
    COMMIT: commit,
    ABORT: abort,
    DISCONNECT: disconnect,
  }),
);
