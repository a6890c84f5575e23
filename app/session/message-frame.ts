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
