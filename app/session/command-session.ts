/** The session as the command table (commands.ts) sees it. */
import type { Delivery, TransactionOp } from '../broker/broker';
import type { ServiceError } from '../errors';
import type { Frame, StompVersion } from '../stomp/frame';
import type { SessionInfo } from '../presence/directory';
import type { HeartbeatAgreement } from '../stomp/negotiate';
import type { ConnectionInfo } from '../transport/transport';
import type { CloseReason, SessionContext } from './session-context';
import type { ClientSubscription, SubscriptionTable } from './subscriptions';
import type { TempQueues } from './temp-queues';

/** A STOMP transaction until COMMIT or ABORT: the work for the broker, and the ack tokens to settle. */
export interface OpenTransaction {
  ops: TransactionOp[];
  acks: string[];
}

/**
 * What a command may read and do of its session. StompSession implements it; declared apart from
 * both so the command table depends on no session class and only the session imports the table.
 */
export interface CommandSession {
  readonly id: string;
  readonly ctx: SessionContext;
  readonly socket: { readonly info: ConnectionInfo };
  version: StompVersion;
  user: string;
  /** The CONNECT token's scopes (authorization rules may be for a scope). */
  scopes: readonly string[];
  /** CONNECT's `device-id` (SPEC "The inbox"), `default` when absent. */
  device: string;
  readonly subscriptions: SubscriptionTable;
  readonly transactions: Map<string, OpenTransaction>;
  readonly transactionLimit: number;
  /** Temp queues made by `reply-to: /temp-queue/<name>` (temp-queues.ts). */
  readonly tempQueues: TempQueues;
  supportedVersions(): StompVersion[];
  /** CONNECT succeeded: heart-beats, token expiry and slow-consumer checks start. */
  startConnected(heartbeat: HeartbeatAgreement, expiresAt?: number): void;
  sendFrame(f: Frame): void;
  deliver(sub: ClientSubscription, delivery: Delivery): void;
  info(): SessionInfo;
  close(reason: CloseReason): void;
  /** ERROR with the reason, then close (a subscription the broker ended on its own). */
  fail(error: ServiceError): void;
}
