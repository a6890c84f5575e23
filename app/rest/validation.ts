/**
 * Input checks for the REST API: request bodies are JSON from anyone holding a token, and what they
 * carry ends up in STOMP frames and broker names, so each field is checked for type, size and
 * spelling here, once, and anything not understood (unknown fields included) is refused with a
 * reason naming it rather than ignored.
 */
import { UNPRINTABLE } from '../auth/token-verifier';
import type { OutgoingMessage } from '../broker/broker';
import { printable } from '../destinations/destination';
import { ServiceError } from '../errors';
import { allowedHeaders, MAX_APPLICATION_HEADERS } from '../messaging/header-policy';

export const MAX_HEADER_VALUE = 4096;

function bad(message: string): ServiceError {
  return new ServiceError('bad_request', message);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The parsed JSON body as an object with only `allowed` fields; names every unknown one. */
export function jsonObject(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (body === undefined) {
    throw bad('expected a JSON object body (send Content-Type: application/json)');
  }
  if (!isObject(body)) throw bad('the request body must be a JSON object');
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    const names = unknown.map((k) => `'${printable(k)}'`).join(', ');
    throw bad(`unknown field${unknown.length > 1 ? 's' : ''} ${names} (allowed: ${allowed.join(', ')})`);
  }
  return body;
}

/**
 * A user name as REST callers give it (path parameter, dev token request). The same 1..200 limit as
 * a token's `sub`; printable only, since it is shown in logs, headers and broker names.
 */
export function userName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${field} must be a non-empty string`);
  if (value.length > 200) throw bad(`${field} is longer than 200 characters`);
  if (UNPRINTABLE.test(value)) throw bad(`${field} must not contain spaces or control characters`);
  return value;
}

/** The caller's headers: names as the header policy's `rest` mode allows (400 naming any other). */
function headersOf(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) throw bad('headers must be a JSON object of string values');
  const entries = Object.entries(value);
  if (entries.length > MAX_APPLICATION_HEADERS) {
    throw bad(`at most ${MAX_APPLICATION_HEADERS} headers (got ${entries.length})`);
  }
  // Collected as entries: a caller's '__proto__' stays an ordinary (if odd) header name.
  const headers: [string, string][] = [];
  for (const [name, v] of allowedHeaders(entries, 'rest')) {
    if (typeof v !== 'string') throw bad(`header '${name}' must have a string value`);
    if (v.length > MAX_HEADER_VALUE)
      throw bad(`header '${name}' is longer than ${MAX_HEADER_VALUE} characters`);
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
  const fields = jsonObject(body, ['destination', 'body', 'headers']);
  if (typeof fields.destination !== 'string')
    throw bad('destination must be a string, e.g. "/queue/greetings"');
  if (!('body' in fields)) throw bad('body is required (a string or any JSON value)');
  const headers = headersOf(fields.headers);
  let bytes: Buffer;
  let contentType: string;
  if (typeof fields.body === 'string') {
    bytes = Buffer.from(fields.body, 'utf8');
    contentType = 'text/plain;charset=utf-8';
  } else {
    bytes = Buffer.from(JSON.stringify(fields.body), 'utf8');
    contentType = 'application/json';
  }
  headers['content-type'] ??= contentType;
  return { destination: fields.destination, message: { headers, body: bytes } };
}

export interface DevTokenRequest {
  user: string;
  scope: string;
}

/** `{"user": "alice", "scope": "push"}`; scope is optional, space-separated words. */
export function devTokenRequest(body: unknown): DevTokenRequest {
  const fields = jsonObject(body, ['user', 'scope']);
  const user = userName(fields.user, 'user');
  const scope = fields.scope ?? '';
  if (typeof scope !== 'string' || !/^(|[\x21-\x7e]{1,100}( [\x21-\x7e]{1,100}){0,15})$/.test(scope)) {
    throw bad('scope must be a string of space-separated words, e.g. "push"');
  }
  return { user, scope };
}
