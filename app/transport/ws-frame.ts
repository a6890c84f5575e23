/**
 * A WebSocket message built once, header and payload in one buffer, and written as it is to every
 * client it is due to: a fan-out's turn gives each subscriber the same STOMP frames (one encoded
 * MESSAGE shared by all whose bytes are equal, session/shared-frames.ts), so every subscriber's
 * WebSocket message is the same bytes too. Building it once saves the framing and the copy per
 * client, and a single buffer is one socket write where `ws.send` corks the socket for a header and
 * a payload written apart. Socket.IO's broadcast does the same (`wsPreEncodedFrame`, written with
 * the ws Sender's `sendFrame`, as the ws author suggests in websockets/ws#617).
 *
 * Server frames are unmasked (RFC 6455 §5.1); frames are never compressed here (the endpoint turns
 * permessage-deflate off), so the bytes do not depend on the connection.
 */
import { isUtf8 } from 'node:buffer';
import type { WebSocket } from 'ws';

const FIN = 0x80;
const TEXT = 0x1;
const BINARY = 0x2;

/** One final, unmasked WebSocket frame carrying `payload` joined; text when it is valid UTF-8. */
export function webSocketFrame(payload: readonly Buffer[]): Buffer {
  let length = 0;
  for (const part of payload) length += part.length;
  // RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit.
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const wire = Buffer.allocUnsafe(headerLength + length);
  let at = headerLength;
  for (const part of payload) at += part.copy(wire, at);
  // STOMP is text-framed unless a body is binary; stompjs accepts both, text is cheaper for it.
  wire[0] = FIN | (isUtf8(wire.subarray(headerLength)) ? TEXT : BINARY);
  if (headerLength === 2) {
    wire[1] = length;
  } else if (headerLength === 4) {
    wire[1] = 126;
    wire.writeUInt16BE(length, 2);
  } else {
    wire[1] = 127;
    wire.writeUInt32BE(0, 2);
    wire.writeUIntBE(length, 4, 6);
  }
  return wire;
}

/** ws's Sender as Socket.IO uses it: `sendFrame` writes framed bytes in order with the rest. */
interface FrameSender {
  sendFrame(list: Buffer[], cb?: (err?: Error) => void): void;
}

/**
 * The sender under `ws`, when it can take a pre-built frame now: `sendFrame` exists (a ws internal,
 * checked each time rather than assumed), and nothing waits in the sender's own queue, which only
 * compression or a Blob fills (state 0: not busy), so the frame cannot overtake anything.
 */
export function frameSender(ws: WebSocket): FrameSender | undefined {
  const sender = (ws as unknown as { _sender?: { sendFrame?: unknown; _state?: unknown } })._sender;
  if (!sender || typeof sender.sendFrame !== 'function' || sender._state !== 0) return undefined;
  return sender as FrameSender;
}

/**
 * The last WebSocket frame built and the STOMP frames it holds. Clients of one fan-out flush one
 * after another in the same turn with the same buffers (the same objects, never changed after
 * they were written), so comparing identities finds the frame already built. `build` makes the
 * frame from the STOMP frames: as they are (/stomp), or in a transport's own framing (SockJS).
 */
export class SharedWebSocketFrame {
  private payload: readonly Buffer[] = [];
  private wire: Buffer | undefined;

  constructor(private readonly build: (payload: readonly Buffer[]) => Buffer = webSocketFrame) {}

  frameFor(payload: readonly Buffer[]): Buffer {
    if (this.wire === undefined || !sameBuffers(payload, this.payload)) {
      this.wire = this.build(payload);
      this.payload = payload;
    }
    return this.wire;
  }
}

function sameBuffers(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
