/**
 * The benchmark harness (test/bench/) in its tiny mode, so that it cannot rot: a few clients and
 * messages through every scenario, against the local RabbitMQ and Redis. It checks that each scenario
 * produced numbers and files, never how fast anything was (this machine's load is not ours).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runBench } from '../../bench/run';
import type { BenchResults } from '../../bench/report';
import { queuesStartingWith } from '../../bench/rabbit';

describe('bench harness (smoke)', function () {
  this.timeout(150_000);
  let out: string;
  let results: BenchResults;

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'stomp-relay-bench-'));
    results = await runBench({ mode: 'smoke', outDir: out, log: () => undefined });
  });

  after(() => rmSync(out, { recursive: true, force: true }));

  it('measures fan-out for the service and the bare-ws ceiling', () => {
    for (const system of ['product', 'bare-ws'] as const) {
      const runs = results.fanout.filter((f) => f.system === system && f.processes === 1);
      expect(runs.length, system).to.be.greaterThan(0);
      for (const f of runs) {
        expect(f.connected, system).to.equal(f.subscribers);
        expect(f.latency.delivered, system).to.be.greaterThan(0);
        expect(f.latency.p99Ms, system).to.be.a('number');
        expect(f.throughput.deliveredPerSec, system).to.be.greaterThan(0);
      }
    }
  });

  it('measures one-to-one pushes over REST, STOMP SEND and a backend on AMQP', () => {
    for (const variant of ['rest', 'stomp-send', 'amqp-backend']) {
      const o = results.oneToOne.find(
        (r) => r.system === 'product' && r.processes === 1 && r.variant === variant,
      );
      expect(o, variant).to.not.equal(undefined);
      expect(o!.throughput.delivered, variant).to.be.greaterThan(0);
      expect(o!.throughput.deliveredPerSec, variant).to.be.greaterThan(0);
      expect(o!.latency.p50Ms, variant).to.be.a('number');
      // The paced phase's percentiles leave its warm-up out, and each phase waited for idle servers.
      expect(o!.latency.measured, variant).to.be.greaterThan(0).and.lessThan(o!.latency.delivered);
      expect(o!.settle?.paced.ms, variant).to.be.a('number');
      expect(o!.settle?.flood.ms, variant).to.be.a('number');
    }
  });

  it('measures batch pushes', () => {
    const o = results.oneToOne.find((r) => r.system === 'product' && r.variant === 'rest-batch');
    expect(o).to.not.equal(undefined);
    expect(o!.skipped).to.equal(undefined);
    expect(o!.throughput.delivered).to.equal(o!.throughput.confirmed);
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.match(/rest-batch \| \d+/);
  });

  it("counts the REST answers' online and probes the service's stalls at the paced rate", () => {
    for (const variant of ['rest', 'rest-batch']) {
      const o = results.oneToOne.find(
        (r) => r.system === 'product' && r.processes === 1 && r.variant === variant,
      );
      expect(o?.online, variant).to.not.equal(undefined);
      expect(o!.online!.yes + o!.online!.no, variant).to.be.at.most(
        o!.latency.pushes + o!.throughput.confirmed,
      );
      expect(o!.stall?.loopP99Ms, variant).to.be.a('number');
      expect(o!.stall?.gcMs, variant).to.be.a('number');
    }
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('## 2a. The push answer and stalls');
  });

  it('measures the bare AMQP ceiling: one queue with acks and without, a queue per key', () => {
    expect(results.ceiling.map((c) => `${c.topology}/${c.ack}`)).to.deep.equal([
      'one-queue/true',
      'one-queue/false',
      'queue-per-key/true',
    ]);
    for (const c of results.ceiling) {
      expect(c.delivered, c.topology).to.equal(c.pushes);
      expect(c.deliveredPerSec, c.topology).to.be.greaterThan(0);
    }
  });

  it('measures stomp-relay on several instances against Socket.IO on as many nodes', () => {
    for (const system of ['product', 'socketio'] as const) {
      const fan = results.fanout.filter((f) => f.system === system && f.processes === 2);
      expect(fan.length, system).to.be.greaterThan(0);
      for (const f of fan) {
        expect(f.connected, system).to.equal(f.subscribers);
        expect(f.latency.delivered, system).to.equal(f.latency.expected);
      }
      const pushes = results.oneToOne.filter((o) => o.system === system && o.processes === 2);
      expect(pushes.length, system).to.be.greaterThan(0);
      for (const o of pushes) {
        expect(o.throughput.delivered, `${system} ${o.variant}`).to.equal(o.throughput.confirmed);
        expect(o.latency.p99Ms, `${system} ${o.variant}`).to.be.a('number');
      }
    }
  });

  it('measures idle sessions on their own user queues: memory, broker connections, RabbitMQ queues', () => {
    expect(results.idle).to.not.equal(null);
    const levels = results.idle!.levels;
    expect(levels.map((l) => l.sessions)).to.deep.equal([1, 10]);
    for (const l of levels) {
      expect(l.rssKiB).to.be.greaterThan(0);
      expect(l.stompConnections).to.be.within(1, results.idle!.poolSize);
      expect(l.brokerQueues).to.be.a('number');
      expect(l.brokerMemKiB).to.be.greaterThan(0);
    }
  });

  it('measures idle Socket.IO connections and Redis memory', () => {
    expect(results.peerIdle).to.not.equal(null);
    expect(results.peerIdle!.levels.map((l) => l.sessions)).to.deep.equal([1, 10]);
    for (const l of results.peerIdle!.levels) {
      expect(l.rssKiB).to.be.greaterThan(0);
      expect(l.redisMemKiB).to.be.greaterThan(0);
    }
  });

  it('measures a crowd with heart-beats: on user queues, on a topic, and a push to one user', () => {
    expect(results.crowd.map((r) => r.subscription)).to.deep.equal(['user-queue', 'topic']);
    for (const r of results.crowd) {
      expect(r.sessions, r.subscription).to.equal(r.target);
      expect(r.closedEarly, r.subscription).to.equal(0);
      expect(r.push.delivered, r.subscription).to.equal(r.push.pushes);
      expect(r.push.pushes, r.subscription).to.be.greaterThan(0);
    }
  });

  it("measures RabbitMQ's cost per binding, step by step, and removes what it made", async () => {
    const b = results.bindings!;
    expect(b, 'bindings result').to.not.equal(null);
    expect(b.steps.map((s) => s.bindings)).to.deep.equal([0, 50, 200]);
    for (const s of b.steps.slice(1)) expect(s.bindsPerS, `${s.bindings}`).to.be.greaterThan(0);
    expect(b.perBindingKiB).to.be.a('number');
    expect(b.unbindMs).to.be.a('number');
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('## 7. RabbitMQ cost per binding');
    expect(await queuesStartingWith('stomp-relay.bench-bindings-')).to.deep.equal([]);
  });

  it('measures the inbox store on PostgreSQL: appends and acks per second, replay', () => {
    const p = results.inboxPostgres!;
    expect(p, 'inbox store result').to.not.equal(null);
    expect(p.engine).to.equal('postgres');
    for (const figure of [
      p.appendsPerSecondConcurrent,
      p.appendsPerSecondBatched1000,
      p.acksPerSecondBatched1000,
    ])
      expect(figure).to.be.greaterThan(0);
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('## 8. Inbox store on PostgreSQL');
  });

  it('measures the inbox through the service: durable beside non-durable pushes, live latency, replay', () => {
    const s = results.inboxService!;
    expect(s, 'inbox service result').to.not.equal(null);
    for (const figure of [s.nonDurablePerS, s.durablePerS, s.durableBatchPerS, s.replay1000Ms])
      expect(figure).to.be.greaterThan(0);
    expect(s.liveMessages).to.be.greaterThan(0);
    expect(s.liveInOrder).to.equal(1);
    expect(results.targets.map((t) => t.name)).to.include('durable pushes in REST batches of 1000');
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('## 9. Inbox through the service');
  });

  it('a run of one scenario (--only) keeps the other sections of the results it replaces', async () => {
    const before = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    const again = await runBench({ mode: 'smoke', outDir: out, only: ['bindings'], log: () => undefined });
    expect(again.bindings).to.not.equal(null);
    expect(again.date).to.not.equal(before.date);
    for (const key of ['fanout', 'oneToOne', 'ceiling', 'crowd'] as const) {
      expect(again[key].length, key).to.equal(before[key].length);
    }
    expect(again.idle).to.deep.equal(before.idle);
    expect(again.notes.join('\n')).to.match(/This run measured only bindings; .* kept from the run of /);
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('## 3. Idle sessions');
  });

  it('writes results.json and RESULTS.md with the targets', () => {
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    expect(json.machine.cores).to.be.greaterThan(0);
    expect(json.targets.length).to.be.greaterThan(0);
    expect(existsSync(join(out, 'RESULTS.md'))).to.equal(true);
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('| target | goal | this run | met |');
  });
});
