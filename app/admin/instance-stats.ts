/**
 * What one instance tells the others about itself for the cluster view: a few of the counters it
 * keeps anyway (/metrics) and its broker's state, sampled every announce period and carried on the
 * session directory's snapshots (SessionDirectory.setAnnouncement). Sessions, users and
 * subscriptions are not repeated here: the directory announces the sessions themselves.
 *
 * Rates are worked out by the instance that counted, over its own last two samples, so a receiver
 * needs neither two samples of a peer nor agreement between clocks.
 */
import type { Broker } from '../broker/broker';
import type { Metrics } from '../observability/metrics';

export interface InstanceStats {
  v: 1;
  /** When the sample was taken, on the sender's clock (epoch ms). */
  sampledAt: number;
  broker: {
    kind: string;
    ready: boolean;
    /** Why it is not ready; absent while ready. */
    reason?: string;
    /** Broker connections re-established after a loss, since start. */
    reconnects: number;
    /** Its connections to the broker that are up, of those it keeps; absent for the embedded one. */
    connections?: { up: number; total: number };
  };
  draining: boolean;
  /** REST pushes and publishes the broker took, since start. */
  pushes: number;
  /** MESSAGE frames written to clients, since start. */
  deliveries: number;
  /** Sessions dropped as slow consumers (SEND_BUFFER_LIMIT_BYTES / SEND_TIME_LIMIT_MS), since start. */
  slowConsumerCuts: number;
  /** Per second, over the interval before `sampledAt`. */
  pushRate: number;
  deliveryRate: number;
}

/** The most a reason may hold on the wire; a broker's error text can be long. */
const MAX_REASON_CHARS = 300;

/** Any of the Metrics counters, whatever its label names. */
interface CounterLike {
  get(): Promise<{ values: { labels: Partial<Record<string, string | number>>; value: number }[] }>;
}

/** The sum of a counter's values whose labels match `where`. */
async function sum(counter: CounterLike, where: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  let total = 0;
  for (const { labels, value } of values) {
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) total += value;
  }
  return total;
}

function rate(now: number, before: number, seconds: number): number {
  // A counter never goes down; if one appears to, the interval says nothing.
  if (seconds <= 0 || now < before) return 0;
  return (now - before) / seconds;
}

export interface StatsSamplerDeps {
  broker: Broker;
  metrics: Metrics;
  isDraining(): boolean;
}

/** Samples this instance's own stats; `latest` is what the next announcement carries. */
export class StatsSampler {
  private last: InstanceStats | undefined;

  constructor(private readonly deps: StatsSamplerDeps) {}

  get latest(): InstanceStats | undefined {
    return this.last;
  }

  async sample(now = Date.now()): Promise<InstanceStats> {
    const { broker, metrics } = this.deps;
    const [pushes, deliveries, slowConsumerCuts, reconnects] = await Promise.all([
      sum(metrics.pushes, { outcome: 'accepted' }),
      sum(metrics.frames, { direction: 'out', command: 'MESSAGE' }),
      sum(metrics.limitsHit, { limit: 'send_buffer' }),
      sum(metrics.brokerReconnects, {}),
    ]);
    const readiness = broker.readiness();
    const previous = this.last;
    const seconds = previous ? (now - previous.sampledAt) / 1000 : 0;
    const stats: InstanceStats = {
      v: 1,
      sampledAt: now,
      broker: {
        kind: broker.kind,
        ready: readiness.ready,
        ...(readiness.ready ? {} : { reason: readiness.reason.slice(0, MAX_REASON_CHARS) }),
        reconnects,
        ...(broker.connections ? { connections: broker.connections() } : {}),
      },
      draining: this.deps.isDraining(),
      pushes,
      deliveries,
      slowConsumerCuts,
      pushRate: previous ? rate(pushes, previous.pushes, seconds) : 0,
      deliveryRate: previous ? rate(deliveries, previous.deliveries, seconds) : 0,
    };
    this.last = stats;
    return stats;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** Another instance's announcement, if it is InstanceStats; anything else is not believed. */
export function parseInstanceStats(value: unknown): InstanceStats | undefined {
  if (!isRecord(value) || value.v !== 1 || !isRecord(value.broker)) return undefined;
  const { sampledAt, draining, pushes, deliveries, slowConsumerCuts, pushRate, deliveryRate } = value;
  const { kind, ready, reason, reconnects, connections } = value.broker;
  if (![sampledAt, pushes, deliveries, slowConsumerCuts, pushRate, deliveryRate, reconnects].every(count)) {
    return undefined;
  }
  if (typeof kind !== 'string' || typeof ready !== 'boolean' || typeof draining !== 'boolean') {
    return undefined;
  }
  if (reason !== undefined && typeof reason !== 'string') return undefined;
  if (
    connections !== undefined &&
    !(isRecord(connections) && count(connections.up) && count(connections.total))
  ) {
    return undefined;
  }
  return {
    v: 1,
    sampledAt: sampledAt as number,
    broker: {
      kind: kind.slice(0, 32),
      ready,
      ...(reason === undefined ? {} : { reason: reason.slice(0, MAX_REASON_CHARS) }),
      reconnects: reconnects as number,
      ...(connections === undefined
        ? {}
        : { connections: { up: connections.up as number, total: connections.total as number } }),
    },
    draining,
    pushes: pushes as number,
    deliveries: deliveries as number,
    slowConsumerCuts: slowConsumerCuts as number,
    pushRate: pushRate as number,
    deliveryRate: deliveryRate as number,
  };
}
