/**
 * The MESSAGE bytes of one fan-out message, made once and written to every subscriber whose frame
 * would be the same bytes.
 *
 * A topic message reaches each local subscriber as its own Delivery, but what a subscriber's frame
 * holds besides the message itself is only its subscription id, the destination as it wrote it,
 * its STOMP version (escaping, headers it cannot carry) and the `redelivered` mark: an `ack` header
 * makes a frame its own, so deliveries with an ack id are never shared. Clients name their
 * subscriptions alike (stompjs: `sub-0`, `sub-1`, ...), so most subscribers of a topic get equal
 * bytes, and serialising them once saves the header walk, the escaping and two buffer copies per
 * subscriber.
 *
 * Keyed on the identity of the broker's message (`Delivery.origin`): deliveries of one origin carry
 * the same id, headers and body, and a fan-out hands one message to all its subscribers before the
 * next. So one message's variants are kept, and the next message replaces them; nothing outlives
 * the fan-out that made it by more than one message, and nothing per session is kept.
 */
import type { StompVersion } from '../stomp/frame';

export interface EncodedMessage {
  readonly bytes: Buffer;
  /** Message headers left off because this version cannot carry them (counted per delivery). */
  readonly dropped: number;
}

/** What a subscriber's MESSAGE holds besides the message: its subscription as the client named it. */
export interface SubscriptionNames {
  readonly id: string;
  readonly destination: string;
}

/** More distinct variants of one message than this and the oldest is made again when met. */
const MAX_VARIANTS = 8;

interface Kept {
  readonly version: StompVersion;
  readonly id: string;
  readonly destination: string;
  readonly redelivered: boolean;
  readonly encoded: EncodedMessage;
}

export class SharedMessageFrames {
  private origin: object | undefined;
  private kept: Kept[] = [];

  find(
    origin: object,
    version: StompVersion,
    sub: SubscriptionNames,
    redelivered: boolean,
  ): EncodedMessage | undefined {
    if (origin !== this.origin) return undefined;
    for (const k of this.kept) {
      if (
        k.id === sub.id &&
        k.destination === sub.destination &&
        k.version === version &&
        k.redelivered === redelivered
      ) {
        return k.encoded;
      }
    }
    return undefined;
  }

  keep(
    origin: object,
    version: StompVersion,
    sub: SubscriptionNames,
    redelivered: boolean,
    encoded: EncodedMessage,
  ): void {
    if (origin !== this.origin) {
      this.origin = origin;
      this.kept = [];
    }
    if (this.kept.length >= MAX_VARIANTS) this.kept.shift();
    this.kept.push({ version, id: sub.id, destination: sub.destination, redelivered, encoded });
  }
}

/**
 * One for the process: keyed on message identity, it is right for every service and session in it
 * (tests run several services in one process), and a single slot keeps nothing of anyone's alive.
 */
export const sharedMessageFrames = new SharedMessageFrames();
