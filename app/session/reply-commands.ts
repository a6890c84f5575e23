/**
 * The SEND side of request/reply (temp-queues.ts has the temp queues themselves): the `reply-to` a
 * SEND carries on, and a SEND to `/reply-queue/<token>`. commands.ts and raw-commands.ts call these.
 */
import { randomUUID } from 'node:crypto';
import { printable } from '../destinations/destination';
import { REPLY_QUEUE_PREFIX, TOKEN } from '../delivery/reply-queues';
import { ServiceError } from '../errors';
import { allowedHeaderRecord } from '../messaging/header-policy';
import { header, type Frame } from '../stomp/frame';
import type { CommandSession } from './command-session';
import { TEMP_QUEUE_PREFIX } from './temp-queues';

const NAME = /^[A-Za-z0-9_\-.:@]{1,100}$/;

/**
 * The `reply-to` a SEND carries on, checked: a `/temp-queue/<name>` (which the authorization file
 * must allow, as a subscription) becomes this session's `/reply-queue/<token>`; anything else goes
 * on as the client wrote it (a `/reply-queue/` it was given, or a name for an AMQP consumer).
 */
export async function replyTo(session: CommandSession, frame: Frame): Promise<string | undefined> {
  const value = header(frame, 'reply-to');
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > 256 || /[^\x21-\x7e]/.test(value))
    throw new ServiceError('bad_frame', `reply-to must be a destination of 1-256 printable characters`);
  if (value.startsWith(REPLY_QUEUE_PREFIX) && !TOKEN.test(value.slice(REPLY_QUEUE_PREFIX.length)))
    throw new ServiceError(
      'bad_frame',
      `reply-to '${printable(value)}' is not a reply queue this service made`,
    );
  if (!value.startsWith(TEMP_QUEUE_PREFIX)) return value;
  const name = value.slice(TEMP_QUEUE_PREFIX.length);
  if (!NAME.test(name))
    throw new ServiceError(
      'bad_frame',
      `reply-to '${printable(value)}': temp queue names use letters, digits and _ - . : @`,
    );
  if (!session.ctx.authorizer.canSubscribe(session, value))
    throw new ServiceError('forbidden', `not allowed to use temp queues ('${printable(value)}')`);
  return session.tempQueues.replyDestination(name);
}

/**
 * §SEND to `/reply-queue/<token>`: a reply, for the session holding that temp queue. Allowed by
 * the authorization file's `/reply-queue/**` rule (the token is the rest of the right). Dropped
 * and counted when that session has gone; the replier is not told, as RabbitMQ does not.
 */
export async function sendReply(
  session: CommandSession,
  frame: Frame,
  destination: string,
  token: string,
): Promise<void> {
  if (!session.ctx.authorizer.canSend(session, destination))
    throw new ServiceError('forbidden', `not allowed to send to '${printable(destination)}'`);
  if (header(frame, 'transaction') !== undefined)
    throw new ServiceError('bad_frame', 'replies cannot be part of a transaction');
  await session.ctx.broker.replies.reply(token, {
    id: randomUUID(),
    headers: allowedHeaderRecord(frame.headers, 'send'),
    body: frame.body,
  });
}

/** The token of a SEND to `/reply-queue/<token>`, or undefined for any other destination. */
export function replyToken(destination: string): string | undefined {
  if (!destination.startsWith(REPLY_QUEUE_PREFIX)) return undefined;
  const token = destination.slice(REPLY_QUEUE_PREFIX.length);
  if (!TOKEN.test(token)) {
    throw new ServiceError(
      'bad_destination',
      `destination '${printable(destination)}' is not allowed: reply to the reply-to a message carries`,
    );
  }
  return token;
}
