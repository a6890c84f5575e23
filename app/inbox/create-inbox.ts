/**
 * Picks the inbox engine from settings (SPEC): PostgreSQL when INBOX_DATABASE_URL is set; an
 * embedded store when it is not and the broker is embedded too (one instance); otherwise the inbox
 * is off, with a reason the service logs at start and answers with (`inbox_unavailable` on
 * SUBSCRIBE to and push to a durable destination): never a silent downgrade to best effort.
 *
 * The embedded store: with INBOX_DATA_DIR, PGlite in that directory (PostgreSQL's SQL, kept across
 * restarts), opened on first use. Without it, the in-memory store: nothing is kept across restarts
 * either way, and PGlite in memory must run initdb on every start, which takes seconds before its
 * first answer (stalling the event loop in long steps) and hundreds of MB, many times what the
 * service idles at; the in-memory store answers at once, for a few MB, and is held to the same
 * store suite.
 */
import type { Settings } from '../../config/settings';
import { ConfigError } from '../config';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import { DURABLE_PREFIXES, DurableDestinations } from './durable-destinations';
import { MemoryInboxStore } from './memory-store';
import { PgliteEngine } from './pglite';
import { PostgresEngine } from './postgres';
import { SqlInboxStore } from './sql-store';
import type { InboxStore, StoreObserver } from './store';

export type InboxSetup =
  | { enabled: true; store: InboxStore; destinations: DurableDestinations; description: string }
  | { enabled: false; destinations: DurableDestinations; reason: string; error: ServiceError };

export interface InboxDependencies {
  logger: Logger;
  observer?: StoreObserver;
  clock?: () => number;
}

/** The inbox settings a single value's check cannot see; throws ConfigError naming the setting. */
export function checkInboxSettings(settings: Settings): void {
  if (settings.inboxDatabaseUrl && settings.inboxDataDir) {
    throw new ConfigError(
      'INBOX_DATA_DIR',
      'is for the embedded store; with INBOX_DATABASE_URL set the inbox lives in PostgreSQL',
    );
  }
  if (settings.inboxDestinations.length === 0) {
    throw new ConfigError('INBOX_DESTINATIONS', 'needs at least one pattern');
  }
  for (const pattern of settings.inboxDestinations) {
    if (!DURABLE_PREFIXES.some((prefix) => pattern.startsWith(prefix))) {
      throw new ConfigError(
        'INBOX_DESTINATIONS',
        `'${pattern}' is not a user destination pattern (${DURABLE_PREFIXES.join('... or ')}...)`,
      );
    }
  }
}

export function createInbox(settings: Settings, deps: InboxDependencies): InboxSetup {
  checkInboxSettings(settings);
  const destinations = new DurableDestinations(settings.inboxDestinations);
  const limits = { maxMessages: settings.inboxMaxMessages, ttlS: settings.inboxTtlS };
  const common = { limits, logger: deps.logger, observer: deps.observer, clock: deps.clock };
  if (settings.inboxDatabaseUrl) {
    const engine = new PostgresEngine({
      url: settings.inboxDatabaseUrl,
      poolSize: settings.inboxPoolSize,
      connectTimeoutMs: settings.inboxConnectTimeoutMs,
      statementTimeoutMs: settings.inboxStatementTimeoutMs,
      applicationName: `stomp-relay ${settings.instanceId}`,
      logger: deps.logger,
    });
    const store = new SqlInboxStore({ kind: 'postgres', connect: async () => engine, ...common });
    const url = new URL(settings.inboxDatabaseUrl);
    return { enabled: true, store, destinations, description: `PostgreSQL at ${url.host}${url.pathname}` };
  }
  if (!settings.brokerUrl && settings.inboxDataDir) {
    const dataDir = settings.inboxDataDir;
    const store = new SqlInboxStore({
      kind: 'pglite',
      lazy: true,
      connect: () => PgliteEngine.open({ dataDir, logger: deps.logger }),
      ...common,
    });
    return {
      enabled: true,
      store,
      destinations,
      description: `embedded PGlite in ${dataDir}, opened on first use`,
    };
  }
  if (!settings.brokerUrl) {
    const store = new MemoryInboxStore({ limits, observer: deps.observer, clock: deps.clock });
    const description = 'embedded, in memory (lost at exit; INBOX_DATA_DIR keeps it)';
    return { enabled: true, store, destinations, description };
  }
  const reason =
    'the inbox is off: BROKER_URL is set (several instances) and INBOX_DATABASE_URL is not; ' +
    'durable destinations need a shared PostgreSQL';
  return { enabled: false, destinations, reason, error: new ServiceError('inbox_unavailable', reason) };
}
