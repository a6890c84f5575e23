/**
 * Scenario 3: connected, subscribed, idle sessions on one fresh instance, in steps (1, 1,000,
 * 10,000, 20,000), each step opened as one storm (every worker opening `concurrency` at once; the
 * step's time is until every SUBSCRIBE's RECEIPT). Each session is its own user subscribed to
 * `/user/queue/bench-idle`: the real case, which costs the broker whatever the relay's topology
 * makes a user cost. At each step: the service's resident memory and V8 heap, its TCP connections
 * to RabbitMQ, and RabbitMQ's side: the instance's queues (by name prefix), its memory as it
 * reports it (mem_used) and its process's RSS.
 */
import { brokerMemoryKiB, queueCount } from '../rabbit';
import { CpuMeter } from '../cpu';
import { closeAll, openClients, sleep, type BenchContext } from '../harness';
import { openFilesLimit, rssKiB, tcpConnections, type Spawned } from '../processes';
import { brokerReconnects, heapUsedKiB } from '../service-metrics';

export const IDLE_DESTINATION = '/user/queue/bench-idle';

export interface IdleLevel {
  requested: number;
  sessions: number;
  failed: number;
  /** Time to open this step's sessions (connect + SUBSCRIBE + RECEIPT), all at once. */
  openMs: number;
  rssKiB: number;
  heapUsedKiB: number | null;
  stompConnections: number;
  amqpConnections: number;
  /** Queues in RabbitMQ named for this instance. */
  brokerQueues: number | null;
  brokerMemKiB: number | null;
  brokerRssKiB: number | null;
  /** The service's reconnects to RabbitMQ so far (a lost pool connection during the storm). */
  brokerReconnects: number;
}

export interface IdleResult {
  destination: string;
  levels: IdleLevel[];
  baselineRssKiB: number;
  /** (RSS at the top level - RSS at the first level) / sessions added. */
  perSessionKiB: number | null;
  perSessionHeapKiB: number | null;
  /** RabbitMQ's memory growth per connected user, the same way (mem_used, and process RSS). */
  brokerPerUserKiB: number | null;
  brokerRssPerUserKiB: number | null;
  fdLimit: number;
  /** Why the top level is below what was asked, if it is. */
  cappedBy?: string;
  /** Service CPU while holding the top level idle (100 = one core). */
  idleCpuPercent: number;
  poolSize: number;
}

export interface IdleService {
  service: Spawned;
  instanceId: string;
  poolSize: number;
  /** RabbitMQ's process, for its RSS. */
  rabbitPid?: number;
}

/** RSS once connection set-up garbage is gone: a forced full GC when possible; lower of two reads. */
export async function settledRss(server: Spawned, settleMs: number): Promise<number> {
  await sleep(settleMs);
  await server.collectGarbage?.();
  await sleep(settleMs);
  const a = rssKiB(server.pid);
  await sleep(settleMs);
  return Math.min(a, rssKiB(server.pid));
}

const perAdded = (top: number | null, first: number | null, added: number): number | null =>
  top === null || first === null ? null : Math.round(((top - first) / added) * 100) / 100;

function safeRss(pid: number | undefined): number | null {
  try {
    return pid === undefined ? null : rssKiB(pid);
  } catch {
    return null;
  }
}

export async function runIdle(ctx: BenchContext, target: IdleService): Promise<IdleResult> {
  const { service, instanceId, poolSize, rabbitPid } = target;
  const fdLimit = openFilesLimit(service.pid);
  // The service needs a descriptor per session plus its own (listeners, broker, files): keep 100.
  const maxSessions = fdLimit - 100;
  const queuePrefix = `stomp-relay.${instanceId}.`;
  const result: IdleResult = {
    destination: IDLE_DESTINATION,
    levels: [],
    baselineRssKiB: await settledRss(service, ctx.sizes.idle.settleMs),
    perSessionKiB: null,
    perSessionHeapKiB: null,
    brokerPerUserKiB: null,
    brokerRssPerUserKiB: null,
    fdLimit,
    idleCpuPercent: 0,
    poolSize,
  };
  const wsUrl = `ws://127.0.0.1:${service.port}/stomp`;
  let have = 0;
  try {
    for (const requested of ctx.sizes.idle.levels) {
      const level = Math.min(requested, maxSessions);
      if (level < requested) {
        result.cappedBy = `the service's open-files limit is ${fdLimit} (this machine's hard limit), so at most ${maxSessions} sessions`;
      }
      ctx.log(`idle: ${level} sessions, each its own user on ${IDLE_DESTINATION}`);
      const opened = await openClients(
        ctx,
        {
          protocol: 'stomp',
          url: wsUrl,
          userPrefix: 'bench-idle-',
          auth: { kind: 'jwt', secret: ctx.secret },
          subscribe: IDLE_DESTINATION,
        },
        level,
        have,
        { concurrency: ctx.sizes.idle.concurrency },
      );
      have = level;
      const openedAt = Date.now();
      const rss = await settledRss(service, ctx.sizes.idle.settleMs);
      await sleep(ctx.sizes.idle.brokerStatsMs - (Date.now() - openedAt));
      const conns = await tcpConnections(service.pid, [61613, 5672]);
      const entry: IdleLevel = {
        requested,
        sessions: (result.levels.at(-1)?.sessions ?? 0) + opened.opened,
        failed: opened.failed,
        openMs: opened.ms,
        rssKiB: rss,
        heapUsedKiB: await heapUsedKiB(service.url),
        stompConnections: conns[61613],
        amqpConnections: conns[5672],
        brokerQueues: await queueCount(queuePrefix),
        brokerMemKiB: await brokerMemoryKiB(),
        brokerRssKiB: safeRss(rabbitPid),
        brokerReconnects: await brokerReconnects(service.url),
      };
      result.levels.push(entry);
      if (opened.notAttempted > 0 || opened.failed > 0) {
        result.cappedBy =
          `at ${requested}: ${opened.failed} failed (${opened.errorSamples[0] ?? '-'}), ${opened.notAttempted} not tried ` +
          `(opening stopped after ${Math.round(opened.ms / 1000)} s)`;
      }
      ctx.log(
        `  ${entry.sessions} sessions (${opened.ms} ms to open): RSS ${(rss / 1024).toFixed(1)} MiB, heap ${entry.heapUsedKiB} KiB, ` +
          `to RabbitMQ: ${entry.stompConnections} STOMP + ${entry.amqpConnections} AMQP connections; ` +
          `RabbitMQ: ${entry.brokerQueues} queues of this instance, mem_used ${entry.brokerMemKiB} KiB; ` +
          `${entry.brokerReconnects} broker reconnects so far`,
      );
      if (opened.notAttempted > 0) break;
    }
    const meter = new CpuMeter({ service: [service.pid] });
    await sleep(3 * ctx.sizes.idle.settleMs);
    result.idleCpuPercent = meter.stop().processes.service;
    const first = result.levels[0];
    const top = result.levels.at(-1);
    if (first && top && top.sessions > first.sessions) {
      const added = top.sessions - first.sessions;
      result.perSessionKiB = perAdded(top.rssKiB, first.rssKiB, added);
      result.perSessionHeapKiB = perAdded(top.heapUsedKiB, first.heapUsedKiB, added);
      result.brokerPerUserKiB = perAdded(top.brokerMemKiB, first.brokerMemKiB, added);
      result.brokerRssPerUserKiB = perAdded(top.brokerRssKiB, first.brokerRssKiB, added);
    }
  } finally {
    await closeAll(ctx);
  }
  return result;
}
