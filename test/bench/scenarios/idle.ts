/**
 * Scenario 3: connected, subscribed, idle sessions on one fresh instance, in steps (1, 1,000,
 * 10,000, 20,000). At each step: the service's resident memory (/proc/<pid>/status), its V8 heap
 * (/metrics), and its TCP connections to RabbitMQ (STOMP 61613 and AMQP 5672, from `ss`). Every
 * session subscribes to one topic, so the broker side holds one shared subscription whatever the count.
 */
import { readFileSync } from 'node:fs';
import { closeAll, openClients, sleep, type BenchContext } from '../harness';
import { CpuMeter } from '../cpu';
import { rssKiB, tcpConnections, type Spawned } from '../processes';

export interface IdleLevel {
  requested: number;
  sessions: number;
  failed: number;
  openMs: number;
  rssKiB: number;
  heapUsedKiB: number | null;
  stompConnections: number;
  amqpConnections: number;
}

export interface IdleResult {
  levels: IdleLevel[];
  baselineRssKiB: number;
  /** (RSS at the top level - RSS at the first level) / sessions added. */
  perSessionKiB: number | null;
  perSessionHeapKiB: number | null;
  fdLimit: number;
  /** Why the top level is below what was asked, if it is. */
  cappedBy?: string;
  /** Service CPU while holding the top level idle (100 = one core). */
  idleCpuPercent: number;
  poolSize: number;
}

function openFilesLimit(pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function heapUsedKiB(url: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^nodejs_heap_size_used_bytes\s+([\d.e+]+)/m.exec(text);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** RSS once connection set-up garbage is gone: a forced full GC when possible; lower of two reads. */
async function settledRss(service: Spawned, settleMs: number): Promise<number> {
  await sleep(settleMs);
  await service.collectGarbage?.();
  await sleep(settleMs);
  const a = rssKiB(service.pid);
  await sleep(settleMs);
  return Math.min(a, rssKiB(service.pid));
}

export async function runIdle(ctx: BenchContext, service: Spawned, poolSize: number): Promise<IdleResult> {
  const fdLimit = openFilesLimit(service.pid);
  // The service needs a descriptor per session plus its own (listeners, broker, files): keep 100.
  const maxSessions = fdLimit - 100;
  const result: IdleResult = {
    levels: [],
    baselineRssKiB: await settledRss(service, ctx.sizes.idle.settleMs),
    perSessionKiB: null,
    perSessionHeapKiB: null,
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
        result.cappedBy = `the service's open-files limit is ${fdLimit} (this machine's hard limit for an unprivileged raise), so at most ${maxSessions} sessions`;
      }
      ctx.log(`idle: ${level} sessions`);
      const opened = await openClients(
        ctx,
        {
          protocol: 'stomp',
          url: wsUrl,
          userPrefix: 'bench-idle-',
          auth: { kind: 'jwt', secret: ctx.secret },
          subscribe: '/topic/bench-idle',
        },
        level,
        have,
      );
      have = level;
      const rss = await settledRss(service, ctx.sizes.idle.settleMs);
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
      };
      result.levels.push(entry);
      ctx.log(
        `  ${entry.sessions} sessions: RSS ${(rss / 1024).toFixed(1)} MiB, heap ${entry.heapUsedKiB} KiB, ` +
          `to RabbitMQ: ${entry.stompConnections} STOMP + ${entry.amqpConnections} AMQP connections (${opened.ms} ms to open)`,
      );
    }
    const meter = new CpuMeter({ service: [service.pid] });
    await sleep(3 * ctx.sizes.idle.settleMs);
    result.idleCpuPercent = meter.stop().processes.service;
    const first = result.levels[0];
    const top = result.levels.at(-1);
    if (first && top && top.sessions > first.sessions) {
      const added = top.sessions - first.sessions;
      result.perSessionKiB = Math.round(((top.rssKiB - first.rssKiB) / added) * 100) / 100;
      if (top.heapUsedKiB !== null && first.heapUsedKiB !== null) {
        result.perSessionHeapKiB = Math.round(((top.heapUsedKiB - first.heapUsedKiB) / added) * 100) / 100;
      }
    }
  } finally {
    await closeAll(ctx);
  }
  return result;
}
