/**
 * The run's results: results.json, and RESULTS.md (a short Markdown report with the machine, the
 * date, the targets, the tables and what capped each side). The targets are computed in targets.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EVENT_LOOP_SAMPLE_MS } from '../../app/observability/metrics';
import type { CpuShares } from './cpu';
import type { FanoutResult, System } from './scenarios/fanout';
import type { OneToOneResult } from './scenarios/one-to-one';
import type { Measured } from './bench-run';
import type { Target } from './targets';
import { crowdSection, idleSection } from './report-idle';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  rabbitmq: string;
  loadAvgAtStart: number[];
  loadAvgAtEnd: number[];
}

export interface BenchResults extends Measured {
  date: string;
  mode: 'full' | 'smoke';
  durationS: number;
  machine: Machine;
  sizes: object;
  targets: Target[];
  notes: string[];
}

/** What most likely capped a throughput figure, from CPU shares over its window. */
export function cappedBy(
  cpu: CpuShares,
  server: string,
  cores: number,
  ranDry: boolean,
  processes = 1,
): string {
  const serverPct = cpu.processes[server] ?? 0;
  const parts = Object.entries(cpu.processes)
    .map(([name, pct]) => `${name} ${pct}%`)
    .join(', ');
  let verdict: string;
  if (server !== 'rabbitmq' && processes === 1 && serverPct >= 85)
    verdict = `${server} CPU (one core, single-threaded)`;
  else if (server !== 'rabbitmq' && processes > 1 && serverPct >= 85 * Math.min(processes, cores))
    verdict = `${server} CPU (${processes} processes on ${cores} cores)`;
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
  'bare-ws': 'bare ws (reference)',
  socketio: 'Socket.IO + Redis adapter',
};
const serverOf: Record<System, string> = {
  product: 'service',
  webstomp: 'rabbitmq',
  'bare-ws': 'bare',
  socketio: 'nodes',
};
const named = (system: System, processes: number): string =>
  processes > 1 || system === 'socketio' ? `${label[system]} x${processes}` : label[system];

function fanoutRows(results: BenchResults, rows: FanoutResult[]): string[] {
  const lines = [
    '| system | subscribers | delivered msg/s (max) | p50 / p99 ms under max load | p50 / p99 ms at ' +
      `${rows[0]?.latency.ratePerSec ?? '-'} msg/s | capped by |`,
    '|---|---|---|---|---|---|',
  ];
  for (const f of rows) {
    lines.push(
      `| ${named(f.system, f.processes)} | ${f.connected}${f.connected < f.subscribers ? ` of ${f.subscribers}` : ''} | ` +
        `${f.throughput.deliveredPerSec} | ${fmt(f.throughput.p50Ms)} / ${fmt(f.throughput.p99Ms)} | ` +
        `${fmt(f.latency.p50Ms)} / ${fmt(f.latency.p99Ms)} | ` +
        `${cappedBy(f.throughput.cpu, serverOf[f.system], results.machine.cores, f.throughput.ranDry, f.processes)} |`,
    );
  }
  return lines;
}

function oneToOneRows(results: BenchResults, rows: OneToOneResult[]): string[] {
  const lines = [
    '| system | pushed by | deliveries/s (max) | p50 / p99 ms under max load | p50 / p99 ms at ' +
      `${rows.find((o) => !o.skipped)?.latency.ratePerSec ?? '-'} pushes/s | capped by |`,
    '|---|---|---|---|---|---|',
  ];
  for (const o of rows) {
    if (o.skipped) {
      lines.push(
        `| ${named(o.system, o.processes)} | ${o.variant} | not built yet: ${o.skipped} | - | - | - |`,
      );
      continue;
    }
    lines.push(
      `| ${named(o.system, o.processes)} | ${o.variant} | ${o.throughput.deliveredPerSec} (${o.throughput.delivered}/${o.throughput.pushes}) | ` +
        `${fmt(o.throughput.p50Ms)} / ${fmt(o.throughput.p99Ms)} | ${fmt(o.latency.p50Ms)} / ${fmt(o.latency.p99Ms)} | ` +
        `${cappedBy(o.throughput.cpu, serverOf[o.system], results.machine.cores, false, o.processes)} |`,
    );
  }
  return lines;
}

/** The answer a REST push gives (`online`) and what stalled the service at the paced rate. */
function answerAndStallRows(rows: OneToOneResult[]): string[] {
  const shown = rows.filter((o) => !o.skipped && (o.online !== undefined || o.stall !== undefined));
  if (shown.length === 0) return [];
  const lines = [
    '| system | pushed by | answers "online": true / false | event-loop delay p99 / max ms at the paced rate | GC ms (major) in the paced phase |',
    '|---|---|---|---|---|',
  ];
  for (const o of shown) {
    const told = o.online !== undefined && o.online.yes + o.online.no > 0;
    const online = told ? `${o.online!.yes} / ${o.online!.no}` : 'not told';
    const s = o.stall;
    lines.push(
      `| ${named(o.system, o.processes)} | ${o.variant} | ${online} | ` +
        `${s ? `${fmt(s.loopP99Ms)} / ${fmt(s.loopMaxMs)}` : '-'} | ${s ? `${fmt(s.gcMs)} (${fmt(s.gcMajorMs)})` : '-'} |`,
    );
  }
  return lines;
}

function ceilingRows(results: BenchResults): string[] {
  const lines = ['| topology | acks | deliveries/s | p50 / p99 ms | capped by |', '|---|---|---|---|---|'];
  for (const c of results.ceiling) {
    lines.push(
      `| ${c.topology === 'one-queue' ? `one queue, ${c.keys} bindings` : `${c.keys} queues, one per key`} | ` +
        `${c.ack ? 'basic.ack each' : 'no-ack'} | ${c.deliveredPerSec} (${c.delivered}/${c.pushes}) | ` +
        `${fmt(c.p50Ms)} / ${fmt(c.p99Ms)} | ${cappedBy(c.cpu, 'rabbitmq', results.machine.cores, false)} |`,
    );
  }
  return lines;
}

/** Section 7: RabbitMQ alone, the memory and time a binding costs (scenarios/bindings.ts). */
function bindingsSection(results: BenchResults): string[] {
  const b = results.bindings;
  if (!b) return [];
  const lines = [
    '',
    '## 7. RabbitMQ cost per binding: one exclusive queue bound to one direct exchange by N keys',
    '',
    '| bindings | new ones bound in ms (binds/s) | RabbitMQ mem_used MiB | RabbitMQ RSS MiB |',
    '|---|---|---|---|',
  ];
  for (const s of b.steps) {
    const bound = s.bindings === 0 ? '-' : `${s.bindMs} (${s.bindsPerS})`;
    lines.push(`| ${s.bindings} | ${bound} | ${s.memUsedMiB ?? '-'} | ${s.rssMiB ?? '-'} |`);
  }
  const last = b.steps.at(-1)?.bindings ?? 0;
  lines.push(
    '',
    `Per binding: **${b.perBindingKiB ?? '-'} KiB** mem_used (${b.perBindingRssKiB ?? '-'} KiB RSS), from no binding to ${last}; ` +
      `${b.concurrency} binds in flight on one AMQP channel; unbinding all ${last} took ${b.unbindMs} ms. ` +
      'This is what the per-instance topology pays RabbitMQ per connected user (one binding of the instance queue per user key) and per subscribed topic.',
  );
  return lines;
}

/** Section 8: the inbox store on the local PostgreSQL (test/bench/inbox-store.ts postgres). */
function inboxSection(results: BenchResults): string[] {
  const p = results.inboxPostgres;
  if (!p) return [];
  return [
    '',
    '## 8. Inbox store on PostgreSQL: durable pushes (appends) and acks, 200-byte bodies',
    '',
    '| appends/s, one caller awaiting each | appends/s, many callers (grouped commits) | appends/s in batches of 1000 | replay of 1000 pending, median / max ms | acks/s, many single calls | acks/s in batches of 1000 |',
    '|---|---|---|---|---|---|',
    `| ${p.appendsPerSecondOneCaller} | ${p.appendsPerSecondConcurrent} | ${p.appendsPerSecondBatched1000} | ${p.replay1000MsMedian} / ${p.replay1000MsMax} | ${p.acksPerSecondConcurrentSingles} | ${p.acksPerSecondBatched1000} |`,
    '',
    "PostgreSQL 15 on this machine, one database of its own (dropped after), through the service's own store (app/inbox/sql-store.ts on app/inbox/postgres.ts), `npx tsx test/bench/inbox-store.ts postgres`.",
  ];
}

/** Section 9: the inbox through the service (test/bench/inbox-service.ts). */
function inboxServiceSection(results: BenchResults): string[] {
  const s = results.inboxService;
  if (!s) return [];
  return [
    '',
    '## 9. Inbox through the service: durable pushes beside non-durable ones, live latency, replay',
    '',
    '| REST pushes/s, non-durable | REST pushes/s, durable | durable/s in batches of 1000 | live p50 / p99 ms at 500/s | live in order | replay of 1000 pending on SUBSCRIBE, ms |',
    '|---|---|---|---|---|---|',
    `| ${s.nonDurablePerS} | ${s.durablePerS} | ${s.durableBatchPerS} | ${s.liveP50Ms} / ${s.liveP99Ms} | ${s.liveInOrder === 1 ? `yes (${s.liveMessages})` : '**no**'} | ${s.replay1000Ms} |`,
    '',
    'One service in a process of its own with its load (test/bench/inbox-service.ts), relaying to the local RabbitMQ, the inbox on the local PostgreSQL 15 (a database of its own, dropped after). Single pushes: 64 calls in flight to 200 users, non-durable (/queue/bench) then durable (/queue/inbox) on the same service in the same run; batches: 1,000 durable items per call, 2 calls in flight. Live: durable pushes at 500/s to one device subscribed with ack auto; the pusher writes performance.now() into the body, the device (same process) subtracts it on arrival. Replay: 1,000 stored, then SUBSCRIBE (ack auto) until the 1,000th MESSAGE. `npm run bench -- --only inbox` runs sections 8 and 9 alone.',
  ];
}

export function markdown(results: BenchResults): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push('# Benchmark results', '');
  lines.push(
    `Generated by \`npm run bench\` (test/bench/run.ts) on ${results.date}, mode **${results.mode}**, ` +
      `${results.durationS} s. Machine: **${m.cores} cores** (${m.cpuModel}), ${m.memoryGiB} GiB, ` +
      `Node ${m.node}, RabbitMQ ${m.rabbitmq}. Load average at start ${m.loadAvgAtStart.join(' ')}, ` +
      `at end ${m.loadAvgAtEnd.join(' ')}. Everything on loopback; the servers, the load generator ` +
      'and the client workers are separate processes, but all share these cores.',
    '',
  );
  lines.push('## Targets', '', '| target | goal | this run | met |', '|---|---|---|---|');
  for (const t of results.targets) {
    lines.push(
      `| ${t.name} | ${t.goal} | ${t.actual} | ${t.met === null ? 'n/a' : t.met ? 'yes' : '**no**'} |`,
    );
  }
  const single = results.fanout.filter((f) => f.processes === 1 && f.system !== 'socketio');
  lines.push(
    '',
    '## 1 and 4. Fan-out: one topic, 100-byte messages, one server process',
    '',
    ...fanoutRows(results, single),
  );
  const one = results.oneToOne.filter((o) => o.processes === 1 && o.system !== 'socketio');
  lines.push(
    '',
    `## 2. One-to-one: ${one[0]?.users ?? '-'} users, pushes spread over them, one server process`,
    '',
    ...oneToOneRows(results, one),
  );
  const answers = answerAndStallRows(results.oneToOne);
  if (answers.length > 0) {
    lines.push(
      '',
      '## 2a. The push answer and stalls (stomp-relay)',
      '',
      'Whether each REST push answer (single and batch items) said a live session got it, and the ' +
        "service's own event-loop delay and GC time (its /metrics) while pushes went at the paced rate. " +
        `The delay is the lag figure less its ${EVENT_LOOP_SAMPLE_MS} ms sampling period, which Node counts in every sample.`,
      '',
      ...answers,
    );
  }
  if (results.ceiling.length > 0) {
    lines.push(
      '',
      `## 2b. Physical ceiling: RabbitMQ alone, publisher with confirms, ${results.ceiling[0].keys} user keys, one consumer`,
      '',
      ...ceilingRows(results),
    );
  }
  const peerFan = results.fanout.filter((f) => f.processes > 1 || f.system === 'socketio');
  const peerOne = results.oneToOne.filter((o) => o.processes > 1 || o.system === 'socketio');
  if (peerFan.length + peerOne.length > 0) {
    lines.push(
      '',
      '## 5. Against Socket.IO + Redis, at the same number of server processes',
      '',
      'stomp-relay instances on RabbitMQ (clients split round-robin straight over them; fan-out published by a backend over AMQP to amq.topic, one-to-one to stomp-relay.user) against Socket.IO nodes on Redis (the adapter; pushes by the emitter from the load generator).',
      '',
      ...fanoutRows(results, peerFan),
      '',
      ...oneToOneRows(results, peerOne),
    );
  }
  lines.push(
    ...idleSection(results),
    ...crowdSection(results),
    ...bindingsSection(results),
    ...inboxSection(results),
    ...inboxServiceSection(results),
  );
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
