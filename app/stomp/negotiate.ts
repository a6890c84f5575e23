/**
 * What CONNECT and CONNECTED agree on: the protocol version and the heart-beat intervals.
 * Pure functions over header values, so the session only wires their results to timers.
 */
import { ServiceError } from '../errors';
import type { StompVersion } from './frame';

/** Oldest first, so an index comparison is a version comparison. */
const KNOWN_VERSIONS: readonly StompVersion[] = ['1.0', '1.1', '1.2'];

/**
 * Spec 1.2 §Protocol Negotiation (https://stomp.github.io/stomp-specification-1.2.html#Protocol_Negotiation):
 * a CONNECT without `accept-version` is a 1.0 client; otherwise the highest version both sides
 * support wins. Returns undefined when there is none, and the session answers with an ERROR frame.
 */
export function negotiateVersion(
  acceptVersion: string | undefined,
  supported: readonly StompVersion[],
): StompVersion | undefined {
  const offered = acceptVersion === undefined ? ['1.0'] : acceptVersion.split(',').map((v) => v.trim());
  for (let i = KNOWN_VERSIONS.length - 1; i >= 0; i--) {
    const version = KNOWN_VERSIONS[i];
    if (offered.includes(version) && supported.includes(version)) return version;
  }
  return undefined;
}

export interface HeartbeatAgreement {
  /** How often the server must send something (a frame or an EOL); 0 means never. */
  sendEveryMs: number;
  /** How often the server must hear from the client; 0 means no check. */
  expectEveryMs: number;
  /** The `heart-beat` header value for CONNECTED. */
  header: string;
}

/**
 * Largest interval we accept from a client. Timers past 2^31-1 ms overflow in Node and fire after
 * 1 ms, which would turn a silly heart-beat value into a flood.
 */
const MAX_HEARTBEAT_MS = 2 ** 31 - 1;
const HEARTBEAT_PATTERN = /^\s*([0-9]+)\s*,\s*([0-9]+)\s*$/;

/**
 * Spec 1.2 §Heart-beating (https://stomp.github.io/stomp-specification-1.2.html#Heart-beating):
 * the client offers `cx,cy` (it can send every cx ms, wants to receive every cy ms). The server
 * sends every max(serverSendMs, cy) unless either is 0, and expects the client every
 * max(cx, serverReceiveMs) unless either is 0. A missing header means `0,0`.
 */
export function negotiateHeartbeat(
  clientHeader: string | undefined,
  serverSendMs: number,
  serverReceiveMs: number,
): HeartbeatAgreement {
  let cx = 0;
  let cy = 0;
  if (clientHeader !== undefined) {
    const match = HEARTBEAT_PATTERN.exec(clientHeader);
    if (match === null) {
      throw new ServiceError(
        'bad_frame',
        `heart-beat header ${JSON.stringify(clientHeader.slice(0, 40))} is not two non-negative integers "cx,cy"`,
      );
    }
    cx = Number(match[1]);
    cy = Number(match[2]);
    if (cx > MAX_HEARTBEAT_MS || cy > MAX_HEARTBEAT_MS) {
      throw new ServiceError('bad_frame', `heart-beat values must not exceed ${MAX_HEARTBEAT_MS} ms`);
    }
  }
  return {
    sendEveryMs: serverSendMs !== 0 && cy !== 0 ? Math.max(serverSendMs, cy) : 0,
    expectEveryMs: cx !== 0 && serverReceiveMs !== 0 ? Math.max(cx, serverReceiveMs) : 0,
    header: `${serverSendMs},${serverReceiveMs}`,
  };
}
