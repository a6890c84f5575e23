/**
 * The cluster view's arithmetic without a broker: what another instance announced is believed only
 * when it is well-formed InstanceStats, users are counted once across instances, rates come from
 * the counting instance's own samples (a counter that appears to go back gives 0, not a negative
 * rate), and the chart keeps at most its window of points. The view over real instances:
 * test/integration/admin/cluster-api.test.ts and test/e2e/admin.test.ts.
 */
import { expect } from 'chai';
import type { InstancePresence, SessionDirectory, SessionInfo } from '../../../app/presence/directory';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { ClusterView, MAX_HISTORY_POINTS } from '../../../app/admin/cluster-view';
import { parseInstanceStats, StatsSampler, type InstanceStats } from '../../../app/admin/instance-stats';
import { Metrics } from '../../../app/observability/metrics';

function session(id: string, user: string, instance: string, transport: string, subs = 1): SessionInfo {
  return {
    sessionId: id,
    user,
    instance,
    transport,
    connectedAt: '2026-01-01T00:00:00.000Z',
    subscriptions: Array.from({ length: subs }, (_, i) => ({ id: `s${i}`, destination: `/topic/t${i}` })),
  };
}

function stats(overrides: Partial<InstanceStats> = {}): InstanceStats {
  return {
    v: 1,
    sampledAt: 1_000,
    broker: { kind: 'rabbitmq', ready: true, reconnects: 0, connections: { up: 2, total: 2 } },
    draining: false,
    pushes: 10,
    deliveries: 20,
    slowConsumerCuts: 1,
    pushRate: 2,
    deliveryRate: 4,
    ...overrides,
  };
}

/** A directory that lists what the test says, itself first. */
class FixedDirectory implements SessionDirectory {
  announcement: () => unknown = () => undefined;
  constructor(public presences: InstancePresence[]) {}
  upsert(): void {}
  remove(): void {}
  async list(): Promise<SessionInfo[]> {
    return [];
  }
  instances(): InstancePresence[] {
    const [own, ...others] = this.presences;
    return own ? [{ ...own, announced: this.announcement() }, ...others] : [];
  }
  setAnnouncement(provide: () => unknown): void {
    this.announcement = provide;
  }
}

describe('admin: announced stats', () => {
  it('believes well-formed stats only', () => {
    expect(parseInstanceStats(stats())).to.deep.equal(stats());
    const brokerWithout = { kind: 'rabbitmq', ready: true, reconnects: 0 };
    expect(parseInstanceStats({ ...stats(), broker: brokerWithout })).to.deep.equal({
      ...stats(),
      broker: brokerWithout,
    });
    const bad: unknown[] = [
      undefined,
      null,
      'stats',
      [],
      { ...stats(), v: 2 },
      { ...stats(), pushes: -1 },
      { ...stats(), pushes: '10' },
      { ...stats(), deliveryRate: Number.POSITIVE_INFINITY },
      { ...stats(), draining: 'no' },
      { ...stats(), broker: { ...stats().broker, ready: 1 } },
      { ...stats(), broker: { ...stats().broker, reason: 42 } },
      { ...stats(), broker: { ...stats().broker, connections: { up: 1 } } },
      { ...stats(), broker: 'rabbitmq' },
    ];
    for (const value of bad) expect(parseInstanceStats(value), JSON.stringify(value)).to.equal(undefined);
  });

  it('keeps a long reason and a long broker kind short', () => {
    const parsed = parseInstanceStats({
      ...stats(),
      broker: { kind: 'k'.repeat(100), ready: false, reason: 'r'.repeat(10_000), reconnects: 3 },
    });
    expect(parsed!.broker.kind).to.have.length(32);
    expect(parsed!.broker.reason).to.have.length(300);
  });

  it('works out rates from its own samples, and 0 when a counter appears to go back', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const broker = new EmbeddedBroker({ instanceId: 'u1' });
    const sampler = new StatsSampler({ broker, metrics, isDraining: () => false });
    const first = await sampler.sample(10_000);
    expect(first).to.deep.include({ pushes: 0, deliveries: 0, pushRate: 0, deliveryRate: 0 });
    metrics.pushes.inc({ kind: 'user', outcome: 'accepted' }, 6);
    metrics.pushes.inc({ kind: 'user', outcome: 'rejected' }, 100);
    metrics.frames.inc({ direction: 'out', command: 'MESSAGE' }, 12);
    metrics.frames.inc({ direction: 'out', command: 'RECEIPT' }, 50);
    metrics.limitsHit.inc({ limit: 'send_buffer' });
    metrics.limitsHit.inc({ limit: 'frame_rate' });
    const second = await sampler.sample(12_000);
    expect(second).to.deep.include({
      pushes: 6,
      deliveries: 12,
      slowConsumerCuts: 1,
      pushRate: 3,
      deliveryRate: 6,
    });
    expect(second.broker).to.deep.equal({ kind: 'embedded', ready: true, reconnects: 0 });
    metrics.pushes.reset();
    const third = await sampler.sample(13_000);
    expect(third).to.deep.include({ pushes: 0, pushRate: 0 });
    await broker.stop();
    expect((await sampler.sample(14_000)).broker).to.deep.include({
      ready: false,
      reason: 'the embedded broker is stopped',
    });
  });
});

describe('admin: the cluster view', () => {
  const settings = { instanceId: 'a', directoryAnnounceMs: 1000, adminHistoryS: 5 };

  function viewOver(directory: FixedDirectory): ClusterView {
    const metrics = new Metrics({ defaultMetrics: false });
    const sampler = new StatsSampler({
      broker: new EmbeddedBroker({ instanceId: 'a' }),
      metrics,
      isDraining: () => false,
    });
    return new ClusterView({
      settings,
      directory,
      sampler,
      onError: (err) => {
        throw err;
      },
    });
  }

  it('adds up instances, counting a user on two of them once, and lists itself first, then by id', async () => {
    const directory = new FixedDirectory([
      {
        instance: 'a',
        heardAgoMs: 0,
        sessions: [session('1', 'alice', 'a', 'websocket', 2)],
        announced: undefined,
      },
      {
        instance: 'c',
        heardAgoMs: 300,
        sessions: [session('2', 'alice', 'c', 'sockjs/xhr-streaming'), session('3', 'bob', 'c', 'tcp', 0)],
        announced: stats(),
      },
      { instance: 'b', heardAgoMs: 100, sessions: [], announced: { nonsense: true } },
    ]);
    const view = viewOver(directory);
    await view.start();
    try {
      const snapshot = view.snapshot(Date.parse('2026-01-01T00:00:00.000Z'));
      expect(snapshot.instances.map((r) => [r.id, r.self])).to.deep.equal([
        ['a', true],
        ['b', false],
        ['c', false],
      ]);
      expect(snapshot.totals).to.deep.equal({
        instances: 3,
        sessions: 3,
        byTransport: { websocket: 1, 'sockjs/xhr-streaming': 1, tcp: 1 },
        users: 2,
        subscriptions: 3,
        // a (embedded, sampled at start) and c; b announced nothing this view understands.
        brokerReady: 2,
        pushes: 10,
        deliveries: 20,
        slowConsumerCuts: 1,
        pushRate: 2,
        deliveryRate: 4,
      });
      expect(snapshot.instances[1]!.stats).to.equal(null);
      expect(snapshot.instances[2]).to.deep.include({ users: 2, subscriptions: 1, heardAgoMs: 300 });
      expect(snapshot.generatedAt).to.equal('2026-01-01T00:00:00.000Z');
      // What this instance announces is its own latest sample.
      expect(parseInstanceStats(directory.announcement())).to.not.equal(undefined);
    } finally {
      await view.stop();
    }
  });

  it('draws a burst that two of its points straddle: rates from counter growth, per instance', () => {
    const other = {
      instance: 'b',
      heardAgoMs: 0,
      sessions: [],
      announced: stats({ pushes: 10, deliveries: 20 }),
    };
    const directory = new FixedDirectory([
      { instance: 'a', heardAgoMs: 0, sessions: [], announced: undefined },
      other,
    ]);
    const view = viewOver(directory);
    const record = (view as unknown as { record(now: number): void }).record.bind(view);
    record(10_000);
    // b pushed 8 and delivered 12 between this instance's points, and announced twice meanwhile:
    // its latest announced rate is 0 again, but its counters hold the burst.
    other.announced = stats({ pushes: 18, deliveries: 32, pushRate: 0, deliveryRate: 0 });
    record(12_000);
    // b leaves and c joins with counters of its own past: neither is growth seen by this instance.
    directory.presences = [
      directory.presences[0]!,
      { ...other, instance: 'c', announced: stats({ pushes: 500 }) },
    ];
    record(14_000);
    const rates = view.snapshot().history.points.map((p) => [p.pushRate, p.deliveryRate]);
    expect(rates.slice(1)).to.deep.equal([
      [4, 6],
      [0, 0],
    ]);
  });

  it('keeps at most ADMIN_HISTORY_S of points, and never more than the cap', async () => {
    const directory = new FixedDirectory([
      { instance: 'a', heardAgoMs: 0, sessions: [], announced: undefined },
    ]);
    const view = viewOver(directory);
    // record() is what every tick ends with; called directly, the test needs no timer.
    const record = (view as unknown as { record(): void }).record.bind(view);
    for (let i = 0; i < 20; i++) record();
    expect(view.snapshot().history.points).to.have.length(5);
    const long = new ClusterView({
      settings: { instanceId: 'a', directoryAnnounceMs: 100, adminHistoryS: 3600 },
      directory,
      sampler: new StatsSampler({
        broker: new EmbeddedBroker({ instanceId: 'a' }),
        metrics: new Metrics({ defaultMetrics: false }),
        isDraining: () => false,
      }),
      onError: () => undefined,
    });
    const recordLong = (long as unknown as { record(): void }).record.bind(long);
    for (let i = 0; i < MAX_HISTORY_POINTS + 50; i++) recordLong();
    expect(long.snapshot().history.points).to.have.length(MAX_HISTORY_POINTS);
  });
});
