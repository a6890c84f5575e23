/**
 * Scenario 3 for the Socket.IO peer: the idle run's steps, each client its own user in its own
 * `user:<name>` room, spread round-robin over the nodes. At each step: the nodes' resident memory
 * (summed, after a forced full GC in each) and Redis's memory (INFO used_memory, and its process's
 * RSS): rooms are local to a node, so Redis should hold nothing per connection.
 */
import { CpuMeter } from '../cpu';
import { closeAll, openClients, sleep, type BenchContext } from '../harness';
import { openFilesLimit, rssKiB, type Spawned } from '../processes';
import { redisMemoryKiB } from '../redis-info';
import { settledRss } from './idle';

export interface PeerIdleLevel {
  requested: number;
  sessions: number;
  failed: number;
  openMs: number;
  /** All nodes together. */
  rssKiB: number;
  redisMemKiB: number | null;
  redisRssKiB: number | null;
}

export interface PeerIdleResult {
  nodes: number;
  levels: PeerIdleLevel[];
  baselineRssKiB: number;
  perSessionKiB: number | null;
  redisPerSessionKiB: number | null;
  /** Nodes' CPU while holding the top level idle, added up (100 = one core). */
  idleCpuPercent: number;
  cappedBy?: string;
}

export async function runPeerIdle(
  ctx: BenchContext,
  nodes: Spawned[],
  redisUrl: string,
  redisPid: number | undefined,
): Promise<PeerIdleResult> {
  const settle = ctx.sizes.idle.settleMs;
  const settledAll = async (): Promise<number> =>
    (await Promise.all(nodes.map((n) => settledRss(n, settle)))).reduce((a, b) => a + b, 0);
  const redisRss = (): number | null => (redisPid === undefined ? null : rssKiB(redisPid));
  const maxSessions = nodes.reduce((a, n) => a + openFilesLimit(n.pid) - 100, 0);
  const result: PeerIdleResult = {
    nodes: nodes.length,
    levels: [],
    baselineRssKiB: await settledAll(),
    perSessionKiB: null,
    redisPerSessionKiB: null,
    idleCpuPercent: 0,
  };
  let have = 0;
  try {
    for (const requested of ctx.sizes.idle.levels) {
      const level = Math.min(requested, maxSessions);
      if (level < requested)
        result.cappedBy = `the nodes' open-files limits allow ${maxSessions} connections`;
      ctx.log(`idle: socket.io x${nodes.length}, ${level} connections, each in its own user room`);
      const opened = await openClients(
        ctx,
        {
          protocol: 'socketio',
          url: nodes[0].url,
          instances: nodes.map((n) => n.url),
          userPrefix: 'bench-idle-',
          auth: { kind: 'jwt', secret: ctx.secret },
          subscribe: 'user:{u}',
        },
        level,
        have,
        { concurrency: ctx.sizes.idle.concurrency },
      );
      have = level;
      const entry: PeerIdleLevel = {
        requested,
        sessions: (result.levels.at(-1)?.sessions ?? 0) + opened.opened,
        failed: opened.failed,
        openMs: opened.ms,
        rssKiB: await settledAll(),
        redisMemKiB: await redisMemoryKiB(redisUrl),
        redisRssKiB: redisRss(),
      };
      result.levels.push(entry);
      if (opened.notAttempted > 0 || opened.failed > 0) {
        result.cappedBy =
          `at ${requested}: ${opened.failed} failed (${opened.errorSamples[0] ?? '-'}), ${opened.notAttempted} not tried ` +
          `(opening stopped after ${Math.round(opened.ms / 1000)} s)`;
      }
      ctx.log(
        `  ${entry.sessions} connections (${opened.ms} ms to open): nodes' RSS ${(entry.rssKiB / 1024).toFixed(1)} MiB, ` +
          `Redis used_memory ${entry.redisMemKiB} KiB`,
      );
      if (opened.notAttempted > 0) break;
    }
    const meter = new CpuMeter({ nodes: nodes.map((n) => n.pid) });
    await sleep(3 * settle);
    result.idleCpuPercent = meter.stop().processes.nodes;
    const first = result.levels[0];
    const top = result.levels.at(-1);
    if (first && top && top.sessions > first.sessions) {
      const added = top.sessions - first.sessions;
      result.perSessionKiB = Math.round(((top.rssKiB - first.rssKiB) / added) * 100) / 100;
      if (top.redisMemKiB !== null && first.redisMemKiB !== null)
        result.redisPerSessionKiB = Math.round(((top.redisMemKiB - first.redisMemKiB) / added) * 1000) / 1000;
    }
  } finally {
    await closeAll(ctx);
  }
  return result;
}
