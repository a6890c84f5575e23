/**
 * Scenario 2: U users, one session each, subscribed to their own destination (spread round-robin
 * over the system's server processes when it has several); pushes spread evenly over them. One set
 * of sessions per system serves several ways of pushing (variants). Per variant: latency at a
 * fixed push rate (the same for every system), then `pushes` as fast as a bounded window of
 * unconfirmed pushes allows (confirmed = the broker took it: 202, RECEIPT, a confirm, Redis's reply).
 * A variant whose way in does not exist yet (a route answering 404) is reported as skipped.
 *
 * Each phase measures only itself: it starts once the servers are idle (settle.ts: the previous
 * variant's flood, or the fan-out part before, may still be draining), counts only deliveries of
 * pushes sent in it (a late one of an earlier phase is `stale`), and the paced phase's percentiles
 * leave out its first `warmupMs` (the load generator opening its connections, first calls through
 * cold code), over `latencyMs` at the paced rate: long enough that a p99 is the 1 % tail of
 * thousands of deliveries, not a handful of them.
 */
import { CpuMeter, type CpuShares } from '../cpu';
import {
  awaitDeliveries,
  closeAll,
  collect,
  ms,
  openClients,
  resetAll,
  type BenchContext,
  type Collected,
} from '../harness';
import { Histogram } from '../histogram';
import { nowMs } from '../payload';
import type { PushVia } from '../publishers';
import type { PumpOptions, PumpResult } from '../pump';
import { settle, type Settled } from '../settle';
import { startStallProbe, type StallFigures } from '../stall-probe';
import type { SubscriberPlan } from './fanout';

export type Pusher =
  /** The load generator pushes (REST calls, AMQP, the emitter, STOMP SENDs on its own connection). */
  | { kind: 'loadgen'; via: PushVia; destination: string }
  /** Each user's own session SENDs; `{i}` is its index. */
  | { kind: 'clients'; destination: string };

export interface OneToOneVariant {
  name: string;
  pusher: Pusher;
  /** Why this variant cannot run here (e.g. its route is not built yet), or null when it can. */
  unavailable?: () => Promise<string | null>;
}

export type OneToOneSystem = 'product' | 'webstomp' | 'socketio';

export interface OneToOneResult {
  system: OneToOneSystem;
  /** Server processes the users are spread over. */
  processes: number;
  variant: string;
  /** Set when the variant did not run: why. */
  skipped?: string;
  users: number;
  connected: number;
  latency: {
    ratePerSec: number;
    pushes: number;
    delivered: number;
    /** Deliveries the percentiles are over: those of pushes sent after the warm-up. */
    measured?: number;
    p50Ms: number | null;
    p99Ms: number | null;
  };
  throughput: {
    pushes: number;
    confirmed: number;
    delivered: number;
    deliveredPerSec: number;
    ms: number;
    p50Ms: number | null;
    p99Ms: number | null;
    cpu: CpuShares;
  };
  errors: number;
  /** Confirmed pushes that did not arrive (paced and flood phases together). */
  undelivered?: number;
  /** Deliveries of an earlier phase's pushes that arrived during this variant's phases (not counted). */
  stale?: number;
  /** The wait before each phase for the servers to be idle (settle.ts). */
  settle?: { paced: Settled; flood: Settled };
  closedEarly: number;
  errorSamples: string[];
  /** REST pushes: answers saying online true / false, over both phases (absent: not told). */
  online?: { yes: number; no: number };
  /** The service's own event-loop delay and GC during the paced phase (product only). */
  stall?: StallFigures;
}

async function push(
  ctx: BenchContext,
  pusher: Pusher,
  users: number,
  options: PumpOptions,
): Promise<PumpResult> {
  if (pusher.kind === 'loadgen') {
    return ctx.loadgen.publish({
      ...options,
      via: pusher.via,
      connections: 4,
      destination: pusher.destination,
      keyCount: users,
    });
  }
  const w = ctx.workers.length;
  const parts = await Promise.all(
    ctx.workers.map((worker) =>
      worker.clientSend({
        ...options,
        total: Math.ceil(options.total / w),
        ratePerSec: options.ratePerSec / w,
        window: Math.max(1, Math.ceil(options.window / w)),
        destination: pusher.destination,
        confirm: true,
      }),
    ),
  );
  return parts.reduce((a, p) => ({
    sent: a.sent + p.sent,
    confirmed: a.confirmed + p.confirmed,
    failed: a.failed + p.failed,
    ms: Math.max(a.ms, p.ms),
    timedOut: a.timedOut || p.timedOut,
    errorSamples: [...a.errorSamples, ...p.errorSamples],
  }));
}

export interface OneToOneSetup {
  system: OneToOneSystem;
  processes: number;
  subscriber: SubscriberPlan;
  variants: OneToOneVariant[];
  /** Processes whose CPU is reported (server side, clients, load generator). */
  pids: Record<string, number[]>;
  /** The instances whose /metrics the stall probe reads (the product's). */
  metricsUrls?: string[];
}

/** The paced phase's latency with its warm-up put back in: what the figure would be without leaving it out. */
function withWarmup(c: Collected): Histogram {
  const all = new Histogram();
  all.add(c.latency.data());
  all.add(c.warmupLatency.data());
  return all;
}

function describeStart(s: Settled): string {
  const busiest = s.busiestAtStart
    ? `${s.busiestAtStart.name} at ${s.busiestAtStart.percent} % at first`
    : 'idle';
  return s.settled ? busiest : `not settled: ${busiest}`;
}

function skippedRow(setup: OneToOneSetup, variant: string, why: string, users: number): OneToOneResult {
  const cpu = { processes: {}, machine: 0 };
  return {
    system: setup.system,
    processes: setup.processes,
    variant,
    skipped: why,
    users,
    connected: 0,
    latency: { ratePerSec: 0, pushes: 0, delivered: 0, p50Ms: null, p99Ms: null },
    throughput: {
      pushes: 0,
      confirmed: 0,
      delivered: 0,
      deliveredPerSec: 0,
      ms: 0,
      p50Ms: null,
      p99Ms: null,
      cpu,
    },
    errors: 0,
    closedEarly: 0,
    errorSamples: [],
  };
}

export async function runOneToOne(ctx: BenchContext, setup: OneToOneSetup): Promise<OneToOneResult[]> {
  const { system, processes, variants, pids } = setup;
  const sizes = ctx.sizes.oneToOne;
  const results: OneToOneResult[] = [];
  const runnable: OneToOneVariant[] = [];
  for (const variant of variants) {
    const why = variant.unavailable ? await variant.unavailable() : null;
    if (why === null) runnable.push(variant);
    else {
      ctx.log(`one-to-one: ${system} x${processes}, ${variant.name} skipped: ${why}`);
      results.push(skippedRow(setup, variant.name, why, sizes.users));
    }
  }
  if (runnable.length === 0) return results;
  ctx.log(`one-to-one: ${system} x${processes}, ${sizes.users} users`);
  const opened = await openClients(ctx, { ...setup.subscriber, userPrefix: 'bench-u' }, sizes.users);
  try {
    for (const variant of runnable) {
      const errorSamples = [...opened.errorSamples];
      // Paced: warm-up (not counted), then latencyMs counted, at the same rate for every system.
      const pacedSettle = await settle(pids, sizes.settleMaxMs);
      const pacedFrom = nowMs();
      await resetAll(ctx, { sentFromMs: pacedFrom, measuredFromMs: pacedFrom + sizes.warmupMs });
      const pacedMs = sizes.warmupMs + sizes.latencyMs;
      const latencyPushes = Math.max(1, Math.round((sizes.latencyRate * pacedMs) / 1000));
      const probe = setup.metricsUrls ? await startStallProbe(setup.metricsUrls) : undefined;
      const paced = await push(ctx, variant.pusher, sizes.users, {
        total: latencyPushes,
        ratePerSec: sizes.latencyRate,
        window: sizes.window,
        maxMs: pacedMs * 3,
      });
      await awaitDeliveries(ctx, paced.confirmed, 1500, 30_000);
      const stall = probe ? await probe() : undefined;
      const slow = await collect(ctx);

      const floodSettle = await settle(pids, sizes.settleMaxMs);
      const started = nowMs();
      await resetAll(ctx, { sentFromMs: started, measuredFromMs: started });
      const meter = new CpuMeter(pids);
      const flood = await push(ctx, variant.pusher, sizes.users, {
        total: sizes.pushes,
        ratePerSec: 0,
        window: sizes.window,
        maxMs: 60_000,
      });
      await awaitDeliveries(ctx, flood.confirmed, 2000, 30_000);
      const cpu = meter.stop();
      const fast = await collect(ctx);
      const elapsedMs = Math.max(1, fast.lastAt - started);
      const stale = slow.stale + fast.stale;
      errorSamples.push(
        ...paced.errorSamples,
        ...flood.errorSamples,
        ...slow.errorSamples,
        ...fast.errorSamples,
      );
      const result: OneToOneResult = {
        system,
        processes,
        variant: variant.name,
        users: sizes.users,
        connected: opened.opened,
        latency: {
          ratePerSec: sizes.latencyRate,
          pushes: paced.confirmed,
          delivered: slow.received,
          measured: slow.latency.count,
          p50Ms: ms(slow.latency.percentileMs(0.5)),
          p99Ms: ms(slow.latency.percentileMs(0.99)),
        },
        throughput: {
          pushes: flood.sent,
          confirmed: flood.confirmed,
          delivered: fast.received,
          deliveredPerSec: Math.round((fast.received / elapsedMs) * 1000),
          ms: Math.round(elapsedMs),
          p50Ms: ms(fast.latency.percentileMs(0.5)),
          p99Ms: ms(fast.latency.percentileMs(0.99)),
          cpu,
        },
        errors: slow.errors + fast.errors + paced.failed + flood.failed,
        undelivered: paced.confirmed - slow.received + (flood.confirmed - fast.received),
        stale,
        settle: { paced: pacedSettle, flood: floodSettle },
        closedEarly: slow.closedEarly + fast.closedEarly,
        errorSamples: errorSamples.slice(0, 5),
        ...(paced.online || flood.online
          ? {
              online: {
                yes: (paced.online?.yes ?? 0) + (flood.online?.yes ?? 0),
                no: (paced.online?.no ?? 0) + (flood.online?.no ?? 0),
              },
            }
          : {}),
        ...(stall ? { stall } : {}),
      };
      ctx.log(
        `  ${variant.name}: settled in ${pacedSettle.ms} ms (${describeStart(pacedSettle)}) and ${floodSettle.ms} ms; ` +
          `warm-up ${slow.warmup} pushes (p99 ${ms(slow.warmupLatency.percentileMs(0.99))} ms, left out; p99 with it ${ms(withWarmup(slow).percentileMs(0.99))} ms), stragglers of earlier phases ${stale}, undelivered ${result.undelivered}`,
      );
      ctx.log(
        `  ${variant.name}: latency @${sizes.latencyRate}/s over ${result.latency.measured} p50 ${result.latency.p50Ms} ms p99 ${result.latency.p99Ms} ms; ` +
          `${result.throughput.deliveredPerSec} deliveries/s (${fast.received}/${flood.sent}), ` +
          `p99 under load ${result.throughput.p99Ms} ms (cpu ${JSON.stringify(cpu.processes)}, machine ${cpu.machine} %)`,
      );
      if (!pacedSettle.settled || !floodSettle.settled)
        ctx.notes.push(
          `one-to-one ${system} x${processes} ${variant.name}: the servers were not idle after ${pacedSettle.ms} / ${floodSettle.ms} ms before its phases (${describeStart(pacedSettle)}); measured anyway.`,
        );
      if (stale > 0)
        ctx.notes.push(
          `one-to-one ${system} x${processes} ${variant.name}: ${stale} deliveries of an earlier phase's pushes arrived during its phases (left out of its figures).`,
        );
      results.push(result);
    }
  } finally {
    await closeAll(ctx);
  }
  // In the order the variants were given, skipped ones in their place.
  return variants.flatMap((v) => results.filter((r) => r.variant === v.name));
}
