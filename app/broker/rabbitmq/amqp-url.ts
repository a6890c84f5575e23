/**
 * AMQP_URL: one or more comma-separated `amqp://user:pass@host:port/vhost` addresses, a failover
 * list like BROKER_URL's. On a RabbitMQ cluster every node serves the same exchanges, queues and
 * bindings, so an AMQP connection whose node dies may carry on at any other; with one address it
 * would retry the dead node until it is back (and the instance's session directory, bridge and
 * topology with it).
 *
 * rabbitmq-client takes one set of credentials and one vhost (from `url`) and a list of `hosts` it
 * tries in turn on each (re)connect, so every entry must share scheme, credentials and vhost: a list
 * that mixes them is refused at start rather than connecting to some nodes with the wrong ones.
 */

/** What rabbitmq-client's Connection needs: `url` for credentials and vhost, `hosts` to rotate through. */
export interface AmqpConnectionTarget {
  url: string;
  /** `host:port` of every entry, in order; absent for a single address. */
  hosts?: string[];
}

function parseEntry(entry: string): URL {
  let url: URL;
  try {
    url = new URL(entry.trim());
  } catch {
    throw new Error(`'${blank(entry)}' is not a URL (expected amqp://user:pass@host:port/vhost)`);
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new Error(`'${blank(entry)}' must start with amqp:// or amqps://`);
  }
  if (url.hostname === '') throw new Error(`'${blank(entry)}' has no host`);
  return url;
}

/** The entry with its credentials blanked out: the only form that may appear in a message. */
function blank(entry: string): string {
  return entry.trim().replace(/\/\/[^@/]*@/, '//***@');
}

/** Parses and checks AMQP_URL; throws an Error whose message says which entry is wrong and why. */
export function amqpConnectionTarget(value: string): AmqpConnectionTarget {
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const [firstEntry] = entries;
  if (firstEntry === undefined) throw new Error('it is empty (expected amqp://user:pass@host:port/vhost)');
  const first = parseEntry(firstEntry);
  if (entries.length === 1) return { url: firstEntry };
  const vhost = (u: URL): string => (u.pathname === '' || u.pathname === '/' ? '/' : u.pathname);
  const shared = (u: URL): string => [u.protocol, u.username, u.password, vhost(u)].join(' ');
  const defaultPort = first.protocol === 'amqps:' ? '5671' : '5672';
  const hosts = entries.map((entry) => {
    const url = parseEntry(entry);
    if (shared(url) !== shared(first)) {
      throw new Error(
        `'${blank(entry)}' differs from the first address in scheme, credentials or vhost: every address of the list must share them`,
      );
    }
    // rabbitmq-client splits `host:port` at the first colon.
    if (url.hostname.startsWith('[')) {
      throw new Error(`'${blank(entry)}': an IPv6 address cannot be one of several (use a host name)`);
    }
    return `${url.hostname}:${url.port || defaultPort}`;
  });
  return { url: firstEntry, hosts };
}

/** `amqp://host:port/vhost[,…]` without credentials, for error messages and logs. */
export function amqpLabel(value: string): string {
  return value
    .split(',')
    .filter((e) => e.trim() !== '')
    .map((entry) => {
      try {
        const url = new URL(entry.trim());
        return `${url.protocol}//${url.host}${url.pathname}`;
      } catch {
        return '(unparsable AMQP_URL entry)';
      }
    })
    .join(',');
}
