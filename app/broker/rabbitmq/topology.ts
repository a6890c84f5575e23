/**
 * Everything the service owns in RabbitMQ, named in one place, and the one function that declares
 * the shared part of it. Per-instance queues are declared by their consumers (rabbitmq-client re-runs
 * a consumer's queue/exchange/binding declarations after every reconnect), but their names are made
 * here so that the management UI reads the same everywhere: `stomp-relay.<instance>.<role>`.
 *
 * Per instance there are exactly three queues, whatever the number of users and topics it serves:
 * `….users` (bound to the user exchange, one binding per user key), `….topics` (bound to
 * amq.topic, one binding per topic name) and `….directory` (the session directory). All three are
 * exclusive to the instance's AMQP connection, so they go with it (amqp-delivery.ts).
 *
 * Exchanges are durable and never auto-deleted: an auto-delete exchange vanishes when its last
 * binding goes, which races with the next instance binding to it. They are cheap and idle when no
 * instance runs. Declaring an existing exchange with other arguments fails (PRECONDITION_FAILED),
 * which is one more reason to keep every declaration in this file.
 */
import { createHash } from 'node:crypto';
import type { Connection, MethodParams, Cmd } from 'rabbitmq-client';

type ExchangeDeclaration = MethodParams[Cmd.ExchangeDeclare];

/** Prefix of every exchange and queue the service creates. */
export const NAME_PREFIX = 'stomp-relay';

export const EXCHANGES = {
  /** Direct: pushes to users; routing key = userRoutingKey(user). */
  user: `${NAME_PREFIX}.user`,
  /** Fanout: session directory announcements between instances. */
  directory: `${NAME_PREFIX}.directory`,
  /** Topic: the bridge between `/app` destinations and backend services. */
  app: `${NAME_PREFIX}.app`,
} as const;

export type ExchangeRole = keyof typeof EXCHANGES;

/** RabbitMQ's own topic exchange: the STOMP plugin's `/topic/<name>` is routing key <name> on it. */
export const TOPIC_EXCHANGE = 'amq.topic';

/** Declarations, shared by declareTopology() and the publishers/consumers that re-declare on reconnect. */
export const EXCHANGE_DECLARATIONS: Readonly<Record<ExchangeRole, ExchangeDeclaration>> = {
  user: { exchange: EXCHANGES.user, type: 'direct', durable: true, autoDelete: false },
  directory: { exchange: EXCHANGES.directory, type: 'fanout', durable: true, autoDelete: false },
  app: { exchange: EXCHANGES.app, type: 'topic', durable: true, autoDelete: false },
};

/** Roles of per-instance queues (the `<role>` part of their names). */
export const QUEUE_ROLES = {
  directory: 'directory',
  users: 'users',
  topics: 'topics',
} as const;

export type QueueRole = (typeof QUEUE_ROLES)[keyof typeof QUEUE_ROLES];

/**
 * Escaped user keys longer than this are replaced by a hash. The key must fit in a routing key
 * (255 bytes) and, as the `<name>` part, in a queue name next to the prefix, instance id and role;
 * 200 leaves that room while any realistic user name stays readable in the management UI.
 */
const MAX_USER_KEY_BYTES = 200;

const KEEP = /^[A-Za-z0-9_-]$/;

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Bytes of one code point: UTF-8, or for a lone surrogate its generalized (WTF-8) form. */
function codePointBytes(ch: string): Iterable<number> {
  const cp = ch.codePointAt(0) ?? 0;
  // Buffer.from() would turn every lone surrogate into U+FFFD, so '\uD800' and '\uDC00' would share
  // a key. Their 3-byte generalized encodings (ED A0..BF xx) are never valid UTF-8, so never clash.
  if (cp >= 0xd800 && cp <= 0xdfff) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return Buffer.from(ch, 'utf8');
}

/** Every character outside `keep` as `%XX` per UTF-8 byte: injective, and ASCII only. */
export function percentEncode(text: string, keep: RegExp): string {
  let out = '';
  for (const ch of text) {
    if (keep.test(ch)) out += ch;
    else for (const byte of codePointBytes(ch)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The routing key for a user's pushes. Injective, and free of anything RabbitMQ could read as
 * structure: `[A-Za-z0-9_-]` stay, every other UTF-8 byte becomes `%XX` (so `.`, `*`, `#` and `%`
 * itself never appear raw, and decoding is unambiguous). A key over 200 bytes becomes `h.` + the
 * SHA-256 of that escaped name (the escaped form, not the raw string, so lone surrogates stay
 * distinct): it cannot collide with an escaped key, because `.` never appears raw in one, and two
 * long names colliding would need a SHA-256 collision.
 */
export function userRoutingKey(user: string): string {
  const out = percentEncode(user, KEEP);
  // Only ASCII is left, so length in characters is length in bytes.
  return out.length > MAX_USER_KEY_BYTES ? `h.${sha256Hex(out)}` : out;
}

/** `stomp-relay.<instanceId>.<role>`: one of the instance's three queues. */
export function instanceQueueName(instanceId: string, role: QueueRole): string {
  return `${NAME_PREFIX}.${instanceId}.${role}`;
}

/** `stomp-relay.<instanceId>.directory`: the instance's exclusive queue on the directory exchange. */
export function directoryQueueName(instanceId: string): string {
  return instanceQueueName(instanceId, QUEUE_ROLES.directory);
}

/** Declares the exchanges every instance shares. Idempotent; run at start. */
export async function declareTopology(connection: Connection): Promise<void> {
  for (const declaration of Object.values(EXCHANGE_DECLARATIONS)) {
    await connection.exchangeDeclare(declaration);
  }
}
