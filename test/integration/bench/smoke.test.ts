/**
 * The benchmark harness (test/bench/) in its tiny mode, so that it cannot rot: a few clients and
 * messages through every scenario, against the local RabbitMQ. It checks that each scenario
 * produced numbers and files, never how fast anything was (this machine's load is not ours).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runBench } from '../../bench/run';
import type { BenchResults } from '../../bench/report';

describe('bench harness (smoke)', function () {
  this.timeout(90_000);
  let out: string;
  let results: BenchResults;

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'stomp-relay-bench-'));
    results = await runBench({ mode: 'smoke', outDir: out, log: () => undefined });
  });

  after(() => rmSync(out, { recursive: true, force: true }));

  it('measures fan-out for the service and the bare-ws ceiling', () => {
    for (const system of ['product', 'bare-ws'] as const) {
      const runs = results.fanout.filter((f) => f.system === system);
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
      const o = results.oneToOne.find((r) => r.system === 'product' && r.variant === variant);
      expect(o, variant).to.not.equal(undefined);
      expect(o!.throughput.delivered, variant).to.be.greaterThan(0);
      expect(o!.throughput.deliveredPerSec, variant).to.be.greaterThan(0);
      expect(o!.latency.p50Ms, variant).to.be.a('number');
    }
  });

  it('measures idle sessions: memory and broker connections', () => {
    expect(results.idle).to.not.equal(null);
    const levels = results.idle!.levels;
    expect(levels.map((l) => l.sessions)).to.deep.equal([1, 10]);
    for (const l of levels) {
      expect(l.rssKiB).to.be.greaterThan(0);
      expect(l.stompConnections).to.be.within(1, results.idle!.poolSize);
    }
  });

  it('writes results.json and RESULTS.md with the targets', () => {
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
    expect(json.machine.cores).to.be.greaterThan(0);
    expect(json.targets.length).to.be.greaterThan(0);
    expect(existsSync(join(out, 'RESULTS.md'))).to.equal(true);
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).to.include('| target | goal | this run | met |');
  });
});
