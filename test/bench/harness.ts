/**
 * What every scenario shares: the sizes of this run, the load processes, and the moves a scenario
 * is made of (open N clients spread over the workers, reset and collect their statistics, measure a
 * delivery rate over a window, close everything).
 */
import type { ClientPlan } from './clients';
import { CpuMeter, type CpuShares } from './cpu';
import { Histogram } from './histogram';
import type { PhaseWindow } from './stats';
import type { LoadWorker } from './workers';

export interface BenchSizes {
  fanout: {
    /** Subscribers of the product's topic. */
    subscribers: number;
    /** The count compared with Web-STOMP direct (bounded by what RabbitMQ can hold). */
    compareSubscribers: number;
    /** Latency phase: messages per second for latencyMs. */
    latencyRate: number;
    latencyMs: number;
    /** Throughput phase: at most this many deliveries offered (messages x subscribers). */
    maxDeliveries: number;
    windowMs: number;
    /** Publisher connections of the throughput phase (each confirms its own SENDs in order). */
    publishers: number;
  };
  oneToOne: {
    users: number;
    pushes: number;
    window: number;
    latencyRate: number;
    /** The paced phase: `warmupMs` at latencyRate not counted (connections, JIT), then latencyMs counted. */
    warmupMs: number;
    latencyMs: number;
    /** At most this long before each phase for the servers to be idle (settle.ts). */
    settleMaxMs: number;
    /** User items per `POST /api/messages/batch` call. */
    batchSize: number;
  };
  /**
   * Server processes of the multi-process comparisons (stomp-relay instances, Socket.IO nodes);
   * fan-out at `fanoutSubscribers` for the first count, at fanout.subscribers for the others.
   */
  peers: { processCounts: number[]; fanoutSubscribers: number[] };
  /**
   * settleMs: pause before each memory reading (and a third of the idle-CPU window);
   * concurrency: sessions each worker opens at once (the connect storm); brokerStatsMs: how long
   * after a step RabbitMQ's own memory figure is read (the management API refreshes it every 5 s).
   */
  idle: { levels: number[]; settleMs: number; concurrency: number; brokerStatsMs: number };
  /** Item 8: one storm of `sessions` idle sessions with heart-beats, then pushes to one of them. */
  crowd: {
    sessions: number;
    heartbeatMs: number;
    /** Service CPU is read over this window, holding them all. */
    cpuWindowMs: number;
    pushes: number;
    pushRate: number;
    concurrency: number;
    /** Also measure the crowd on one topic when every session of the real case opened. */
    alwaysTopicRow: boolean;
  };
  /** RabbitMQ's cost per binding: cumulative binding counts, binds in flight, wait before reading memory. */
  bindings: { steps: number[]; concurrency: number; statsMs: number };
  workers: number;
}

export const FULL: BenchSizes = {
  fanout: {
    subscribers: 1000,
    compareSubscribers: 600,
    latencyRate: 10,
    latencyMs: 5000,
    maxDeliveries: 1_500_000,
    windowMs: 5000,
    publishers: 4,
  },
  oneToOne: {
    users: 500,
    pushes: 20_000,
    window: 200,
    latencyRate: 1000,
    warmupMs: 1000,
    latencyMs: 6000,
    settleMaxMs: 15_000,
    batchSize: 100,
  },
  peers: { processCounts: [2, 4], fanoutSubscribers: [600, 1000] },
  idle: { levels: [1, 1000, 10_000, 20_000], settleMs: 1000, concurrency: 200, brokerStatsMs: 5500 },
  crowd: {
    sessions: 100_000,
    heartbeatMs: 10_000,
    cpuWindowMs: 20_000,
    pushes: 50,
    pushRate: 10,
    concurrency: 200,
    alwaysTopicRow: false,
  },
  bindings: { steps: [10_000, 50_000, 100_000], concurrency: 100, statsMs: 6_000 },
  workers: 4,
};

export const SMOKE: BenchSizes = {
  fanout: {
    subscribers: 6,
    compareSubscribers: 4,
    latencyRate: 20,
    latencyMs: 300,
    maxDeliveries: 600,
    windowMs: 400,
    publishers: 2,
  },
  oneToOne: {
    users: 5,
    pushes: 100,
    window: 20,
    latencyRate: 100,
    warmupMs: 100,
    latencyMs: 300,
    settleMaxMs: 1000,
    batchSize: 5,
  },
  peers: { processCounts: [2], fanoutSubscribers: [6] },
  idle: { levels: [1, 10], settleMs: 150, concurrency: 10, brokerStatsMs: 0 },
  crowd: {
    sessions: 20,
    heartbeatMs: 500,
    cpuWindowMs: 500,
    pushes: 5,
    pushRate: 20,
    concurrency: 10,
    alwaysTopicRow: true,
  },
  bindings: { steps: [50, 200], concurrency: 10, statsMs: 0 },
  workers: 2,
};

export interface BenchContext {
  root: string;
  sizes: BenchSizes;
  workers: LoadWorker[];
  /** The load generator: publishers and REST callers, in a process of their own. */
  loadgen: LoadWorker;
  secret: string;
  log(message: string): void;
  /** Things a reader of RESULTS.md should know about this run. */
  notes: string[];
}

export interface OpenSummary {
  requested: number;
  opened: number;
  failed: number;
  /** Not tried: the time allowed for opening ran out first. */
  notAttempted: number;
  ms: number;
  errorSamples: string[];
}

export interface OpenOptions {
  /** Clients each worker opens at once (default 50). */
  concurrency?: number;
  /** The workers to spread over (default: ctx.workers). */
  workers?: LoadWorker[];
}

/** Opens clients [from, to) spread evenly over the workers, each from its own source address. */
export async function openClients(
  ctx: BenchContext,
  plan: Omit<ClientPlan, 'localAddress'>,
  to: number,
  from = 0,
  options: OpenOptions = {},
): Promise<OpenSummary> {
  const started = Date.now();
  const n = to - from;
  const workers = options.workers ?? ctx.workers;
  const per = Math.ceil(n / workers.length);
  const results = await Promise.all(
    workers.map((w, i) => {
      const a = from + i * per;
      const b = Math.min(to, a + per);
      if (a >= b) return { opened: 0, failed: 0, notAttempted: 0, ms: 0, errorSamples: [] };
      return w.open({
        plan: { ...plan, localAddress: w.localAddress },
        from: a,
        to: b,
        concurrency: options.concurrency ?? 50,
        timeoutMs: 30_000,
        // Generous (a busy machine opens a few hundred a second) and bounded.
        maxMs: Math.max(60_000, (b - a) * 50),
      });
    }),
  );
  const summary: OpenSummary = {
    requested: n,
    opened: 0,
    failed: 0,
    notAttempted: 0,
    ms: Date.now() - started,
    errorSamples: [],
  };
  for (const r of results) {
    summary.opened += r.opened;
    summary.failed += r.failed;
    summary.notAttempted += r.notAttempted;
    summary.errorSamples.push(...r.errorSamples.slice(0, 2));
  }
  if (summary.failed > 0)
    ctx.log(`  ${summary.failed}/${n} clients failed to open: ${summary.errorSamples[0]}`);
  if (summary.notAttempted > 0)
    ctx.log(`  ${summary.notAttempted}/${n} clients not tried: the time for opening ran out`);
  return summary;
}

export interface Collected {
  received: number;
  /** Sent before the phase began (an earlier phase's stragglers): in no other figure. */
  stale: number;
  /** Received, sent in the phase's warm-up: not in the latency, but in warmupLatency. */
  warmup: number;
  warmupLatency: Histogram;
  firstAt: number;
  lastAt: number;
  errors: number;
  closedEarly: number;
  errorSamples: string[];
  latency: Histogram;
}

/** Starts a phase on every worker; with `window`, only what is sent within it counts (stats.ts). */
export async function resetAll(ctx: BenchContext, window?: PhaseWindow): Promise<void> {
  await Promise.all(ctx.workers.map((w) => w.reset(window)));
}

export async function collect(ctx: BenchContext): Promise<Collected> {
  const all = await Promise.all(ctx.workers.map((w) => w.stats()));
  const latency = new Histogram();
  const warmupLatency = new Histogram();
  const out: Collected = {
    received: 0,
    stale: 0,
    warmup: 0,
    warmupLatency,
    firstAt: 0,
    lastAt: 0,
    errors: 0,
    closedEarly: 0,
    errorSamples: [],
    latency,
  };
  for (const s of all) {
    out.received += s.received;
    out.stale += s.stale;
    out.warmup += s.warmup;
    if (s.firstAt > 0 && (out.firstAt === 0 || s.firstAt < out.firstAt)) out.firstAt = s.firstAt;
    out.lastAt = Math.max(out.lastAt, s.lastAt);
    out.errors += s.errors;
    out.closedEarly += s.closedEarly;
    out.errorSamples.push(...s.errorSamples.slice(0, 2));
    latency.add(s.latency);
    warmupLatency.add(s.warmupLatency);
  }
  return out;
}

export async function closeAll(ctx: BenchContext): Promise<void> {
  await Promise.all(ctx.workers.map((w) => w.close()));
}

async function received(ctx: BenchContext): Promise<number> {
  const counts = await Promise.all(ctx.workers.map((w) => w.count()));
  return counts.reduce((a, c) => a + c.received, 0);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RateWindow {
  perSec: number;
  delivered: number;
  windowMs: number;
  /** Deliveries had stopped (the offered load ran out) before the window was over. */
  ranDry: boolean;
  cpu: CpuShares;
}

/**
 * Delivery rate in steady state: waits for deliveries to start (at most `startWithinMs`), skips
 * `warmupMs`, then counts for `windowMs`, or until deliveries stop for 1 s (the offered load ran
 * out). Measures CPU of `pids` over the same window.
 */
export async function measureRate(
  ctx: BenchContext,
  pids: Record<string, number[]>,
  windowMs: number,
  warmupMs = 500,
  startWithinMs = 15_000,
): Promise<RateWindow> {
  const startBy = Date.now() + startWithinMs;
  while ((await received(ctx)) === 0 && Date.now() < startBy) await sleep(50);
  await sleep(warmupMs);
  const meter = new CpuMeter(pids);
  const t0 = Date.now();
  const c0 = await received(ctx);
  let last = c0;
  let lastChange = Date.now();
  let ranDry = false;
  while (Date.now() - t0 < windowMs) {
    await sleep(100);
    const c = await received(ctx);
    if (c !== last) {
      last = c;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > 1000) {
      ranDry = true;
      break;
    }
  }
  const cpu = meter.stop();
  const elapsed = (ranDry ? lastChange : Date.now()) - t0;
  return {
    perSec: Math.round(((last - c0) / Math.max(1, elapsed)) * 1000),
    delivered: last - c0,
    windowMs: elapsed,
    ranDry,
    cpu,
  };
}

/** Waits until `expected` deliveries arrived or none came for `quietMs` (at most `maxMs`). */
export async function awaitDeliveries(
  ctx: BenchContext,
  expected: number,
  quietMs = 2000,
  maxMs = 60_000,
): Promise<number> {
  const started = Date.now();
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const c = await received(ctx);
    if (c >= expected) return c;
    if (c !== last) {
      last = c;
      lastChange = Date.now();
    }
    if (Date.now() - lastChange > quietMs || Date.now() - started > maxMs) return c;
    await sleep(50);
  }
}

export const ms = (v: number | undefined): number | null =>
  v === undefined ? null : Math.round(v * 100) / 100;
