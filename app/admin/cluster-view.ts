/**
 * The live cluster view behind /admin and GET /api/admin/cluster, built from what instances already
 * announce: the session directory's per-instance session lists (sessions by transport, users,
 * subscriptions) and the stats each instance attaches to its snapshots (instance-stats.ts: pushes,
 * deliveries, slow-consumer cuts, broker state). Nothing is asked of another instance on a request:
 * an answer is this instance's current view, at most one announce period old.
 *
 * As a part (start.ts) it samples this instance's stats every announce period (so each snapshot
 * carries a fresh one) and keeps the cluster's rates for the last ADMIN_HISTORY_S seconds, for the
 * page's chart; an instance that has just started shows a chart only from its own start.
 */
import type { Settings } from '../../config/settings';
import type { SessionDirectory } from '../presence/directory';
import type { Part } from '../start';
import { parseInstanceStats, type InstanceStats, type StatsSampler } from './instance-stats';

/** The chart never holds more points than this, whatever ADMIN_HISTORY_S / DIRECTORY_ANNOUNCE_MS. */
export const MAX_HISTORY_POINTS = 1000;

/**
 * Sessions by transport as sessions report it (`websocket`, `tcp`, `sockjs/<sub-transport>` such as
 * `sockjs/xhr-streaming`); only transports with sessions are listed.
 */
export type SessionCounts = Record<string, number>;

export interface InstanceRow {
  id: string;
  /** The instance that answered. */
  self: boolean;
  /** Milliseconds since the answering instance last heard from this one (0 for itself). */
  heardAgoMs: number;
  sessions: number;
  byTransport: SessionCounts;
  /** Distinct users with a session on this instance. */
  users: number;
  subscriptions: number;
  /** Its announced stats; null when it announced none this instance understands (yet). */
  stats: Omit<InstanceStats, 'v'> | null;
}

export interface RatePoint {
  at: string;
  pushRate: number;
  deliveryRate: number;
}

export interface ClusterSnapshot {
  generatedAt: string;
  servedBy: string;
  totals: {
    instances: number;
    sessions: number;
    byTransport: SessionCounts;
    /** Distinct users online on any instance (a user on two instances counts once). */
    users: number;
    subscriptions: number;
    /** Instances whose broker connection is up, of those that announced stats. */
    brokerReady: number;
    pushes: number;
    deliveries: number;
    slowConsumerCuts: number;
    pushRate: number;
    deliveryRate: number;
  };
  instances: InstanceRow[];
  history: { intervalMs: number; windowS: number; points: RatePoint[] };
}

export interface ClusterViewDeps {
  settings: Pick<Settings, 'instanceId' | 'directoryAnnounceMs' | 'adminHistoryS'>;
  directory: SessionDirectory;
  sampler: StatsSampler;
  onError(err: unknown): void;
}

function emptyCounts(): SessionCounts {
  return {};
}

interface Counters {
  pushes: number;
  deliveries: number;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

export class ClusterView implements Part {
  readonly name = 'cluster view';
  private readonly points: RatePoint[] = [];
  private previous: { atMs: number; counts: Map<string, Counters> } | undefined;
  private readonly maxPoints: number;
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;

  constructor(private readonly deps: ClusterViewDeps) {
    const { adminHistoryS, directoryAnnounceMs } = deps.settings;
    this.maxPoints = Math.min(MAX_HISTORY_POINTS, Math.ceil((adminHistoryS * 1000) / directoryAnnounceMs));
  }

  async start(): Promise<void> {
    const { directory, sampler, settings } = this.deps;
    await sampler.sample();
    directory.setAnnouncement(() => sampler.latest);
    this.timer = setInterval(() => this.tick(), settings.directoryAnnounceMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sampling;
  }

  /** The cluster as this instance sees it now. */
  snapshot(now = Date.now()): ClusterSnapshot {
    const { settings, directory } = this.deps;
    // Itself first (the directory lists it first), the others by id, so rows keep their places.
    const [own, ...others] = directory.instances();
    const presences = own ? [own, ...others.sort((a, b) => (a.instance < b.instance ? -1 : 1))] : [];
    const instances = presences.map((presence): InstanceRow => {
      const byTransport = emptyCounts();
      const users = new Set<string>();
      let subscriptions = 0;
      for (const session of presence.sessions) {
        byTransport[session.transport] = (byTransport[session.transport] ?? 0) + 1;
        users.add(session.user);
        subscriptions += session.subscriptions.length;
      }
      const parsed = parseInstanceStats(presence.announced);
      const stats = parsed ? (({ v: _v, ...rest }) => rest)(parsed) : null;
      return {
        id: presence.instance,
        self: presence.instance === settings.instanceId,
        heardAgoMs: presence.heardAgoMs,
        sessions: presence.sessions.length,
        byTransport,
        users: users.size,
        subscriptions,
        stats,
      };
    });
    const everyone = new Set<string>();
    for (const presence of presences) for (const s of presence.sessions) everyone.add(s.user);
    const byTransport = emptyCounts();
    for (const row of instances) {
      for (const [t, n] of Object.entries(row.byTransport)) byTransport[t] = (byTransport[t] ?? 0) + n;
    }
    const total = (pick: (row: InstanceRow) => number): number =>
      instances.reduce((sum, row) => sum + pick(row), 0);
    const withStats = instances.flatMap((row) => (row.stats ? [row.stats] : []));
    const totalStat = (pick: (s: Omit<InstanceStats, 'v'>) => number): number =>
      withStats.reduce((sum, s) => sum + pick(s), 0);
    return {
      generatedAt: new Date(now).toISOString(),
      servedBy: settings.instanceId,
      totals: {
        instances: instances.length,
        sessions: total((r) => r.sessions),
        byTransport,
        users: everyone.size,
        subscriptions: total((r) => r.subscriptions),
        brokerReady: withStats.filter((s) => s.broker.ready).length,
        pushes: totalStat((s) => s.pushes),
        deliveries: totalStat((s) => s.deliveries),
        slowConsumerCuts: totalStat((s) => s.slowConsumerCuts),
        pushRate: round(totalStat((s) => s.pushRate)),
        deliveryRate: round(totalStat((s) => s.deliveryRate)),
      },
      instances,
      history: {
        intervalMs: settings.directoryAnnounceMs,
        windowS: settings.adminHistoryS,
        points: [...this.points],
      },
    };
  }

  /** One sample of this instance, then one point of the cluster's rates. */
  private tick(): void {
    if (this.sampling) return; // the previous sample has not finished: skip rather than pile up
    this.sampling = this.deps.sampler
      .sample()
      .then(() => this.record())
      .catch((err: unknown) => this.deps.onError(err))
      .finally(() => {
        this.sampling = undefined;
      });
  }

  /**
   * A point's rates are the growth of each instance's announced counters since the previous point,
   * not the rates the instances announced: an announced rate covers one sample period of that
   * instance and is replaced at its next announcement, so a burst shorter than a period could fall
   * between two of this instance's points and never be drawn. Counters only grow, so every push
   * lands in some point. Instances not in both readings (joined, left) count from their next one.
   */
  private record(now = Date.now()): void {
    const { instances, generatedAt, totals } = this.snapshot(now);
    const counts = new Map<string, Counters>();
    for (const row of instances) {
      if (row.stats) counts.set(row.id, { pushes: row.stats.pushes, deliveries: row.stats.deliveries });
    }
    const previous = this.previous;
    this.previous = { atMs: now, counts };
    const seconds = previous ? (now - previous.atMs) / 1000 : 0;
    if (!previous || seconds <= 0) {
      this.points.push({ at: generatedAt, pushRate: totals.pushRate, deliveryRate: totals.deliveryRate });
    } else {
      let pushes = 0;
      let deliveries = 0;
      for (const [id, current] of counts) {
        const before = previous.counts.get(id);
        if (!before) continue;
        pushes += Math.max(0, current.pushes - before.pushes);
        deliveries += Math.max(0, current.deliveries - before.deliveries);
      }
      this.points.push({
        at: generatedAt,
        pushRate: round(pushes / seconds),
        deliveryRate: round(deliveries / seconds),
      });
    }
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
  }
}
