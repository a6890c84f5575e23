/**
 * Input checks for the REST API: request bodies are JSON from anyone holding a token, and what they
 * carry ends up in STOMP frames and broker names. Their shape (types, required and unknown fields,
 * sizes) is the schema's in schemas.ts, the one GET /api/openapi.json shows; the checks no schema can
 * say are here: header names through the header policy, printable user names, control characters.
 * Anything not understood is refused with a reason naming it rather than ignored.
 */
import { UNPRINTABLE } from '../auth/token-verifier';
import type { OutgoingMessage } from '../broker/broker';
import { ServiceError } from '../errors';
import { allowedHeaders } from '../messaging/header-policy';
import { schemaCheck } from './schema-check';
import { DevTokenRequest as DevTokenSchema, MAX_USER_NAME, PushRequest as PushSchema } from './schemas';
import { jsonDepthWithin, MAX_JSON_DEPTH } from './json-depth';

function bad(message: string): ServiceError {
  return new ServiceError('bad_request', message);
}

const checkPush = schemaCheck(PushSchema, {
  destination: 'destination must be a string, e.g. "/queue/greetings"',
  body: 'body is required (a string or any JSON value)',
  headers: 'headers must be a JSON object of string values',
});

const checkDevToken = schemaCheck(DevTokenSchema, {
  user: 'user must be a non-empty string',
  scope: 'scope must be a string of space-separated words, e.g. "push"',
});

/** express.json() leaves the body undefined when the request is not JSON at all. */
function jsonBody(body: unknown): unknown {
  if (body === undefined) {
    throw bad('expected a JSON object body (send Content-Type: application/json)');
  }
  return body;
}

/**
 * A user name as REST callers give it (path parameter, dev token request). The same 1..200 limit as
 * a token's `sub`; printable only, since it is shown in logs, headers and broker names.
 */
export function userName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > MAX_USER_NAME) throw bad(`${field} is longer than ${MAX_USER_NAME} characters`);
  if (UNPRINTABLE.test(value)) throw bad(`${field} must not contain spaces or control characters`);
  return value;
}

/**
 * The caller's headers, already of the schema's shape: names as the header policy's `rest` mode
 * allows (400 naming any other), values without control characters, one content-type.
 */
function headersOf(value: Record<string, string>): Record<string, string> {
  // Collected as entries: a caller's '__proto__' stays an ordinary (if odd) header name.
  const headers: [string, string][] = [];
  for (const [name, v] of allowedHeaders(Object.entries(value), 'rest')) {
    if (/\p{Cc}/u.test(v)) throw bad(`header '${name}' must not contain control characters`);
    if (name.toLowerCase() === 'content-type') {
      // One content-type, spelt as STOMP clients read it, whatever case the caller used.
      if (headers.some(([n]) => n === 'content-type')) throw bad('header content-type is given twice');
      headers.push(['content-type', v]);
    } else {
      headers.push([name, v]);
    }
  }
  return Object.fromEntries(headers);
}

export interface PushRequest {
  destination: string;
  message: Omit<OutgoingMessage, 'id'>;
}

/**
 * `{"destination", "body", "headers"}`. A string body is sent as its UTF-8 bytes (text/plain), any
 * other JSON value as its JSON text (application/json); a content-type header from the caller wins.
 */
export function pushRequest(body: unknown): PushRequest {
  const fields = checkPush(jsonBody(body));
  return { destination: fields.destination, message: messageOf(fields) };
}

/** The message of a push body (or of a batch item) whose shape its schema has passed. */
export function messageOf(fields: {
  body: unknown;
  headers?: Record<string, string>;
}): Omit<OutgoingMessage, 'id'> {
  const headers = headersOf(fields.headers ?? {});
  let bytes: Buffer;
  let contentType: string;
  if (typeof fields.body === 'string') {
    bytes = Buffer.from(fields.body, 'utf8');
    contentType = 'text/plain;charset=utf-8';
  } else {
    if (!jsonDepthWithin(fields.body, MAX_JSON_DEPTH)) {
      throw bad(`body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
    }
    bytes = Buffer.from(JSON.stringify(fields.body), 'utf8');
    contentType = 'application/json';
  }
  headers['content-type'] ??= contentType;
  return { headers, body: bytes };
}

export interface DevTokenRequest {
  user: string;
  scope: string;
}

/** `{"user": "alice", "scope": "push"}`; scope is optional, space-separated words. */
export function devTokenRequest(body: unknown): DevTokenRequest {
  const fields = checkDevToken(jsonBody(body));
  return { user: userName(fields.user, 'user'), scope: fields.scope ?? '' };
}
