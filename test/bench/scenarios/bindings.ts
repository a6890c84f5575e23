/**
 * RabbitMQ's cost per binding, the unit the per-instance topology pays per connected user (one
 * binding of the instance's user queue per user key) and per topic: what the README's sizing table
 * scales RabbitMQ's memory by.
 *
 * One AMQP connection binds one exclusive queue to one direct exchange with N distinct routing keys,
 * `concurrency` binds in flight at a time, in steps; after each step (and a wait for the management
 * API's memory figure, refreshed every 5 s) it reads RabbitMQ's mem_used and the beam's RSS. Then it
 * unbinds them all the same way and deletes the queue and exchange. Bounded: the steps' sizes and a
 * deadline per step. The queue is exclusive, so a crash of the bench leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import { brokerMemoryKiB } from '../rabbit';
import { rssKiB } from '../processes';

export interface BindingsStep {
  bindings: number;
  /** Time to make this step's new bindings, ms. */
  bindMs: number;
  /** New bindings per second in this step. */
  bindsPerS: number;
  memUsedMiB: number | null;
  rssMiB: number | null;
}

export interface BindingsResult {
  concurrency: number;
  steps: BindingsStep[];
  /** Growth of mem_used from no binding to the last step, per binding. */
  perBindingKiB: number | null;
  /** The same for the beam's RSS. */
  perBindingRssKiB: number | null;
  /** Time to remove all of them again, ms. */
  unbindMs: number;
}

export interface BindingsOptions {
  amqpUrl: string;
  /** Cumulative binding counts, ascending. */
  steps: number[];
  concurrency: number;
  /** Wait before each memory reading (the management API refreshes mem_used every 5 s). */
  statsMs: number;
  /** RabbitMQ's beam process, for RSS. */
  rabbitPid?: number;
  log?: (message: string) => void;
}

const STEP_DEADLINE_MS = 120_000;

/** Runs `work(i)` for i in [from, to), `concurrency` at a time; rejects past the deadline. */
async function pipelined(
  from: number,
  to: number,
  concurrency: number,
  work: (i: number) => Promise<unknown>,
) {
  const deadline = Date.now() + STEP_DEADLINE_MS;
  let next = from;
  const lane = async (): Promise<void> => {
    while (next < to) {
      if (Date.now() > deadline) throw new Error(`bindings: step past ${STEP_DEADLINE_MS} ms`);
      await work(next++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, lane));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function runBindings(options: BindingsOptions): Promise<BindingsResult> {
  const tag = randomBytes(3).toString('hex');
  const exchange = `stomp-relay.bench-bindings-${tag}`;
  const queue = `stomp-relay.bench-bindings-${tag}`;
  const connection = new Connection({ url: options.amqpUrl, connectionName: `bench bindings ${tag}` });
  connection.on('error', () => undefined); // surfaces as a failed call below
  const memory = async (): Promise<{ mem: number | null; rss: number | null }> => {
    await sleep(options.statsMs);
    const mem = await brokerMemoryKiB();
    const rss = options.rabbitPid ? rssKiB(options.rabbitPid) : null;
    return { mem, rss };
  };
  const mib = (kib: number | null): number | null =>
    kib === null ? null : Math.round((kib / 1024) * 10) / 10;
  try {
    await connection.onConnect(10_000);
    // Auto-delete so that nothing outlives a crashed run: the exchange goes with its last binding,
    // the queue with its connection.
    await connection.exchangeDeclare({ exchange, type: 'direct', autoDelete: true });
    await connection.queueDeclare({ queue, exclusive: true, autoDelete: true });
    const base = await memory();
    const steps: BindingsStep[] = [];
    let made = 0;
    let last = base;
    for (const target of options.steps) {
      const started = performance.now();
      await pipelined(made, target, options.concurrency, (i) =>
        connection.queueBind({ queue, exchange, routingKey: `user-${i}` }),
      );
      const bindMs = Math.round(performance.now() - started);
      const bindsPerS = Math.round(((target - made) / Math.max(bindMs, 1)) * 1000);
      made = target;
      last = await memory();
      steps.push({ bindings: target, bindMs, bindsPerS, memUsedMiB: mib(last.mem), rssMiB: mib(last.rss) });
      options.log?.(
        `bindings: ${target} (${bindsPerS}/s), mem_used ${mib(last.mem)} MiB, RSS ${mib(last.rss)} MiB`,
      );
    }
    const per = (a: number | null, b: number | null): number | null =>
      a === null || b === null || made === 0 ? null : Math.round(((b - a) / made) * 100) / 100;
    const unbindStarted = performance.now();
    await pipelined(0, made, options.concurrency, (i) =>
      connection.queueUnbind({ queue, exchange, routingKey: `user-${i}` }),
    );
    const unbindMs = Math.round(performance.now() - unbindStarted);
    return {
      concurrency: options.concurrency,
      steps: [
        { bindings: 0, bindMs: 0, bindsPerS: 0, memUsedMiB: mib(base.mem), rssMiB: mib(base.rss) },
        ...steps,
      ],
      perBindingKiB: per(base.mem, last.mem),
      perBindingRssKiB: per(base.rss, last.rss),
      unbindMs,
    };
  } finally {
    await connection.queueDelete({ queue }).catch(() => undefined);
    await connection.exchangeDelete({ exchange }).catch(() => undefined);
    await connection.close().catch(() => undefined);
  }
}
