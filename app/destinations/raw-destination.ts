/**
 * Raw broker destinations: RabbitMQ's own `/amq/queue/<queue>` and `/exchange/<exchange>[/<key>]`,
 * for a client an operator trusts with queues and exchanges that AMQP systems use (SPEC: refused
 * "unless explicitly allowed in config"). They exist only where the authorization file allows them
 * (authorization.ts: only a rule spelled with the raw prefix can) and only on the RabbitMQ relay.
 *
 * Parsed as strictly as destination.ts parses the service's own destinations, and one more rule:
 * nothing named `stomp-relay.…` (the service's exchanges and queues: the user exchange, every
 * instance's users/topics/directory queues, client queues) and no `amq.` queue has a raw spelling,
 * so no allowance, however wide its pattern, reaches another user's `/user` destinations or the
 * service's internals.
 */
import { ServiceError } from '../errors';
import { printable } from './destination';

export type RawTarget =
  /** An existing queue, consumed or sent to through the default exchange. */
  | { kind: 'amq-queue'; queue: string }
  /** An exchange; `key` is the routing key on SEND, the binding pattern on SUBSCRIBE. */
  | { kind: 'exchange'; exchange: string; key: string };

export const RAW_PREFIXES = ['/amq/queue/', '/exchange/'] as const;

/** The service's own names (app/broker/rabbitmq/topology.ts NAME_PREFIX). */
const RESERVED_PREFIX = 'stomp-relay';

/** Queue and exchange names: the characters destination.ts allows in names. */
const NAME = /^[A-Za-z0-9_\-.:@]{1,200}$/;
/** Routing keys and binding patterns: words of NAME characters, and `*` / `#` words on SUBSCRIBE. */
const KEY_WORD = /^[A-Za-z0-9_\-:@]{1,200}$/;

export function isRawSpelling(destination: string): boolean {
  return RAW_PREFIXES.some((prefix) => destination.startsWith(prefix));
}

function refuse(destination: string, why: string): ServiceError {
  return new ServiceError(
    'bad_destination',
    `destination '${printable(destination)}' is not allowed: ${why}`,
  );
}

function checkName(destination: string, name: string, what: string): string {
  if (!NAME.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    throw refuse(destination, `${what} names use letters, digits and _ - . : @`);
  }
  const lower = name.toLowerCase();
  if (lower === RESERVED_PREFIX || lower.startsWith(`${RESERVED_PREFIX}.`)) {
    throw refuse(destination, `${RESERVED_PREFIX}.* names are the service's own`);
  }
  return name;
}

function checkKey(destination: string, key: string, wildcards: boolean): string {
  if (key.length > 255) throw refuse(destination, 'the routing key is longer than 255 characters');
  for (const word of key.split('.')) {
    if (KEY_WORD.test(word)) continue;
    if (wildcards && (word === '*' || word === '#')) continue;
    throw refuse(
      destination,
      wildcards
        ? 'binding patterns are words of letters, digits and _ - : @, or * and #, between dots'
        : 'routing keys are words of letters, digits and _ - : @ between dots (no wildcards)',
    );
  }
  return key;
}

/**
 * Parses a raw destination (isRawSpelling is true). `subscribe`: `*` and `#` are allowed in an
 * exchange's binding pattern; a SEND's routing key has none.
 */
export function parseRawDestination(destination: string, subscribe: boolean): RawTarget {
  if (destination.length > 256) throw refuse(destination, 'it is longer than 256 characters');
  if (destination.startsWith('/amq/queue/')) {
    const queue = checkName(destination, destination.slice('/amq/queue/'.length), 'queue');
    if (queue.toLowerCase().startsWith('amq.')) throw refuse(destination, "amq.* queues are RabbitMQ's own");
    return { kind: 'amq-queue', queue };
  }
  const rest = destination.slice('/exchange/'.length);
  const slash = rest.indexOf('/');
  const exchange = checkName(destination, slash < 0 ? rest : rest.slice(0, slash), 'exchange');
  if (slash < 0) return { kind: 'exchange', exchange, key: '' };
  if (slash === rest.length - 1) throw refuse(destination, 'the routing key after the exchange is empty');
  const key = checkKey(destination, rest.slice(slash + 1), subscribe);
  return { kind: 'exchange', exchange, key };
}

/** The destination as RabbitMQ's STOMP plugin spells it (the same as the client did). */
export function formatRaw(target: RawTarget): string {
  if (target.kind === 'amq-queue') return `/amq/queue/${target.queue}`;
  return target.key === '' ? `/exchange/${target.exchange}` : `/exchange/${target.exchange}/${target.key}`;
}
