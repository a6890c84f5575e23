/**
 * Inbox store figures, one engine per process so RSS is the engine's own:
 *   npx tsx test/bench/inbox-store.ts [pglite-memory|pglite-files|memory|postgres|all]
 * (postgres: the local one, a database of its own, dropped after; run under `flock -s`).
 * Prints one JSON line per engine: startup to first answer, RSS added, single appends/s (one
 * caller awaiting each, and many callers at once: grouped commits), batched appends/s, replay of
 * 1,000 pending (read in pages, each page marked delivered), acks/s (single calls at once, and
 * batched). Every loop is bounded in count.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MemoryInboxStore } from '../../app/inbox/memory-store';
import { PgliteEngine } from '../../app/inbox/pglite';
import { PostgresEngine } from '../../app/inbox/postgres';
import { SqlInboxStore } from '../../app/inbox/sql-store';
import type { InboxAppend, InboxStore } from '../../app/inbox/store';
import { silentLogger } from '../../app/observability/logger';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../support/postgres-databases';

const ENGINES = ['memory', 'pglite-memory', 'pglite-files', 'postgres'] as const;
type Engine = (typeof ENGINES)[number];
const limits = { maxMessages: 100_000, ttlS: 604_800 };
const BODY = Buffer.alloc(200, 'x');

const mb = (): number => Math.round(process.memoryUsage().rss / 1048576);
const rate = (count: number, ms: number): number => Math.round((count * 1000) / ms);
const item = (user: string, id: string): InboxAppend => ({
  user,
  id,
  destination: '/user/queue/inbox',
  headers: { 'content-type': 'text/plain' },
  body: BODY,
});

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

async function open(engine: Engine, cleanup: (() => Promise<void>)[]): Promise<InboxStore> {
  if (engine === 'memory') return new MemoryInboxStore({ limits });
  if (engine === 'postgres') {
    const name = await createTestDatabase();
    cleanup.push(() => dropTestDatabase(name));
    const pg = new PostgresEngine({
      url: testDatabaseUrl(name),
      poolSize: 4,
      connectTimeoutMs: 2000,
      statementTimeoutMs: 10_000,
      applicationName: 'inbox bench',
      logger: silentLogger,
    });
    return new SqlInboxStore({ kind: 'postgres', connect: async () => pg, limits, logger: silentLogger });
  }
  const dataDir = engine === 'pglite-files' ? await mkdtemp(join(tmpdir(), 'inbox-bench-')) : undefined;
  if (dataDir) cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  return new SqlInboxStore({
    kind: 'pglite',
    lazy: true,
    connect: () => PgliteEngine.open({ dataDir, logger: silentLogger }),
    limits,
    logger: silentLogger,
  });
}

async function measure(engine: Engine): Promise<Record<string, unknown>> {
  const cleanup: (() => Promise<void>)[] = [];
  const rssBefore = mb();
  const store = await open(engine, cleanup);
  try {
    const startupMs = await timed(async () => {
      await store.start();
      await store.touchDevice('warm', 'd');
    });
    const rssReady = mb();

    const sequential = 500;
    const sequentialMs = await timed(async () => {
      for (let i = 0; i < sequential; i++) await store.append([item('seq-user', `s${i}`)]);
    });
    const concurrent = 4000;
    const concurrentMs = await timed(() =>
      Promise.all(Array.from({ length: concurrent }, (_, i) => store.append([item(`c${i % 200}`, `c${i}`)]))),
    );
    const batches = 10;
    const batchedMs = await timed(async () => {
      for (let b = 0; b < batches; b++) {
        await store.append(Array.from({ length: 1000 }, (_, i) => item(`b${i % 50}`, `b${b}-${i}`)));
      }
    });

    const replays: number[] = [];
    for (let r = 0; r < 5; r++) {
      const user = `replay${r}`;
      await store.append(Array.from({ length: 1000 }, (_, i) => item(user, `r${i}`)));
      replays.push(
        await timed(async () => {
          let after = 0;
          for (let pages = 0; pages < 10; pages++) {
            const page = await store.read({
              user,
              device: 'd',
              destination: '/user/queue/inbox',
              from: { progress: true },
              after,
            });
            await store.markDelivered(page.messages.map((m) => ({ user, device: 'd', seq: m.seq })));
            if (!page.more) break;
            after = page.messages[page.messages.length - 1].seq;
          }
        }),
      );
    }
    const acksSingle = 4000;
    const acksSingleMs = await timed(() =>
      Promise.all(
        Array.from({ length: acksSingle }, (_, i) =>
          store.ack([{ user: `c${i % 200}`, device: 'd', seq: 1 + Math.floor(i / 200) }]),
        ),
      ),
    );
    const acksBatchedMs = await timed(async () => {
      for (let r = 0; r < 5; r++) {
        await store.ack(
          Array.from({ length: 1000 }, (_, i) => ({ user: `replay${r}`, device: 'd', seq: i + 1 })),
        );
      }
    });
    replays.sort((a, b) => a - b);
    return {
      engine,
      startupMs: Math.round(startupMs),
      rssAddedMb: rssReady - rssBefore,
      rssEndMb: mb(),
      appendsPerSecondOneCaller: rate(sequential, sequentialMs),
      appendsPerSecondConcurrent: rate(concurrent, concurrentMs),
      appendsPerSecondBatched1000: rate(batches * 1000, batchedMs),
      replay1000MsMedian: Math.round(replays[2]),
      replay1000MsMax: Math.round(replays[4]),
      acksPerSecondConcurrentSingles: rate(acksSingle, acksSingleMs),
      acksPerSecondBatched1000: rate(5000, acksBatchedMs),
    };
  } finally {
    await store.stop();
    for (const step of cleanup) await step();
  }
}

async function main(): Promise<void> {
  const which = process.argv[2] ?? 'all';
  if (which === 'all') {
    for (const engine of ENGINES) {
      const child = spawnSync(process.execPath, [...process.execArgv, __filename, engine], {
        stdio: 'inherit',
        timeout: 300_000,
      });
      if (child.status !== 0) throw new Error(`${engine}: exit ${child.status}`);
    }
    return;
  }
  if (!(ENGINES as readonly string[]).includes(which))
    throw new Error(`engine: one of ${ENGINES.join(', ')}, all`);
  console.log(JSON.stringify(await measure(which as Engine)));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
