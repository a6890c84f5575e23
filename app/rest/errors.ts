/**
 * The one place where errors become HTTP answers. Every REST failure is a ServiceError (app/errors.ts)
 * whose code maps to a status here, answered as `{"error": "<code>", "detail": <readable>}`; nothing
 * else in app/rest writes an error status itself. A couple of conditions exist only over HTTP
 * (`not_ready` for /readyz, `not_implemented` for dev tokens without a shared secret), so they are
 * added to the code set here rather than to the service-wide one.
 */
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { printable } from '../destinations/destination';
import { ServiceError, toServiceError, type ErrorCode } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

export type HttpErrorCode = ErrorCode | 'not_ready' | 'not_implemented';

/** A Record, not a switch with a default: a new ErrorCode does not compile until it has a status. */
const STATUS: Readonly<Record<HttpErrorCode, number>> = {
  bad_request: 400,
  bad_destination: 400,
  bad_frame: 400,
  unknown_command: 400,
  not_connected: 400,
  unsupported_version: 400,
  unknown_subscription: 400,
  unknown_transaction: 400,
  duplicate_subscription: 409,
  idempotency_conflict: 409,
  unauthenticated: 401,
  token_expired: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  no_route: 404,
  payload_too_large: 413,
  frame_too_large: 413,
  limit_exceeded: 429,
  rate_limited: 429,
  heartbeat_timeout: 408,
  connect_timeout: 408,
  frame_timeout: 408,
  internal: 500,
  not_implemented: 501,
  broker_unavailable: 503,
  inbox_unavailable: 503,
  draining: 503,
  not_ready: 503,
  overloaded: 503,
  slow_consumer: 503,
};

export function httpStatus(code: HttpErrorCode): number {
  return STATUS[code];
}

/** What a client reads in `detail`: the ServiceError's own detail when it has one, else its reason. */
function detailOf(err: ServiceError): unknown {
  if (err.code === 'internal') return 'internal error'; // the real reason is logged, not shown
  return err.detail ?? err.message;
}

const BEARER_CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="stomp-relay"' } as const;
const RETRY_SOON = { 'Retry-After': '1' } as const;

/**
 * The headers an error answer of `status` carries (the API description documents them from here):
 * a 401 for a bearer-protected resource names the scheme (RFC 6750 §3); a 429 or 503 is a "not now",
 * and says when to try again (RFC 9110 §10.2.3), here or on another instance.
 */
export function errorHeaders(status: number): Readonly<Record<string, string>> {
  if (status === 401) return BEARER_CHALLENGE;
  if (status === 429 || status === 503) return RETRY_SOON;
  return {};
}

/** Writes the error answer; for conditions that are answers rather than failures (/readyz, 501). */
export function sendError(res: Response, code: HttpErrorCode, detail: unknown): void {
  const status = httpStatus(code);
  res.set(errorHeaders(status));
  res.status(status).json({ error: code, detail });
}

/**
 * Errors from express's own layers are http-errors objects with a 4xx `status`: body-parser adds a
 * `type` (see its README, "Errors"), the router raises one for an undecodable URL parameter.
 */
interface HttpLayerError {
  type?: string;
  status: number;
  limit?: number;
}

function isHttpLayerError(err: unknown): err is HttpLayerError {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Record<string, unknown>;
  return typeof e.status === 'number' && (e.type === undefined || typeof e.type === 'string');
}

/** Turns whatever reached the error middleware into a ServiceError a client can be shown. */
export function toHttpError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  if (isHttpLayerError(err)) {
    switch (err.type) {
      case 'entity.parse.failed': {
        const why = err instanceof Error ? err.message : 'unparseable';
        return new ServiceError('bad_request', `request body is not valid JSON: ${why}`, { cause: err });
      }
      case 'entity.too.large':
        return new ServiceError(
          'payload_too_large',
          `request body is larger than the limit of ${err.limit ?? '?'} bytes`,
          { cause: err },
        );
      case 'encoding.unsupported':
      case 'charset.unsupported':
        return new ServiceError(
          'bad_request',
          'request body must be JSON in UTF-8 (identity, gzip or deflate)',
          {
            cause: err,
          },
        );
      case 'request.aborted':
      case 'request.size.invalid':
        return new ServiceError('bad_request', 'request body was cut short', { cause: err });
    }
    if (err.status >= 400 && err.status < 500) {
      const why = err instanceof Error ? err.message : (err.type ?? 'malformed request');
      return new ServiceError('bad_request', `bad request: ${printable(why)}`, { cause: err });
    }
  }
  return toServiceError(err);
}

/**
 * Turns what went wrong into the error to answer with: logs what the service got wrong (500s),
 * what it could not serve (503s) and, at debug, what it refused, and counts every one.
 */
export function reportError(
  deps: { logger: Logger; metrics: Metrics },
  err: unknown,
  request: { method: string; path: string },
): ServiceError {
  const error = toHttpError(err);
  const status = httpStatus(error.code);
  const { method, path } = request;
  if (status === 500) {
    deps.logger.error({ err, code: error.code, method, path }, 'REST request failed');
  } else if (status > 500) {
    deps.logger.warn({ code: error.code, method, path, reason: error.message }, 'REST request not served');
  } else {
    deps.logger.debug({ code: error.code, method, path, reason: error.message }, 'REST request refused');
  }
  deps.metrics.errors.inc({ kind: error.code });
  // Limits are counted where they are hit; for the REST body that is body-parser, ahead of any route.
  if (error.code === 'payload_too_large') deps.metrics.limitsHit.inc({ limit: 'rest_body' });
  return error;
}

/** What a client reads of `error`: its status, headers and `{"error", "detail"}` body. */
export function errorAnswer(error: ServiceError): {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: { error: string; detail: unknown };
} {
  const status = httpStatus(error.code);
  return { status, headers: errorHeaders(status), body: { error: error.code, detail: detailOf(error) } };
}

/** The final handler of a router: reports the error and answers it as JSON. */
export function errorMiddleware(deps: { logger: Logger; metrics: Metrics }): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      // Too late to answer with JSON; let express close the connection.
      deps.logger.warn({ err, method: req.method, path: req.path }, 'error after the answer was sent');
      next(err);
      return;
    }
    const error = reportError(deps, err, { method: req.method, path: req.path });
    sendError(res, error.code, detailOf(error));
  };
}

/** Placed after every route of a router: a JSON 404 instead of express's HTML page. */
export const notFound: RequestHandler = (req, _res, next) => {
  next(
    new ServiceError(
      'not_found',
      `no such endpoint: ${req.method} ${printable(req.originalUrl.split('?')[0])}`,
    ),
  );
};

/**
 * Placed after a path's routes: any other method answers 405 with `Allow` (RFC 9110 §15.5.6), and
 * OPTIONS answers 204 with it. `methods` are the ones routed; HEAD comes with GET, as express
 * answers HEAD from a GET route.
 */
export function methodNotAllowed(methods: readonly string[]): RequestHandler {
  const allowed = [...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'];
  const allow = allowed.join(', ');
  return (req, res, next) => {
    res.set('Allow', allow);
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    const path = printable(req.originalUrl.split('?')[0]);
    next(
      new ServiceError(
        'method_not_allowed',
        `${printable(req.method)} is not allowed on ${path}: use ${methods.join(' or ')}`,
      ),
    );
  };
}
