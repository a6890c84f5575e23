/**
 * How a push is counted (the pushes metric's `outcome`), single or batch item alike: taken,
 * refused for what it is, or refused because the service could not take anything just now (the
 * caller should retry, SPEC "Errors").
 */
import { isServiceError } from '../errors';

export type PushOutcome = 'accepted' | 'rejected' | 'unavailable';

const UNAVAILABLE: ReadonlySet<string> = new Set([
  'broker_unavailable',
  'inbox_unavailable',
  'draining',
  'overloaded',
]);

/** The outcome of a push refused with this error code. */
export function refusedOutcome(code: string): Exclude<PushOutcome, 'accepted'> {
  return UNAVAILABLE.has(code) ? 'unavailable' : 'rejected';
}

/** The outcome of a push that failed with `err`. */
export function failedOutcome(err: unknown): Exclude<PushOutcome, 'accepted'> {
  return isServiceError(err) ? refusedOutcome(err.code) : 'rejected';
}
