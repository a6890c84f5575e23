/**
 * Where the store suite's stores live, one fixture per engine. A *place* is one database: a
 * PostgreSQL database made for the run (several stores may use it at once, as several service
 * instances do), or one PGlite (in memory, or in a temp directory, which survives reopening).
 *
 * PGlite costs seconds and hundreds of MB per instance, so a fixture keeps one PGlite per place
 * for the whole suite and gives each test's stores that engine (stopping a store leaves it open);
 * tests keep apart by unique user names. reopen() closes a place's engine as an exiting process
 * would, so the next store opens the data again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

import type { SqlEngine } from '../../app/inbox/engine';
import { MemoryInboxData, MemoryInboxStore } from '../../app/inbox/memory-store';
import { PgliteEngine } from '../../app/inbox/pglite';
import { PostgresEngine } from '../../app/inbox/postgres';
import { SqlInboxStore, type InboxLimits } from '../../app/inbox/sql-store';
import type { InboxStore, StoreObserver } from '../../app/inbox/store';
import { silentLogger } from '../../app/observability/logger';
import {
  createTestDatabase,
  dropTestDatabase,
  leftTestDatabases,
  testDatabaseUrl,
} from './postgres-databases';

export interface OpenOptions {
  limits?: Partial<InboxLimits>;
  clock?: () => number;
  observer?: StoreObserver;
  maxQueued?: number;
}

export const DEFAULT_LIMITS: InboxLimits = { maxMessages: 1000, ttlS: 604_800 };

export interface StorePlace {
  readonly label: string;
}

export interface StoreFixture {
  readonly name: string;
  /** Several stores can use one place at once (instances sharing a database). */
  readonly shared: boolean;
  /** Data survives reopen(). */
  readonly persistent: boolean;
  /** A SQL engine: inspect() and migrations apply. */
  readonly sql: boolean;
  setUp(): Promise<void>;
  /** Drops every place it made; rejects if one is left behind. */
  tearDown(): Promise<void>;
  /** The suite's place, made in setUp(). */
  readonly main: StorePlace;
  /** An empty place of its own (shared fixtures only). */
  newPlace(): Promise<StorePlace>;
  open(place: StorePlace, options?: OpenOptions): Promise<InboxStore>;
  /** Closes the place's engine, as if the process ended (persistent fixtures keep the data). */
  reopen(place: StorePlace): Promise<void>;
  /** Runs SQL on the place directly (to look at the schema). */
  inspect(place: StorePlace, sql: string): Promise<Record<string, unknown>[]>;
}

const limitsOf = (options: OpenOptions): InboxLimits => ({ ...DEFAULT_LIMITS, ...options.limits });

/** An engine whose close() does nothing: the fixture closes the real one. */
function borrowed(engine: SqlEngine): SqlEngine {
  return {
    kind: engine.kind,
    query: (sql, params) => engine.query(sql, params),
    exec: (script) => engine.exec(script),
    transaction: (work) => engine.transaction(work),
    close: async () => undefined,
  };
}

interface PglitePlace extends StorePlace {
  dataDir?: string;
  engine?: Promise<PgliteEngine>;
}

export function pgliteFixture(storage: 'memory' | 'files'): StoreFixture {
  let main: PglitePlace | undefined;
  const engineOf = (place: PglitePlace): Promise<PgliteEngine> =>
    (place.engine ??= PgliteEngine.open({ dataDir: place.dataDir, logger: silentLogger }));
  return {
    name: `PGlite (${storage === 'memory' ? 'in memory' : 'file-backed'})`,
    shared: false,
    persistent: storage === 'files',
    sql: true,
    async setUp() {
      const dataDir = storage === 'files' ? await mkdtemp(join(tmpdir(), 'stomp-relay-inbox-')) : undefined;
      main = { label: dataDir ?? 'memory', dataDir };
      await engineOf(main);
    },
    async tearDown() {
      if (!main) return;
      await (await main.engine?.catch(() => undefined))?.close();
      if (main.dataDir) await rm(main.dataDir, { recursive: true, force: true });
      main = undefined;
    },
    get main(): StorePlace {
      if (!main) throw new Error('setUp() first');
      return main;
    },
    async newPlace(): Promise<StorePlace> {
      throw new Error('PGlite is one process: one store per place');
    },
    async open(place, options = {}) {
      const engine = await engineOf(place as PglitePlace);
      return new SqlInboxStore({
        kind: 'pglite',
        connect: async () => borrowed(engine),
        limits: limitsOf(options),
        clock: options.clock,
        observer: options.observer,
        maxQueued: options.maxQueued,
        logger: silentLogger,
      });
    },
    async reopen(place) {
      const pglite = place as PglitePlace;
      const engine = await pglite.engine;
      pglite.engine = undefined;
      await engine?.close();
    },
    async inspect(place, sql) {
      return (await engineOf(place as PglitePlace)).query(sql);
    },
  };
}

interface PostgresPlace extends StorePlace {
  url: string;
}

export function postgresFixture(): StoreFixture {
  const places: PostgresPlace[] = [];
  let before: Set<string>;
  const makePlace = async (): Promise<PostgresPlace> => {
    const name = await createTestDatabase();
    const place = { label: name, url: testDatabaseUrl(name) };
    places.push(place);
    return place;
  };
  return {
    name: 'PostgreSQL',
    shared: true,
    persistent: true,
    sql: true,
    async setUp() {
      before = new Set(await leftTestDatabases());
      await makePlace();
    },
    async tearDown() {
      for (const place of places.splice(0)) await dropTestDatabase(place.label);
      const left = (await leftTestDatabases()).filter((name) => !before.has(name));
      if (left.length > 0) throw new Error(`test databases left behind: ${left.join(', ')}`);
    },
    get main(): StorePlace {
      if (places.length === 0) throw new Error('setUp() first');
      return places[0];
    },
    newPlace: makePlace,
    async open(place, options = {}) {
      const engine = new PostgresEngine({
        url: (place as PostgresPlace).url,
        poolSize: 4,
        connectTimeoutMs: 2000,
        statementTimeoutMs: 10_000,
        applicationName: 'stomp-relay store suite',
        logger: silentLogger,
      });
      return new SqlInboxStore({
        kind: 'postgres',
        connect: async () => engine,
        limits: limitsOf(options),
        clock: options.clock,
        observer: options.observer,
        maxQueued: options.maxQueued,
        logger: silentLogger,
      });
    },
    async reopen() {
      // Every store has its own pool, closed when the store stops: nothing is held between them.
    },
    async inspect(place, sql) {
      const client = new pg.Client({ connectionString: (place as PostgresPlace).url });
      await client.connect();
      try {
        return (await client.query<Record<string, unknown>>(sql)).rows;
      } finally {
        await client.end();
      }
    },
  };
}

interface MemoryPlace extends StorePlace {
  data: MemoryInboxData;
}

/** The in-memory store: a place is one MemoryInboxData, which several stores may share. */
export function memoryFixture(): StoreFixture {
  let main: MemoryPlace | undefined;
  return {
    name: 'in memory (no SQL)',
    shared: true,
    persistent: false,
    sql: false,
    async setUp() {
      main = { label: 'memory', data: new MemoryInboxData() };
    },
    async tearDown() {
      main = undefined;
    },
    get main(): StorePlace {
      if (!main) throw new Error('setUp() first');
      return main;
    },
    async newPlace() {
      return { label: 'memory', data: new MemoryInboxData() };
    },
    async open(place, options = {}) {
      return new MemoryInboxStore({
        limits: limitsOf(options),
        clock: options.clock,
        observer: options.observer,
        data: (place as MemoryPlace).data,
      });
    },
    async reopen(place) {
      (place as MemoryPlace).data = new MemoryInboxData();
    },
    async inspect() {
      throw new Error('no SQL in the memory store');
    },
  };
}
