/**
 * The run's results: the targets as ratios from this run, results.json, and RESULTS.md (a short
 * Markdown report with the machine, the date, the tables and what capped each side).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CpuShares } from './cpu';
import type { FanoutResult, System } from './scenarios/fanout';
import type { IdleResult } from './scenarios/idle';
import type { OneToOneResult } from './scenarios/one-to-one';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  rabbitmq: string;
  loadAvgAtStart: number[];
  loadAvgAtEnd: number[];
}

export interface Target {
  name: string;
  goal: string;
  actual: string;
  met: boolean | null;
}

export interface BenchResults {
  date: string;
  mode: 'full' | 'smoke';
  durationS: number;
  machine: Machine;
  sizes: object;
  fanout: FanoutResult[];
  oneToOne: OneToOneResult[];
  idle: IdleResult | null;
  targets: Target[];
  notes: string[];
}

const r2 = (n: number): number => Math.round(n * 100) / 100;

function fan(results: FanoutResult[], system: System, subscribers: number): FanoutResult | undefined {
  return results.find((f) => f.system === system && f.subscribers === subscribers);
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || !b ? null : r2(a / b);
}

/** A target on the ratio `mine / theirs`: at least `bound.atLeast`, or at most `bound.atMost`. */
function ratioTarget(
  name: string,
  mine: number | null | undefined,
  theirs: number | null | undefined,
  unit: string,
  bound: { atLeast: number } | { atMost: number },
): Target {
  const x = ratio(mine, theirs);
  const atLeast = 'atLeast' in bound;
  return {
    name,
    goal: atLeast ? `>= ${bound.atLeast}x` : `<= ${bound.atMost}x`,
    actual: `${x ?? '-'}x (${mine ?? '-'} vs ${theirs ?? '-'} ${unit})`,
    met: x === null ? null : atLeast ? x >= bound.atLeast : x <= bound.atMost,
  };
}

export function targets(
  fanout: FanoutResult[],
  oneToOne: OneToOneResult[],
  idle: IdleResult | null,
): Target[] {
  const out: Target[] = [];
  const direct = fanout.find((f) => f.system === 'webstomp');
  if (direct) {
    out.push(
      ratioTarget(
        `fan-out throughput vs Web-STOMP direct (${direct.subscribers} subscribers)`,
        fan(fanout, 'product', direct.subscribers)?.throughput.deliveredPerSec,
        direct.throughput.deliveredPerSec,
        'msg/s',
        { atLeast: 3 },
      ),
    );
  }
  for (const bare of fanout.filter((f) => f.system === 'bare-ws')) {
    out.push(
      ratioTarget(
        `fan-out throughput vs bare-ws ceiling (${bare.subscribers} subscribers)`,
        fan(fanout, 'product', bare.subscribers)?.throughput.deliveredPerSec,
        bare.throughput.deliveredPerSec,
        'msg/s',
        { atLeast: 0.5 },
      ),
    );
  }
  const pairs: [string, string][] = [
    ['rest', 'backend-publisher'],
    ['stomp-send', 'self-send'],
    ['amqp-backend', 'backend-publisher'],
  ];
  for (const [mine, theirs] of pairs) {
    const p = oneToOne.find((o) => o.system === 'product' && o.variant === mine);
    const d = oneToOne.find((o) => o.system === 'webstomp' && o.variant === theirs);
    if (!p || !d) continue;
    out.push(
      ratioTarget(
        `one-to-one throughput, product ${mine} vs direct ${theirs}`,
        p.throughput.deliveredPerSec,
        d.throughput.deliveredPerSec,
        'msg/s',
        { atLeast: 1 },
      ),
      ratioTarget(
        `one-to-one p99 at ${p.latency.ratePerSec}/s, product ${mine} vs direct ${theirs}`,
        p.latency.p99Ms,
        d.latency.p99Ms,
        'ms',
        { atMost: 1.5 },
      ),
    );
  }
  if (idle) {
    const top = idle.levels.at(-1);
    out.push({
      name: `idle memory per session (RSS, ${idle.levels[0]?.sessions ?? 0} -> ${top?.sessions ?? 0} sessions)`,
      goal: '<= 20 KiB',
      actual: idle.perSessionKiB === null ? '-' : `${idle.perSessionKiB} KiB`,
      met: idle.perSessionKiB === null ? null : idle.perSessionKiB <= 20,
    });
    const stomp = idle.levels.map((l) => l.stompConnections);
    const constant = stomp.every((c) => c === stomp[0]) && stomp[0] <= idle.poolSize;
    out.push({
      name: `broker connections (STOMP pool) at ${idle.levels.map((l) => l.sessions).join(' / ')} sessions`,
      goal: `constant, <= pool size ${idle.poolSize}`,
      actual: `${stomp.join(' / ')} (+ ${idle.levels.map((l) => l.amqpConnections).join(' / ')} AMQP)`,
      met: stomp.length === 0 ? null : constant,
    });
  }
  return out;
}

/** What most likely capped a throughput figure, from CPU shares over its window. */
export function cappedBy(cpu: CpuShares, server: string, cores: number, ranDry: boolean): string {
  const serverPct = cpu.processes[server] ?? 0;
  const parts = Object.entries(cpu.processes)
    .map(([name, pct]) => `${name} ${pct}%`)
    .join(', ');
  let verdict: string;
  if (server !== 'rabbitmq' && serverPct >= 85) verdict = `${server} CPU (one core, single-threaded)`;
  else if (server === 'rabbitmq' && serverPct >= 60 * cores) verdict = 'RabbitMQ CPU (most of all cores)';
  else if (cpu.machine >= 85) verdict = `machine CPU: all ${cores} cores busy (clients share them)`;
  else if (ranDry) verdict = 'offered load ran out before the window ended';
  else verdict = 'not CPU-bound: flow control / latency';
  return `${verdict} [${parts}; machine ${cpu.machine}%]`;
}

const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));
const label: Record<System, string> = {
  product: 'stomp-relay → RabbitMQ',
  webstomp: 'RabbitMQ Web-STOMP direct',
  'bare-ws': 'bare ws (ceiling)',
};
const serverOf: Record<System, string> = { product: 'service', webstomp: 'rabbitmq', 'bare-ws': 'bare' };

export function markdown(results: BenchResults): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push('# Benchmark results', '');
  lines.push(
    `Generated by \`npm run bench\` (test/bench/run.ts) on ${results.date}, mode **${results.mode}**, ` +
      `${results.durationS} s. Machine: **${m.cores} cores** (${m.cpuModel}), ${m.memoryGiB} GiB, ` +
      `Node ${m.node}, RabbitMQ ${m.rabbitmq}. Load average at start ${m.loadAvgAtStart.join(' ')}, ` +
      `at end ${m.loadAvgAtEnd.join(' ')}. Everything on loopback; the service, the bare-ws server, ` +
      'the load generator and the client workers are separate processes, but all share these cores.',
    '',
  );
  lines.push('## Targets', '', '| target | goal | this run | met |', '|---|---|---|---|');
  for (const t of results.targets) {
    lines.push(
      `| ${t.name} | ${t.goal} | ${t.actual} | ${t.met === null ? 'n/a' : t.met ? 'yes' : '**no**'} |`,
    );
  }
  lines.push('', '## 1 and 4. Fan-out: one topic, 100-byte messages', '');
  lines.push(
    '| system | subscribers | delivered msg/s (max) | p50 / p99 ms under max load | p50 / p99 ms at ' +
      `${results.fanout[0]?.latency.ratePerSec ?? '-'} msg/s | capped by |`,
    '|---|---|---|---|---|---|',
  );
  for (const f of results.fanout) {
    lines.push(
      `| ${label[f.system]} | ${f.connected}${f.connected < f.subscribers ? ` of ${f.subscribers}` : ''} | ` +
        `${f.throughput.deliveredPerSec} | ${fmt(f.throughput.p50Ms)} / ${fmt(f.throughput.p99Ms)} | ` +
        `${fmt(f.latency.p50Ms)} / ${fmt(f.latency.p99Ms)} | ` +
        `${cappedBy(f.throughput.cpu, serverOf[f.system], m.cores, f.throughput.ranDry)} |`,
    );
  }
  lines.push('', `## 2. One-to-one: ${results.oneToOne[0]?.users ?? '-'} users, pushes spread over them`, '');
  lines.push(
    '| system | pushed by | deliveries/s (max) | p50 / p99 ms under max load | p50 / p99 ms at ' +
      `${results.oneToOne[0]?.latency.ratePerSec ?? '-'} pushes/s | capped by |`,
    '|---|---|---|---|---|---|',
  );
  for (const o of results.oneToOne) {
    lines.push(
      `| ${label[o.system]} | ${o.variant} | ${o.throughput.deliveredPerSec} (${o.throughput.delivered}/${o.throughput.pushes}) | ` +
        `${fmt(o.throughput.p50Ms)} / ${fmt(o.throughput.p99Ms)} | ${fmt(o.latency.p50Ms)} / ${fmt(o.latency.p99Ms)} | ` +
        `${cappedBy(o.throughput.cpu, serverOf[o.system], m.cores, false)} |`,
    );
  }
  if (results.idle) {
    const idle = results.idle;
    lines.push('', '## 3. Idle sessions on one instance (each subscribed to one topic)', '');
    lines.push(
      '| sessions | RSS MiB | V8 heap MiB | STOMP connections to RabbitMQ | AMQP connections |',
      '|---|---|---|---|---|',
    );
    for (const l of idle.levels) {
      lines.push(
        `| ${l.sessions}${l.sessions < l.requested ? ` of ${l.requested}` : ''} | ${(l.rssKiB / 1024).toFixed(1)} | ` +
          `${l.heapUsedKiB === null ? '-' : (l.heapUsedKiB / 1024).toFixed(1)} | ${l.stompConnections} | ${l.amqpConnections} |`,
      );
    }
    lines.push(
      '',
      `Per session: **${fmt(idle.perSessionKiB)} KiB RSS** (${fmt(idle.perSessionHeapKiB)} KiB of it V8 heap). ` +
        `Baseline RSS with no session: ${(idle.baselineRssKiB / 1024).toFixed(1)} MiB. Service CPU while ` +
        `holding the top level idle: ${idle.idleCpuPercent}% of a core. Broker pool size ${idle.poolSize}; ` +
        'the AMQP connection is the session directory.' +
        (idle.cappedBy ? ` Top level capped: ${idle.cappedBy}.` : ''),
    );
  }
  lines.push('', '## Notes', '');
  for (const n of results.notes) lines.push(`- ${n}`);
  return lines.join('\n') + '\n';
}

export function writeResults(dir: string, results: BenchResults): { json: string; md: string } {
  const json = join(dir, 'results.json');
  const md = join(dir, 'RESULTS.md');
  writeFileSync(json, JSON.stringify(results, null, 2) + '\n');
  writeFileSync(md, markdown(results));
  return { json, md };
}
