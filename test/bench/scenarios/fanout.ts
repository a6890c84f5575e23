/**
 * Scenario 1 (and the ceiling, 4): N subscribers of one topic (spread round-robin over the
 * system's server processes when it has several), one publisher of 100-byte messages.
 * Two phases on the same connections: latency at a fixed, moderate message rate (every system gets
 * the same offered load), then throughput with the publisher going as fast as its confirmations
 * allow, a bounded number of messages, delivery rate counted over a window in steady state.
 */
import type { ClientPlan } from '../clients';
import {
  awaitDeliveries,
  closeAll,
  collect,
  measureRate,
  ms,
  openClients,
  resetAll,
  type BenchContext,
} from '../harness';
import type { CpuShares } from '../cpu';
import type { AmqpTopicPlan, EmitterPlan, PushVia } from '../publishers';
import type { PumpResult } from '../pump';

export type System = 'product' | 'webstomp' | 'bare-ws' | 'socketio';

export type SubscriberPlan = Omit<ClientPlan, 'localAddress' | 'userPrefix'>;

export interface FanoutTarget {
  system: System;
  /** Server processes (stomp-relay instances, Socket.IO nodes) the subscribers are spread over. */
  processes: number;
  subscriber: SubscriberPlan;
  /** Client connections of the load generator, or a backend's (AMQP to amq.topic, Socket.IO's emitter). */
  publisher: SubscriberPlan | AmqpTopicPlan | EmitterPlan;
  /** Destination the publisher SENDs to, or the room it emits to (ignored by bare ws). */
  destination: string;
  /** Processes whose CPU is reported (server side, clients, load generator). */
  pids: Record<string, number[]>;
}

export interface FanoutResult {
  system: System;
  processes: number;
  subscribers: number;
  connected: number;
  connectMs: number;
  latency: {
    ratePerSec: number;
    messages: number;
    expected: number;
    delivered: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
  };
  throughput: {
    deliveredPerSec: number;
    delivered: number;
    windowMs: number;
    ranDry: boolean;
    offeredMessages: number;
    publishedMessages: number;
    p50Ms: number | null;
    p99Ms: number | null;
    cpu: CpuShares;
  };
  closedEarly: number;
  errors: number;
  errorSamples: string[];
}

export async function runFanout(
  ctx: BenchContext,
  target: FanoutTarget,
  subscribers: number,
): Promise<FanoutResult> {
  const sizes = ctx.sizes.fanout;
  ctx.log(`fan-out: ${target.system} x${target.processes}, ${subscribers} subscribers`);
  const via: PushVia =
    target.publisher.protocol === 'socketio-emitter' || target.publisher.protocol === 'amqp-topic'
      ? target.publisher
      : { ...target.publisher, userPrefix: 'bench-pub-' };
  const opened = await openClients(ctx, { ...target.subscriber, userPrefix: 'bench-sub-' }, subscribers);
  const n = opened.opened;
  const errorSamples = [...opened.errorSamples];
  try {
    // Latency: a fixed rate every system can carry.
    await resetAll(ctx);
    const messages = Math.max(1, Math.round((sizes.latencyRate * sizes.latencyMs) / 1000));
    const paced = await ctx.loadgen.publish({
      via,
      connections: 1,
      destination: target.destination,
      keyCount: 1,
      total: messages,
      ratePerSec: sizes.latencyRate,
      window: 100,
      maxMs: sizes.latencyMs * 3,
    });
    errorSamples.push(...paced.errorSamples);
    await awaitDeliveries(ctx, paced.confirmed * n, 1500, 30_000);
    const slow = await collect(ctx);
    errorSamples.push(...slow.errorSamples);

    // Throughput: as fast as the publisher's confirmations go, bounded in messages and time.
    await resetAll(ctx);
    const offered = Math.max(10, Math.floor(sizes.maxDeliveries / Math.max(1, n)));
    const failedFlood = (err: unknown): PumpResult => ({
      sent: 0,
      confirmed: 0,
      failed: 1,
      ms: 0,
      timedOut: false,
      errorSamples: [err instanceof Error ? err.message : String(err)],
    });
    // Settled right away: it runs while the rate is measured, and may fail meanwhile.
    const flood = ctx.loadgen
      .publish({
        via,
        connections: sizes.publishers,
        destination: target.destination,
        keyCount: 1,
        total: offered,
        ratePerSec: 0,
        window: 100,
        maxMs: 20_000,
      })
      .catch(failedFlood);
    const rate = await measureRate(ctx, target.pids, sizes.windowMs);
    const fast = await collect(ctx);
    errorSamples.push(...fast.errorSamples);
    const published = await flood;
    errorSamples.push(...published.errorSamples);
    const tooShort = rate.delivered === 0 || (rate.ranDry && rate.windowMs < sizes.windowMs / 2);
    if (tooShort && fast.lastAt > fast.firstAt) {
      // The bounded load was delivered before a steady window could be taken: rate over all of it.
      rate.delivered = fast.received;
      rate.windowMs = Math.round(fast.lastAt - fast.firstAt);
      rate.perSec = Math.round((fast.received / (fast.lastAt - fast.firstAt)) * 1000);
    }
    const result: FanoutResult = {
      system: target.system,
      processes: target.processes,
      subscribers,
      connected: n,
      connectMs: opened.ms,
      latency: {
        ratePerSec: sizes.latencyRate,
        messages: paced.confirmed,
        expected: paced.confirmed * n,
        delivered: slow.received,
        p50Ms: ms(slow.latency.percentileMs(0.5)),
        p99Ms: ms(slow.latency.percentileMs(0.99)),
        maxMs: ms(slow.latency.maxUs / 1000),
      },
      throughput: {
        deliveredPerSec: rate.perSec,
        delivered: rate.delivered,
        windowMs: rate.windowMs,
        ranDry: rate.ranDry,
        offeredMessages: offered,
        publishedMessages: published.confirmed,
        p50Ms: ms(fast.latency.percentileMs(0.5)),
        p99Ms: ms(fast.latency.percentileMs(0.99)),
        cpu: rate.cpu,
      },
      closedEarly: slow.closedEarly + fast.closedEarly,
      errors: slow.errors + fast.errors,
      errorSamples: errorSamples.slice(0, 5),
    };
    ctx.log(
      `  latency @${sizes.latencyRate}/s: p50 ${result.latency.p50Ms} ms, p99 ${result.latency.p99Ms} ms ` +
        `(${slow.received}/${result.latency.expected}); throughput ${rate.perSec} deliveries/s ` +
        `(cpu ${JSON.stringify(rate.cpu.processes)}, machine ${rate.cpu.machine} %)`,
    );
    return result;
  } finally {
    await closeAll(ctx);
  }
}
