/**
 * What the store accepts, checked before anything is queued: one bad item must not fail the commit
 * it would have shared with others. The device id rule is SPEC's (`device-id` on CONNECT).
 */
import { ServiceError } from '../errors';
import type { DeviceSeq, InboxAppend, ReadRequest, UserSeq } from './store';

export const DEFAULT_DEVICE = 'default';
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Longest user name, push id and Idempotency-Key the store keeps (they are index keys). */
const MAX_KEY_CHARS = 256;
export const DEFAULT_PAGE = 500;
export const MAX_PAGE = 1000;

/** The device of a CONNECT frame: its `device-id` header, or `default` when absent. */
export function parseDeviceId(header: string | undefined): string {
  if (header === undefined) return DEFAULT_DEVICE;
  checkDevice(header);
  return header;
}

export function checkDevice(device: string): void {
  if (!DEVICE_ID.test(device)) {
    throw new ServiceError('bad_request', 'device-id must be 1-64 characters of A-Z a-z 0-9 _ -');
  }
}

function checkKey(what: string, value: string): void {
  if (value.length === 0 || value.length > MAX_KEY_CHARS) {
    throw new ServiceError('bad_request', `${what} must be 1-${MAX_KEY_CHARS} characters`);
  }
}

/** A user destination as a client subscribes to it. */
const USER_DESTINATION = /^\/user\/(queue|topic)\/[^/]+$/;

export function checkAppend(item: InboxAppend): void {
  checkKey('user', item.user);
  checkKey('message id', item.id);
  if (!USER_DESTINATION.test(item.destination)) {
    throw new ServiceError(
      'bad_destination',
      'inbox destinations are user destinations as subscribed: /user/queue/<name>',
    );
  }
  if (item.idempotencyKey !== undefined) checkKey('Idempotency-Key', item.idempotencyKey);
}

export function checkDeviceSeq(entry: DeviceSeq): void {
  checkUserSeq(entry);
  checkDevice(entry.device);
}

export function checkUserSeq(entry: UserSeq): void {
  checkKey('user', entry.user);
  checkSeq(entry.seq);
}

export function checkUser(user: string): void {
  checkKey('user', user);
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new ServiceError('bad_request', `inbox-seq must be a whole number >= 0, not ${seq}`);
  }
}

/** Above every seq: a read without `before` has no upper bound. */
const NO_BOUND = Number.MAX_SAFE_INTEGER;

export function checkRead(request: ReadRequest): {
  after: number;
  before: number;
  limit: number;
  since?: number;
} {
  checkKey('user', request.user);
  checkDevice(request.device);
  let since: number | undefined;
  if ('since' in request.from) {
    checkSeq(request.from.since);
    since = request.from.since;
  }
  const after = Math.max(request.after ?? 0, since ?? 0);
  checkSeq(after);
  const before = request.before ?? NO_BOUND;
  checkSeq(before);
  const limit = request.limit ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new ServiceError('bad_request', `an inbox page holds 1-${MAX_PAGE} messages`);
  }
  return { after, before, limit, since };
}
