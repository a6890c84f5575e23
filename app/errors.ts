/**
 * Every failure a user can see is a ServiceError with a short `code` and a reason a person can read.
 * One place maps codes to STOMP (session/) and one to HTTP (rest/errors.ts); nothing else invents
 * its own wording. Modelled on rabbitmq-client's exception.ts: small, string codes, a `cause`.
 */
export type ErrorCode =
  | 'bad_frame'
  | 'frame_too_large'
  | 'unknown_command'
  | 'not_connected'
  | 'unsupported_version'
  | 'unauthenticated'
  | 'token_expired'
  | 'forbidden'
  | 'bad_destination'
  | 'unknown_subscription'
  | 'duplicate_subscription'
  | 'unknown_transaction'
  | 'limit_exceeded'
  | 'rate_limited'
  | 'broker_unavailable'
  | 'no_route'
  | 'draining'
  | 'heartbeat_timeout'
  | 'connect_timeout'
  | 'frame_timeout'
  | 'slow_consumer'
  | 'bad_request'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'overloaded'
  | 'inbox_unavailable'
  | 'idempotency_conflict'
  | 'internal';

export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly detail?: unknown;

  constructor(code: ErrorCode, message: string, options: { detail?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.detail = options.detail;
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof ServiceError;
}

/** Wraps anything thrown into a ServiceError without losing it (kept as `cause`). */
export function toServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ServiceError('internal', `internal error: ${message}`, { cause: err });
}
