/**
 * The MESSAGE frame one subscriber gets for one delivery (spec 1.2 §MESSAGE): the session's control
 * headers first, since a parser keeps the first of repeated headers and so no message header can
 * stand in for `destination` or `subscription`; then the message's own headers.
 *
 * A message header this subscriber's version cannot carry (a line break for 1.0, a carriage return
 * for 1.0 and 1.1: only 1.2 escapes it) is left off its copy, and the message itself is delivered.
 * Left off, not re-encoded: a rewritten value would pass for what the sender sent, an absent one
 * cannot. The caller counts what was dropped.
 */
import type { Delivery } from '../broker/broker';
import { frame as makeFrame, type Frame, type StompVersion } from '../stomp/frame';
import { unrepresentableHeader } from '../stomp/serializer';
import { sharedMessageFrames, type EncodedMessage } from './shared-frames';
import type { ClientSubscription, SubscriptionTable } from './subscriptions';

/** The session a MESSAGE is for: its version, its ack tokens, its way of serialising. */
export interface MessageWriter {
  readonly version: StompVersion;
  readonly subscriptions: Pick<SubscriptionTable, 'mintAck'>;
  /** The frame's bytes, or undefined when it cannot be written (counted and logged there). */
  serialize(frame: Frame, version: StompVersion): Buffer | undefined;
}

/**
 * One subscriber's MESSAGE bytes for `delivery`: the very bytes another subscriber already got when
 * they would be equal (shared-frames.ts), else made here.
 */
export function encodeMessage(
  sub: ClientSubscription,
  delivery: Delivery,
  writer: MessageWriter,
): EncodedMessage | undefined {
  const version = writer.version;
  // An ack token is this session's own: such a frame is never another's.
  const origin = delivery.ackId === undefined ? delivery.origin : undefined;
  if (origin) {
    const kept = sharedMessageFrames.find(origin, version, sub, delivery.redelivered);
    if (kept) return kept;
  }
  const control: Record<string, string> = {
    subscription: sub.id,
    'message-id': delivery.messageId,
    destination: sub.destination,
  };
  if (delivery.ackId !== undefined) {
    const token = writer.subscriptions.mintAck(sub, delivery.ackId, delivery.messageId);
    if (version === '1.2') control.ack = token;
  }
  if (delivery.redelivered) control.redelivered = 'true';
  const { frame, dropped } = messageFrame(control, delivery, version);
  const bytes = writer.serialize(frame, version);
  if (!bytes) return undefined;
  const encoded: EncodedMessage = { bytes, dropped };
  if (origin) sharedMessageFrames.keep(origin, version, sub, delivery.redelivered, encoded);
  return encoded;
}

export function messageFrame(
  control: Record<string, string>,
  delivery: Delivery,
  version: StompVersion,
): { frame: Frame; dropped: number } {
  const frame = makeFrame('MESSAGE', control, delivery.body);
  let dropped = 0;
  for (const [name, value] of Object.entries(delivery.headers)) {
    if (Object.hasOwn(control, name)) continue;
    if (unrepresentableHeader('MESSAGE', name, value, version) !== undefined) dropped++;
    else frame.headers.push([name, value]);
  }
  return { frame, dropped };
}
