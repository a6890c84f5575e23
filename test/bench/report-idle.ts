/** RESULTS.md's idle parts: sessions held idle on one instance (and Socket.IO's), and the crowd. */
import type { BenchResults } from './report';

const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));
const mib = (kib: number | null | undefined): string =>
  kib === null || kib === undefined ? '-' : (kib / 1024).toFixed(1);
const perSec = (n: number, ms: number): string => (ms > 0 ? String(Math.round((n / ms) * 1000)) : '-');

export function idleSection(results: BenchResults): string[] {
  const lines: string[] = [];
  const idle = results.idle;
  if (idle) {
    lines.push(
      '',
      `## 3. Idle sessions on one instance (each its own user, subscribed to ${idle.destination})`,
      '',
      '| sessions | opened in ms (sessions/s) | RSS MiB | V8 heap MiB | STOMP / AMQP connections to RabbitMQ | broker reconnects so far | RabbitMQ queues of the instance | RabbitMQ mem_used MiB | RabbitMQ RSS MiB |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    let before = 0;
    for (const l of idle.levels) {
      lines.push(
        `| ${l.sessions}${l.sessions < l.requested ? ` of ${l.requested}` : ''} | ${l.openMs} (${perSec(l.sessions - before, l.openMs)}) | ` +
          `${mib(l.rssKiB)} | ${mib(l.heapUsedKiB)} | ${l.stompConnections} / ${l.amqpConnections} | ${l.brokerReconnects} | ${fmt(l.brokerQueues)} | ` +
          `${mib(l.brokerMemKiB)} | ${mib(l.brokerRssKiB)} |`,
      );
      before = l.sessions;
    }
    lines.push(
      '',
      `Per session: **${fmt(idle.perSessionKiB)} KiB RSS** in the service (${fmt(idle.perSessionHeapKiB)} KiB of it V8 heap); ` +
        `per connected user in RabbitMQ: **${fmt(idle.brokerPerUserKiB)} KiB** mem_used (${fmt(idle.brokerRssPerUserKiB)} KiB RSS). ` +
        `Baseline RSS with no session: ${mib(idle.baselineRssKiB)} MiB. Service CPU while holding the top level idle: ` +
        `${idle.idleCpuPercent}% of a core. Broker pool size ${idle.poolSize}; the AMQP connection is the session directory. ` +
        'Each step is one connect storm: its time runs until every SUBSCRIBE of the step has its RECEIPT.' +
        (idle.cappedBy ? ` Top level capped: ${idle.cappedBy}.` : ''),
    );
  }
  const peer = results.peerIdle;
  if (peer) {
    lines.push(
      '',
      `### Socket.IO x${peer.nodes}: idle connections, each in its own user room`,
      '',
      '| connections | opened in ms | nodes RSS MiB (all) | Redis used_memory MiB |',
      '|---|---|---|---|',
    );
    for (const l of peer.levels) {
      lines.push(
        `| ${l.sessions}${l.sessions < l.requested ? ` of ${l.requested}` : ''} | ${l.openMs} | ${mib(l.rssKiB)} | ${mib(l.redisMemKiB)} |`,
      );
    }
    lines.push(
      '',
      `Per connection: **${fmt(peer.perSessionKiB)} KiB RSS** over the nodes; Redis: ${fmt(peer.redisPerSessionKiB)} KiB per connection. ` +
        `Nodes' CPU while holding the top level idle: ${peer.idleCpuPercent}% of a core.` +
        (peer.cappedBy ? ` Top level capped: ${peer.cappedBy}.` : ''),
    );
  }
  return lines;
}

export function crowdSection(results: BenchResults): string[] {
  if (results.crowd.length === 0) return [];
  const lines = [
    '',
    `## 6. A crowd on one instance: ${results.crowd[0].requested} idle sessions asked for, ${results.crowd[0].heartbeatMs / 1000} s heart-beats, all connecting at once`,
    '',
    '| subscribed to | sessions | time to accept all (sessions/s) | RSS per session KiB | heart-beat CPU % of a core | STOMP / AMQP connections to RabbitMQ | broker reconnects | RabbitMQ queues of the instance | push to one user: p50 / p99 / max ms | closed early |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results.crowd) {
    const what =
      r.subscription === 'topic'
        ? `${r.destination} (fallback: one topic)`
        : `${r.destination} (each its own user)`;
    lines.push(
      `| ${what} | ${r.sessions} of ${r.target}${r.target < r.requested ? ` (${r.requested} asked)` : ''} | ` +
        `${r.acceptMs} ms (${perSec(r.sessions, r.acceptMs)}) | ${fmt(r.perSessionKiB)} | ${r.heartbeatCpuPercent} | ` +
        `${r.stompConnections} / ${r.amqpConnections} | ${r.brokerReconnects} | ${fmt(r.brokerQueues)} | ` +
        `${fmt(r.push.p50Ms)} / ${fmt(r.push.p99Ms)} / ${fmt(r.push.maxMs)} (${r.push.delivered}/${r.push.pushes}) | ${r.closedEarly} |`,
    );
  }
  for (const r of results.crowd) {
    if (r.cappedBy) lines.push('', `${r.destination}: capped at ${r.target}: ${r.cappedBy}.`);
    if (r.stoppedBy) lines.push('', `${r.destination}: stopped short: ${r.stoppedBy}.`);
  }
  lines.push(
    '',
    `Client workers: ${results.crowd.map((r) => r.workers).join(' / ')}, each with its own loopback source address; service open-files limit ${results.crowd.map((r) => r.fdLimit).join(' / ')}.`,
  );
  return lines;
}
