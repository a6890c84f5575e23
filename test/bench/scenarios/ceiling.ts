/**
 * The physical ceiling of one-to-one traffic here: RabbitMQ alone, no relay. A publisher with
 * confirms (the load generator) sends the one-to-one run's pushes over its user keys to a direct
 * exchange; one consumer (a client worker, one connection, one channel) takes them from one queue
 * bound once per key, with acks and without, and from one queue per key. What the relay's best
 * one-to-one path and REST batch pushes are held against (report.ts targets).
 */
import type { CeilingConsumerArgs } from '../amqp-ceiling';
import { CpuMeter, type CpuShares } from '../cpu';
import { awaitDeliveries, closeAll, collect, ms, resetAll, type BenchContext } from '../harness';
import { nowMs } from '../payload';

export interface CeilingVariant {
  topology: CeilingConsumerArgs['topology'];
  ack: boolean;
}

export const CEILING_VARIANTS: CeilingVariant[] = [
  { topology: 'one-queue', ack: true },
  { topology: 'one-queue', ack: false },
  { topology: 'queue-per-key', ack: true },
];

export interface CeilingResult extends CeilingVariant {
  keys: number;
  pushes: number;
  confirmed: number;
  delivered: number;
  deliveredPerSec: number;
  ms: number;
  p50Ms: number | null;
  p99Ms: number | null;
  cpu: CpuShares;
  errors: number;
  errorSamples: string[];
}

/** The exchange the ceiling runs declare (and delete after each variant). */
const EXCHANGE = 'stomp-bench.ceiling';
/** Unacknowledged deliveries the acking consumer may hold: the one-to-one window. */
const PREFETCH = 200;

export async function runCeiling(
  ctx: BenchContext,
  amqpUrl: string,
  pids: Record<string, number[]>,
): Promise<CeilingResult[]> {
  const { users, pushes, window } = ctx.sizes.oneToOne;
  const consumer = ctx.workers[0];
  const results: CeilingResult[] = [];
  for (const variant of CEILING_VARIANTS) {
    ctx.log(`ceiling: bare AMQP, ${variant.topology}, ${variant.ack ? 'acks' : 'no acks'}, ${users} keys`);
    try {
      await consumer.consumeCeiling({
        url: amqpUrl,
        exchange: EXCHANGE,
        keyPrefix: 'u',
        keyCount: users,
        prefetch: PREFETCH,
        ...variant,
      });
      await resetAll(ctx);
      const meter = new CpuMeter(pids);
      const started = nowMs();
      const flood = await ctx.loadgen.publish({
        via: { protocol: 'amqp-bare', url: amqpUrl, exchange: EXCHANGE, keyPrefix: 'u' },
        connections: 1,
        destination: '',
        keyCount: users,
        total: pushes,
        ratePerSec: 0,
        window,
        maxMs: 60_000,
      });
      await awaitDeliveries(ctx, flood.confirmed, 2000, 30_000);
      const cpu = meter.stop();
      const got = await collect(ctx);
      const elapsedMs = Math.max(1, got.lastAt - started);
      const result: CeilingResult = {
        ...variant,
        keys: users,
        pushes: flood.sent,
        confirmed: flood.confirmed,
        delivered: got.received,
        deliveredPerSec: Math.round((got.received / elapsedMs) * 1000),
        ms: Math.round(elapsedMs),
        p50Ms: ms(got.latency.percentileMs(0.5)),
        p99Ms: ms(got.latency.percentileMs(0.99)),
        cpu,
        errors: flood.failed + got.errors,
        errorSamples: [...flood.errorSamples, ...got.errorSamples].slice(0, 5),
      };
      ctx.log(
        `  ${result.deliveredPerSec} deliveries/s (${got.received}/${flood.sent}), p99 ${result.p99Ms} ms ` +
          `(cpu ${JSON.stringify(cpu.processes)}, machine ${cpu.machine} %)`,
      );
      results.push(result);
    } finally {
      await closeAll(ctx);
    }
  }
  return results;
}
