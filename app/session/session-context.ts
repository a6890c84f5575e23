/** What every session of an instance shares: built once in server.ts, passed to each session. */
import type { Broker } from '../broker/broker';
import type { Settings } from '../../config/settings';
import type { ErrorCode } from '../errors';
import type { TokenVerifier } from '../auth/token-verifier';
import type { DeliveryPolicies } from '../delivery/policies';
import type { Authorizer } from '../destinations/authorization';
import type { Inbox } from '../inbox/inbox';
import type { AppRouter } from '../messaging/app-router';
import type { Logger } from '../observability/logger';
import type { SessionDirectory } from '../presence/directory';
import type { Metrics } from '../observability/metrics';
import type { ExpiryClock } from './expiry-clock';
import type { SessionRegistry } from './session-registry';

export interface SessionContext {
  settings: Settings;
  broker: Broker;
  verifier: TokenVerifier;
  authorizer: Authorizer;
  appRouter: AppRouter;
  /** The durable inbox (off or on): the delivery seam's durable policy is built over it. */
  inbox: Inbox;
  /**
   * The delivery seam (delivery/policies.ts): SUBSCRIBE, SEND and COMMIT of the service's own
   * destinations go through it, whichever policy (durable or best effort) serves them.
   */
  deliveries: DeliveryPolicies;
  metrics: Metrics;
  logger: Logger;
  registry: SessionRegistry;
  /** Who is connected where (app/presence/): the registry lists this instance's sessions there. */
  presence: SessionDirectory;
  /** Ends sessions when their token expires, one timer for all of them. */
  expiry: ExpiryClock;
  /** `server` header of CONNECTED. */
  serverName: string;
  isDraining(): boolean;
}

/** Why a session ended: logged on the close line, one value per cause. */
export type CloseReason =
  | 'client_disconnect'
  | 'transport_closed'
  | 'protocol_error'
  | 'auth_failed'
  | 'forbidden'
  | 'heartbeat_timeout'
  | 'connect_timeout'
  | 'frame_timeout'
  | 'slow_consumer'
  | 'token_expired'
  | 'rate_limited'
  | 'limit_exceeded'
  | 'broker_unavailable'
  | 'draining'
  | 'internal_error';

const CLOSE_REASON: Partial<Record<ErrorCode, CloseReason>> = {
  unauthenticated: 'auth_failed',
  token_expired: 'token_expired',
  forbidden: 'forbidden',
  heartbeat_timeout: 'heartbeat_timeout',
  connect_timeout: 'connect_timeout',
  frame_timeout: 'frame_timeout',
  slow_consumer: 'slow_consumer',
  rate_limited: 'rate_limited',
  limit_exceeded: 'limit_exceeded',
  broker_unavailable: 'broker_unavailable',
  draining: 'draining',
  internal: 'internal_error',
};

/** The close reason of a session ended by an ERROR of this code; other codes are protocol errors. */
export function closeReasonFor(code: ErrorCode): CloseReason {
  return CLOSE_REASON[code] ?? 'protocol_error';
}
