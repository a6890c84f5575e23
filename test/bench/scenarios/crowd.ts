/**
 * Item 8: one instance holding a crowd of idle, subscribed sessions with 10 s heart-beats, all
 * connecting at once, past the ~20,000 an unprivileged file-descriptor limit allows. The bench
 * asks for open files for the service and its load workers (workers.ts raisedFdLimit, as root
 * with CAP_SYS_RESOURCE), spreads the clients over enough workers, each with its own loopback
 * source address, and reports: time to accept them all (connect + SUBSCRIBE + RECEIPT), RSS per
 * session, the service's CPU for heart-beats alone, its broker connections, the instance's queues
 * in RabbitMQ, and the latency of pushes (REST) to one user among them.
 *
 * Row "user-queue": every session its own user on `/user/queue/bench-crowd` (the real case; under
 * a topology with a queue per user that is one RabbitMQ queue per session). Row "topic (fallback)":
 * every session on one topic, run when the first row could not open every session (or always,
 * when asked), so that the service's own cost at that count is measured even where the broker
 * stopped the real case. Each row on a fresh instance.
 */
import { CpuMeter } from '../cpu';
import { awaitDeliveries, closeAll, collect, ms, openClients, resetAll, type BenchContext } from '../harness';
import { mayRaiseHardLimits, openFilesLimit, tcpConnections, type Spawned } from '../processes';
import { queueCount } from '../rabbit';
import { brokerReconnects } from '../service-metrics';
import { DEFAULT_FD_LIMIT, LoadWorker } from '../workers';
import { settledRss } from './idle';

export type CrowdSubscription = 'user-queue' | 'topic';

export interface CrowdRow {
  subscription: CrowdSubscription;
  destination: string;
  requested: number;
  /** What the service's and workers' open-files limits allowed. */
  target: number;
  sessions: number;
  failed: number;
  acceptMs: number;
  baselineRssKiB: number;
  rssKiB: number;
  perSessionKiB: number | null;
  heartbeatMs: number;
  /** Service CPU holding them all, heart-beats only (100 = one core). */
  heartbeatCpuPercent: number;
  stompConnections: number;
  amqpConnections: number;
  brokerQueues: number | null;
  /** The service's reconnects to RabbitMQ during this row. */
  brokerReconnects: number;
  /** Sessions the server closed while they were held. */
  closedEarly: number;
  push: {
    pushes: number;
    delivered: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
  };
  fdLimit: number;
  workers: number;
  cappedBy?: string;
  /** Why not every session opened (the first errors), when some did not. */
  stoppedBy?: string;
}

/** A fresh instance, started with crowdFdLimit() open files asked for. */
export interface CrowdService {
  service: Spawned;
  instanceId: string;
  stop(): Promise<void>;
}

export interface CrowdOptions {
  /** Starts a fresh instance per row: RSS never comes back down once a crowd has left. */
  startService(): Promise<CrowdService>;
  /** Run the topic row even when the user-queue row opened every session. */
  alwaysTopicRow: boolean;
}

/** Clients one worker holds at most: its open files, and the ephemeral ports of one source address. */
const PORTS_PER_SOURCE = 28_000;

const DESTINATIONS: Record<CrowdSubscription, string> = {
  'user-queue': '/user/queue/bench-crowd',
  topic: '/topic/bench-crowd',
};

function fdCapReason(fdLimit: number, wanted: number): string {
  const why = mayRaiseHardLimits()
    ? 'the kernel refused more'
    : 'the bench lacks CAP_SYS_RESOURCE here (root in a container without it), so no process can raise its hard limit';
  return `the service got an open-files limit of ${fdLimit} of the ${wanted} asked for: ${why}`;
}

/** Open files to ask for the service: the sessions and room for its own (never below the default). */
export const crowdFdLimit = (sessions: number): number => Math.max(sessions + 1000, DEFAULT_FD_LIMIT);

async function runRow(
  ctx: BenchContext,
  started: CrowdService,
  subscription: CrowdSubscription,
): Promise<CrowdRow> {
  const sizes = ctx.sizes.crowd;
  const destination = DESTINATIONS[subscription];
  const wanted = crowdFdLimit(sizes.sessions);
  const { service } = started;
  const extra: LoadWorker[] = [];
  try {
    const fdLimit = openFilesLimit(service.pid);
    const perWorker = Math.min(openFilesLimit(ctx.workers[0].pid ?? 0) - 100, PORTS_PER_SOURCE);
    const target = Math.min(sizes.sessions, fdLimit - 100);
    const need = Math.ceil(target / perWorker);
    for (let i = ctx.workers.length; i < need; i++) {
      extra.push(await LoadWorker.start(ctx.sizes.workers + 1 + extra.length, ctx.root));
    }
    const workers = [...ctx.workers, ...extra];
    const crowdCtx: BenchContext = { ...ctx, workers };
    ctx.log(
      `crowd: ${target} sessions on ${destination}, ${sizes.heartbeatMs} ms heart-beats, over ${workers.length} workers`,
    );
    const baselineRssKiB = await settledRss(service, ctx.sizes.idle.settleMs);
    const reconnectsBefore = await brokerReconnects(service.url);
    const storm = await openClients(
      crowdCtx,
      {
        protocol: 'stomp',
        url: `ws://127.0.0.1:${service.port}/stomp`,
        userPrefix: 'bench-crowd-',
        auth: { kind: 'jwt', secret: ctx.secret },
        subscribe: destination,
        heartbeatMs: sizes.heartbeatMs,
      },
      target,
      0,
      { concurrency: sizes.concurrency, workers },
    );
    const rssKiB = await settledRss(service, ctx.sizes.idle.settleMs);
    const conns = await tcpConnections(service.pid, [61613, 5672]);
    const brokerQueues = await queueCount(`stomp-relay.${started.instanceId}.`);
    await resetAll(crowdCtx);
    const meter = new CpuMeter({ service: [service.pid] });
    await new Promise((r) => setTimeout(r, sizes.cpuWindowMs));
    const heartbeatCpuPercent = meter.stop().processes.service;
    const held = await collect(crowdCtx);

    // One more user among them, pushed to over REST by the load generator.
    const probe = await openClients(
      crowdCtx,
      {
        protocol: 'stomp',
        url: `ws://127.0.0.1:${service.port}/stomp`,
        userPrefix: 'bench-crowd-probe-',
        auth: { kind: 'jwt', secret: ctx.secret },
        subscribe: DESTINATIONS['user-queue'],
        heartbeatMs: sizes.heartbeatMs,
      },
      1,
      0,
      { workers: [workers[0]] },
    );
    await resetAll(crowdCtx);
    const pushed = await ctx.loadgen.publish({
      via: {
        protocol: 'rest',
        baseUrls: [service.url],
        secret: ctx.secret,
        userPrefix: 'bench-crowd-probe-',
      },
      connections: 1,
      destination: '/queue/bench-crowd',
      keyCount: 1,
      total: probe.opened > 0 ? sizes.pushes : 0,
      ratePerSec: sizes.pushRate,
      window: 10,
      maxMs: Math.ceil((sizes.pushes / sizes.pushRate) * 1000) * 3,
    });
    await awaitDeliveries(crowdCtx, pushed.confirmed, 1500, 20_000);
    const got = await collect(crowdCtx);
    const row: CrowdRow = {
      subscription,
      destination,
      requested: sizes.sessions,
      target,
      sessions: storm.opened,
      failed: storm.failed,
      acceptMs: storm.ms,
      baselineRssKiB,
      rssKiB,
      perSessionKiB:
        storm.opened > 0 ? Math.round(((rssKiB - baselineRssKiB) / storm.opened) * 100) / 100 : null,
      heartbeatMs: sizes.heartbeatMs,
      heartbeatCpuPercent,
      stompConnections: conns[61613],
      amqpConnections: conns[5672],
      brokerQueues,
      brokerReconnects: (await brokerReconnects(service.url)) - reconnectsBefore,
      closedEarly: held.closedEarly + got.closedEarly,
      push: {
        pushes: pushed.confirmed,
        delivered: got.received,
        p50Ms: ms(got.latency.percentileMs(0.5)),
        p99Ms: ms(got.latency.percentileMs(0.99)),
        maxMs: ms(got.latency.maxUs / 1000),
      },
      fdLimit,
      workers: workers.length,
      cappedBy: target < sizes.sessions ? fdCapReason(fdLimit, wanted) : undefined,
      stoppedBy:
        storm.failed + storm.notAttempted > 0
          ? `${storm.failed} of ${target} did not open (${storm.errorSamples.slice(0, 2).join('; ') || '-'}), ` +
            `${storm.notAttempted} not tried (opening stopped after ${Math.round(storm.ms / 1000)} s)`
          : undefined,
    };
    ctx.log(
      `  ${row.sessions}/${target} sessions in ${row.acceptMs} ms; RSS ${row.perSessionKiB} KiB per session; ` +
        `heart-beats ${heartbeatCpuPercent}% of a core; ${row.stompConnections} STOMP + ${row.amqpConnections} AMQP ` +
        `connections; ${brokerQueues} queues; push p50 ${row.push.p50Ms} ms p99 ${row.push.p99Ms} ms ` +
        `(${got.received}/${pushed.confirmed})`,
    );
    return row;
  } finally {
    await closeAll({ ...ctx, workers: [...ctx.workers, ...extra] });
    for (const w of extra) w.stop();
  }
}

async function rowOnFreshInstance(
  ctx: BenchContext,
  options: CrowdOptions,
  subscription: CrowdSubscription,
): Promise<CrowdRow> {
  const started = await options.startService();
  try {
    return await runRow(ctx, started, subscription);
  } finally {
    await started.stop();
  }
}

export async function runCrowd(ctx: BenchContext, options: CrowdOptions): Promise<CrowdRow[]> {
  const rows = [await rowOnFreshInstance(ctx, options, 'user-queue')];
  if (options.alwaysTopicRow || rows[0].stoppedBy) rows.push(await rowOnFreshInstance(ctx, options, 'topic'));
  return rows;
}
