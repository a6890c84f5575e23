/**
 * SEND and SUBSCRIBE of raw broker destinations (`/amq/queue/<queue>`, `/exchange/<exchange>[/<key>]`,
 * destinations/raw-destination.ts): what the operator's authorization file allows a trusted client
 * (README "Raw broker destinations"). Without such an allowance they are refused naming the
 * destination, as every unknown prefix is. commands.ts hands these over once it sees the prefix.
 */
import { randomUUID } from 'node:crypto';
import type { OutgoingMessage, RawSubscribeRequest, SubscribeRequest } from '../broker/broker';
import type { BrokerSubscription } from '../broker/broker';
import { printable } from '../destinations/destination';
import { parseRawDestination, type RawTarget } from '../destinations/raw-destination';
import { ServiceError } from '../errors';
import { allowedHeaderRecord, messageProperties } from '../messaging/header-policy';
import { header, type Frame } from '../stomp/frame';
import type { CommandSession } from './command-session';
import { replyTo } from './reply-commands';

/** RabbitMQ's stream consumer offsets (x-stream-offset on SUBSCRIBE of a stream queue). */
const STREAM_OFFSET = /^(first|last|next|offset=\d{1,19}|timestamp=\d{1,13})$/;

function notAllowed(verb: 'send to' | 'subscribe to', destination: string): ServiceError {
  return new ServiceError(
    'forbidden',
    `not allowed to ${verb} '${printable(destination)}': raw broker destinations are refused unless the authorization file allows them`,
  );
}

function rawBroker(
  session: CommandSession,
  destination: string,
): NonNullable<CommandSession['ctx']['broker']['raw']> {
  const raw = session.ctx.broker.raw;
  if (!raw) {
    throw new ServiceError(
      'bad_destination',
      `destination '${printable(destination)}' is not allowed: raw broker destinations exist only on the RabbitMQ relay (BROKER_URL)`,
    );
  }
  return raw;
}

function requester(session: CommandSession): { user: string; scopes: readonly string[] } {
  return { user: session.user, scopes: session.scopes };
}

/** §SEND to a raw destination: published over AMQP and confirmed (the broker's raw.publish). */
export async function sendRaw(session: CommandSession, frame: Frame, destination: string): Promise<void> {
  const target = parseRawDestination(destination, false);
  if (!session.ctx.authorizer.canSend(requester(session), destination))
    throw notAllowed('send to', destination);
  const raw = rawBroker(session, destination);
  if (header(frame, 'transaction') !== undefined) {
    throw new ServiceError('bad_frame', `'${printable(destination)}' cannot be part of a transaction`);
  }
  const message: OutgoingMessage = {
    id: randomUUID(),
    headers: allowedHeaderRecord(frame.headers, 'send'),
    body: frame.body,
    // A temp queue's reply-to becomes its /reply-queue/<token>, which an AMQP replier reads too.
    properties: { ...messageProperties(frame.headers), replyTo: await replyTo(session, frame) },
  };
  const stop = session.ctx.metrics.publishLatency.startTimer({ source: 'stomp' });
  await raw.publish(target, message);
  stop();
}

/**
 * The RabbitMQ SUBSCRIBE headers a raw subscription passes on, where RabbitMQ takes them:
 * `x-stream-offset` where the queue is consumed as it is (`/amq/queue/`, a stream queue),
 * `x-queue-name` where RabbitMQ creates the subscription's queue (`/exchange/`), and only for a
 * name the client may also subscribe to as `/amq/queue/<name>`. `x-queue-type` is refused: an
 * `/amq/queue/` queue has its type already, and an `/exchange/` subscription's queue is exclusive,
 * which only a classic queue can be.
 */
function brokerHeaders(session: CommandSession, frame: Frame, target: RawTarget): Record<string, string> {
  const out: Record<string, string> = {};
  if (header(frame, 'x-queue-type') !== undefined) {
    throw new ServiceError(
      'bad_frame',
      'x-queue-type cannot be set here: an /amq/queue/ queue has its type already, and an /exchange/ subscription queue is exclusive (classic)',
    );
  }
  const offset = header(frame, 'x-stream-offset');
  if (offset !== undefined) {
    if (target.kind !== 'amq-queue' || !STREAM_OFFSET.test(offset)) {
      throw new ServiceError(
        'bad_frame',
        `x-stream-offset is for /amq/queue/ stream queues: first, last, next, offset=<n> or timestamp=<s>, got '${printable(offset)}'`,
      );
    }
    out['x-stream-offset'] = offset;
  }
  const queueName = header(frame, 'x-queue-name');
  if (queueName !== undefined) {
    if (target.kind !== 'exchange')
      throw new ServiceError(
        'bad_frame',
        'x-queue-name is for /exchange/ subscriptions: /amq/queue/ names its queue',
      );
    const asQueue = `/amq/queue/${queueName}`;
    parseRawDestination(asQueue, true);
    if (!session.ctx.authorizer.canSubscribe(requester(session), asQueue)) {
      throw new ServiceError(
        'forbidden',
        `x-queue-name '${printable(queueName)}' is not allowed: the authorization file does not allow subscribing to '${printable(asQueue)}'`,
      );
    }
    out['x-queue-name'] = queueName;
  }
  return out;
}

/** What subscribe() in commands.ts needs of a raw SUBSCRIBE, checked before anything is counted. */
export function rawSubscription(
  session: CommandSession,
  frame: Frame,
  destination: string,
): { target: RawTarget; open(request: Omit<SubscribeRequest, 'target'>): Promise<BrokerSubscription> } {
  const target = parseRawDestination(destination, true);
  if (!session.ctx.authorizer.canSubscribe(requester(session), destination))
    throw notAllowed('subscribe to', destination);
  const raw = rawBroker(session, destination);
  if (header(frame, 'inbox-since') !== undefined)
    throw new ServiceError(
      'bad_frame',
      `inbox-since is for durable (inbox) destinations, not '${printable(destination)}'`,
    );
  const headers = brokerHeaders(session, frame, target);
  return {
    target,
    open: (request) => {
      const rawRequest: RawSubscribeRequest = { ...request, target, brokerHeaders: headers };
      return raw.subscribe(rawRequest);
    },
  };
}
