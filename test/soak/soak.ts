/**
 * `npm run soak`: the long checks that do not fit in npm test, with figures printed at the end.
 *
 *   delivery  three instances (child processes) on the local RabbitMQ; sessions churn (connect,
 *             stay a few seconds, leave) while a backend pushes over REST to random instances; in
 *             the middle RabbitMQ is stopped for --outage seconds. Every accepted push is owed to
 *             each session of its user that was subscribed before the push was sent and still
 *             connected --grace ms after the 202: lost, duplicated and misrouted must all be 0,
 *             and no push may get a 202 while the broker is down.
 *   slow      one instance (embedded broker), --slow-sessions healthy subscribers taking a topic at full rate while
 *             two clients stop reading: those two are cut off, the others get everything, and the
 *             instance's RSS stays bounded.
 *   inbox     three instances sharing one PostgreSQL database take 10,000 durable pushes to 200
 *             users whose 1-3 devices come and go at random, through a kill -9 of one instance, a
 *             RabbitMQ restart and a PostgreSQL restart: every push answered 202 must reach every
 *             device of its user (test/soak/inbox-soak.ts).
 *   fuzz      the protocol fuzzer of test/integration/faults for --fuzz-frames frames.
 *
 * Options (or SOAK_<NAME> in the environment): --mode all, or phases comma-separated from
 * delivery,slow,inbox,fuzz (default all = delivery,slow,inbox), --minutes 2, --outage 30,
 * --sessions 90, --users 30, --rate 60 (pushes/s), --grace 2000, --slow-sessions 1000,
 * --fuzz-frames 1000000; for the inbox phase
 * --inbox-pushes 10000, --inbox-users 200, --inbox-rate 150, --inbox-outage 8 (seconds each
 * restart keeps RabbitMQ and PostgreSQL down), --inbox-pg-cluster '15 main'.
 * It restarts the machine's RabbitMQ and PostgreSQL: run it under `testlock -x`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/cluster';
import { listQueues, rabbitmqctl, tcpOpen, waitForRabbit } from '../support/rabbitmq';
import { startTestService } from '../support/service';
import { sleep, waitFor } from '../support/wait';
import { signToken } from '../support/instances';
import { ReconnectingStomp } from '../support/stomp-clients';
import { account, pushWithAnswer, type PushRecord } from '../integration/faults/push-accounting';
import { Counter, stalledTcp, stalledWebSocket, type Stalled } from '../integration/faults/consumers';
import { emptyTally, fuzzWorker } from '../integration/faults/fuzz-support';
import { check, liveClusters, log, option, problems, rssMb, startInstances, traces } from './common';
import { inboxSoak, restartPostgresIfDown } from './inbox-soak';

const MODE = option('mode', 'all');
const MINUTES = Number(option('minutes', '2'));
const OUTAGE_S = Number(option('outage', '30'));
const SESSIONS = Number(option('sessions', '90'));
const USERS = Number(option('users', '30'));
const RATE = Number(option('rate', '60'));
const GRACE_MS = Number(option('grace', '2000'));
const SLOW_SESSIONS = Number(option('slow-sessions', '1000'));
const FUZZ_FRAMES = Number(option('fuzz-frames', '1000000'));

/** Samples the RSS of `pids` every second; `peak()` is the highest seen per pid. */
function rssSampler(pids: number[]): { peak(): number[]; stop(): void } {
  const peaks = pids.map(rssMb);
  const timer = setInterval(
    () => pids.forEach((pid, i) => (peaks[i] = Math.max(peaks[i]!, rssMb(pid)))),
    1000,
  );
  return { peak: () => [...peaks], stop: () => clearInterval(timer) };
}

/**
 * When RabbitMQ's STOMP port was closed, sampled every 250 ms: others sharing the machine may stop
 * the broker too, so outages are observed rather than assumed from our own rabbitmqctl calls.
 */
function brokerWatch(): { down: { from: number; to: number }[]; stop(): void } {
  const down: { from: number; to: number }[] = [];
  let open: { from: number; to: number } | undefined;
  let running = true;
  void (async () => {
    while (running) {
      const at = Date.now();
      const up = await tcpOpen(61613, 500);
      if (!up && !open) down.push((open = { from: at, to: Infinity }));
      if (up && open) {
        open.to = at;
        open = undefined;
      }
      await sleep(250);
    }
  })();
  return { down, stop: () => (running = false) };
}

/** ERROR messages the clients got, most frequent first (ids and numbers folded together). */
function errorSummary(clients: ReconnectingStomp[]): string {
  const counts = new Map<string, number>();
  for (const c of clients)
    for (const e of c.errors) {
      const key = e.replace(/[0-9a-f]{8,}|\d+/g, '#').slice(0, 120);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  return (
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([m, n]) => `${n}x "${m}"`)
      .join('; ') || 'none'
  );
}

async function leftoverQueues(prefix: string): Promise<string[]> {
  await waitForRabbit();
  return (await listQueues()).map((q) => q.name).filter((name) => name.startsWith(`stomp-relay.${prefix}`));
}

async function deliverySoak(): Promise<void> {
  const prefix = `soak-${randomBytes(2).toString('hex')}-`;
  log(
    `delivery: 3 instances, ${SESSIONS} churning sessions of ${USERS} users, ${RATE} pushes/s for ${MINUTES} min, RabbitMQ outage ${OUTAGE_S} s`,
  );
  await waitForRabbit();
  const cluster = await startInstances(
    3,
    prefix,
    { DIRECTORY_ANNOUNCE_MS: '2000', MAX_SESSIONS_PER_USER: '1000' },
    'trace',
  );
  const rss = rssSampler(cluster.instances.map((i) => i.pid));
  const watch = brokerWatch();
  const urls = cluster.instanceUrls;
  const clients: ReconnectingStomp[] = [];
  const pushes: PushRecord[] = [];
  const token = signToken(cluster.secret, 'soak-backend', 'push', 3600);
  const endAt = Date.now() + MINUTES * 60_000;
  let running = true;

  // Churn: each slot keeps one session alive for 2-12 s, then replaces it with a new one.
  const slots = [...Array(SESSIONS).keys()].map(async (slot) => {
    await sleep(slot * 20);
    while (running) {
      const user = `soak-u${Math.floor(Math.random() * USERS)}`;
      const client = new ReconnectingStomp({
        user,
        urls,
        token: signToken(cluster.secret, user, '', 3600),
        destination: '/user/queue/faults',
        reconnectDelay: 200,
        connectionTimeout: 3000,
      });
      clients.push(client);
      client.start();
      const until = Date.now() + 2000 + Math.random() * 10_000;
      while (running && Date.now() < until) await sleep(100);
      await client.stop();
    }
  });

  // Pushes: RATE per second to random users on random instances, each recorded with its answer.
  const inFlight = new Set<Promise<void>>();
  const pusher = (async () => {
    let id = 0;
    const start = Date.now();
    while (running) {
      const record: PushRecord = {
        id: id++,
        user: `soak-u${Math.floor(Math.random() * USERS)}`,
        instanceUrl: urls[Math.floor(Math.random() * urls.length)]!,
        startedAt: Date.now(),
        endedAt: 0,
        status: 0,
      };
      pushes.push(record);
      const work = pushWithAnswer(record.instanceUrl, token, record.user, record.id, 15_000).then(
        (answer) => {
          record.status = answer.status;
          record.messageId = answer.messageId;
          record.endedAt = Date.now();
        },
      );
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
      await sleep(Math.max(0, start + (id * 1000) / RATE - Date.now()));
    }
  })();

  // The outage, a third of the way in.
  let outage:
    { stopIssuedAt: number; downSeenAt: number; startIssuedAt: number; readyAt: number } | undefined;
  const outageRun = (async () => {
    if (OUTAGE_S <= 0) return;
    await sleep((endAt - Date.now()) / 3);
    const stopIssuedAt = Date.now();
    log('rabbitmqctl stop_app');
    await rabbitmqctl(['stop_app']);
    await waitFor(async () => (await fetch(`${urls[0]}/readyz`)).status === 503, 30_000, '/readyz 503');
    const downSeenAt = Date.now();
    await sleep(Math.max(0, stopIssuedAt + OUTAGE_S * 1000 - Date.now()));
    const startIssuedAt = Date.now();
    log('rabbitmqctl start_app');
    await rabbitmqctl(['start_app']);
    await waitForRabbit();
    await waitFor(
      async () => (await Promise.all(urls.map((u) => fetch(`${u}/readyz`)))).every((r) => r.status === 200),
      60_000,
      'every instance ready',
    );
    outage = { stopIssuedAt, downSeenAt, startIssuedAt, readyAt: Date.now() };
    log(
      `broker back; instances ready ${((outage.readyAt - startIssuedAt) / 1000).toFixed(1)} s after start_app`,
    );
  })();

  let lastReport = Date.now();
  while (Date.now() < endAt) {
    await sleep(1000);
    if (Date.now() - lastReport >= 15_000) {
      lastReport = Date.now();
      const live = clients.filter((c) => c.live).length;
      const accepted = pushes.filter((p) => p.status === 202).length;
      log(
        `${pushes.length} pushes (${accepted} accepted), ${live} sessions live (${clients.filter((c) => c.connected).length} connected), ${clients.length} created, ` +
          `RSS ${urls.map((_, i) => rssMb(cluster.instances[i]!.pid).toFixed(0)).join('/')} MiB; errors: ${errorSummary(clients)}`,
      );
    }
  }
  await outageRun;
  running = false;
  await pusher;
  await Promise.all([...inFlight]);
  await sleep(GRACE_MS + 1000);
  await Promise.all(slots);
  rss.stop();

  const result = account(pushes, clients, GRACE_MS);
  const connections = clients.reduce((n, c) => n + c.connections.length, 0);
  // A push RabbitMQ confirmed just as it was being stopped can be lost with the per-instance queue
  // it was routed to (those queues do not outlive their connections). Such pushes (answered within
  // 1 s before an observed outage began) are counted apart and listed; every other figure is exact.
  watch.stop();
  const outages = watch.down.map((d) => ({ from: d.from, to: Number.isFinite(d.to) ? d.to : Date.now() }));
  const byId = new Map(pushes.map((p) => [p.id, p]));
  const atStop = result.lost.filter((line) => {
    const push = byId.get(Number(/push (\d+)/.exec(line)?.[1]));
    return (
      push !== undefined && outages.some((o) => push.endedAt >= o.from - 1000 && push.startedAt <= o.from)
    );
  });
  const lostOtherwise = result.lost.filter((line) => !atStop.includes(line));
  const statuses: Record<string, number> = {};
  for (const p of pushes) statuses[p.status] = (statuses[p.status] ?? 0) + 1;
  // Pushes whose whole flight fell inside an observed outage: none may be a 202.
  const duringOutage = pushes.filter((p) => outages.some((o) => p.startedAt >= o.from && p.endedAt <= o.to));
  const acceptedWhileDown = duringOutage.filter((p) => p.status === 202).length;
  const foreign = outages.filter((o) => !outage || o.to < outage.stopIssuedAt || o.from > outage.readyAt);
  const peak = rss.peak();

  await cluster.stop();
  await sleep(3000);
  const leftovers = await leftoverQueues(prefix);

  console.log('');
  console.log('delivery soak figures');
  console.log(`  duration                 ${MINUTES} min, 3 instances, RabbitMQ outage ${OUTAGE_S} s`);
  console.log(
    `  outages observed         ${outages.map((o) => `${((o.to - o.from) / 1000).toFixed(1)} s`).join(', ') || 'none'}` +
      (foreign.length ? ` (${foreign.length} not ours: someone else stopped RabbitMQ)` : ''),
  );
  console.log(`  pushes sent              ${pushes.length}  by status ${JSON.stringify(statuses)}`);
  console.log(`  pushes accepted (202)    ${result.accepted}`);
  console.log(
    `  deliveries owed          ${result.owed}  (accepted push x sessions of the user there for its whole flight)`,
  );
  console.log(
    `  deliveries received      ${result.delivered}  (all sessions, including those that came or left mid-flight)`,
  );
  console.log(
    `  lost                     ${lostOtherwise.length}  (+ ${atStop.length} answered just as RabbitMQ was stopping)`,
  );
  console.log(`  duplicated               ${result.duplicated.length}`);
  console.log(`  misrouted                ${result.misrouted.length}`);
  console.log(`  202 while broker down    ${acceptedWhileDown} of ${duringOutage.length} pushes tried`);
  console.log(`  sessions churned         ${clients.length} sessions, ${connections} connections`);
  console.log(`  peak RSS per instance    ${peak.map((m) => `${m.toFixed(0)} MiB`).join(', ')}`);
  console.log(`  queues left behind       ${leftovers.length}`);
  console.log(`  ERROR frames to clients  ${errorSummary(clients)}`);
  console.log('');
  for (const line of atStop.slice(0, 10)) log(`  lost at the broker stop: ${line}`);
  for (const line of [...lostOtherwise, ...result.duplicated, ...result.misrouted].slice(0, 20))
    log(`  ${line}`);
  // Every loss loudly, with its trace: the push, each step it took on each instance, and the
  // session that was owed it.
  for (const line of lostOtherwise.slice(0, 10)) printLossTrace(line, byId, clients);
  check(
    lostOtherwise.length === 0 && result.duplicated.length === 0 && result.misrouted.length === 0,
    'delivery: zero lost, duplicated, misrouted',
  );
  check(
    OUTAGE_S <= 0 || (duringOutage.length > 0 && acceptedWhileDown === 0),
    'delivery: no 202 while the broker was down',
  );
  check(result.accepted > 0 && result.owed > 0, 'delivery: pushes were accepted and owed');
  check(leftovers.length === 0, `delivery: no queues left behind ${leftovers.join(' ')}`);
}

/** The trace of one `account()` loss line: `<user>[<connection>@<instance>] push <id> ...`. */
function printLossTrace(
  line: string,
  byId: Map<number, PushRecord>,
  clients: readonly ReconnectingStomp[],
): void {
  const match = /^(\S+)\[(\d+)@[^\]]*\] push (\d+)/.exec(line);
  if (!match) return;
  const push = byId.get(Number(match[3]));
  const client = clients.find((c) => c.user === match[1] && c.connections[Number(match[2])] !== undefined);
  const connection = client?.connections[Number(match[2])];
  const at = (ms: number | undefined): string =>
    ms === undefined || ms === 0 ? '-' : new Date(ms).toISOString().slice(11, 23);
  log(`LOST ${line}`);
  if (push) {
    log(
      `  push ${push.id} to ${push.user}: sent ${at(push.startedAt)}, 202 ${at(push.endedAt)} from ${push.instanceUrl}, message-id ${push.messageId ?? '?'}`,
    );
  }
  if (connection) {
    log(
      `  owed to session ${connection.session} on ${connection.instance}: subscribed ${at(connection.subscribedAt)}, closed ${at(connection.closedAt)}, received ${connection.bodies.length}`,
    );
  }
  const steps = push?.messageId === undefined ? undefined : traces.get(push.messageId);
  if (!steps || steps.length === 0) log('  no trace line for this message on any instance');
  for (const step of steps ?? []) log(`  ${step}`);
}

async function slowSoak(): Promise<void> {
  const prefix = `soak-slow-${randomBytes(2).toString('hex')}-`;
  log(`slow consumers: ${SLOW_SESSIONS} healthy sessions at full rate, 2 that stop reading`);
  const tcpPort = await freePort();
  const cluster = await startInstances(1, prefix, {
    // The embedded broker: this phase is about the instance's send path, and RabbitMQ may be
    // restarted by others sharing the machine (the delivery phase covers the relay).
    BROKER_URL: '',
    STOMP_TCP_PORT: String(tcpPort),
    SEND_BUFFER_LIMIT_BYTES: String(256 * 1024),
    SEND_TIME_LIMIT_MS: '30000',
    MAX_SESSIONS_PER_USER: '100000',
  });
  const instance = cluster.instances[0]!;
  const target = { url: instance.url, tcpPort };
  const baseline = rssMb(instance.pid);
  const counters: Counter[] = [];
  for (let i = 0; i < SLOW_SESSIONS; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(SLOW_SESSIONS, i + 50); k++) {
      batch.push(
        Counter.open(
          target,
          signToken(cluster.secret, `slow-u${k % 100}`, '', 3600),
          k % 2 === 0 ? 'websocket' : 'tcp',
          '/topic/firehose',
        ),
      );
    }
    counters.push(...(await Promise.all(batch)));
  }
  const stalled: Stalled[] = [
    await stalledTcp(target, signToken(cluster.secret, 'stalled-tcp', '', 3600), [
      '/topic/firehose',
      '/topic/bulk',
    ]),
    await stalledWebSocket(target, signToken(cluster.secret, 'stalled-ws', '', 3600), [
      '/topic/firehose',
      '/topic/bulk',
    ]),
  ];
  const connectedRss = rssMb(instance.pid);
  const rss = rssSampler([instance.pid]);
  const token = signToken(cluster.secret, 'soak-backend', 'push', 3600);
  const publish = async (
    destination: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<void> => {
    const res = await fetch(`${instance.url}/api/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ destination, body, headers }),
    });
    if (res.status !== 202)
      throw new Error(`publish to ${destination}: HTTP ${res.status} ${await res.text()}`);
  };
  const messages = 1000;
  const window = 20;
  const small = 'f'.repeat(1024);
  const bulk = 'b'.repeat(32 * 1024);
  const started = Date.now();
  for (let i = 0; i < messages; i++) {
    await publish('/topic/firehose', small, { seq: String(i) });
    if (i % 4 === 0) await publish('/topic/bulk', bulk, {});
    if (i % window === window - 1)
      await waitFor(
        () => counters.every((c) => c.received > i - window),
        60_000,
        `message ${i - window} everywhere`,
      );
  }
  await waitFor(
    () => counters.every((c) => c.received === messages),
    60_000,
    'every healthy session to get every message',
  );
  const seconds = (Date.now() - started) / 1000;
  rss.stop();
  const metrics = await (await fetch(`${instance.url}/metrics`)).text();
  const sendBufferHits = Number(
    /stomp_limits_hit_total\{limit="send_buffer"\} (\d+)/.exec(metrics)?.[1] ?? 0,
  );
  const broken = counters.filter((c) => c.closed || c.outOfOrder > 0).length;
  for (const c of counters) c.close();
  for (const s of stalled) s.close();
  await cluster.stop();

  console.log('');
  console.log('slow consumer figures');
  console.log(
    `  healthy sessions         ${SLOW_SESSIONS} (half WebSocket, half TCP), ${messages} x 1 KiB + ${messages / 4} x 32 KiB to the stalled pair`,
  );
  console.log(
    `  deliveries               ${SLOW_SESSIONS * messages} in ${seconds.toFixed(1)} s (${((SLOW_SESSIONS * messages) / seconds / 1000).toFixed(1)}k/s)`,
  );
  console.log(`  stalled sessions cut off ${sendBufferHits} of 2 (send buffer limit 256 KiB)`);
  console.log(`  healthy closed/reordered ${broken}`);
  console.log(
    `  instance RSS             ${baseline.toFixed(0)} MiB idle, ${connectedRss.toFixed(0)} MiB with sessions, peak ${rss.peak()[0]!.toFixed(0)} MiB`,
  );
  console.log('');
  check(sendBufferHits === 2, 'slow: both stalled clients cut off');
  check(broken === 0, 'slow: every healthy session got every message in order');
  check(rss.peak()[0]! - connectedRss < 150, 'slow: RSS grew less than 150 MiB while publishing');
}

async function fuzzSoak(): Promise<void> {
  const limits = { maxFrameBytes: 16_384, maxHeaders: 32, maxHeaderBytes: 1024 };
  const seed = Date.now() % 1_000_000;
  log(`fuzz: ${FUZZ_FRAMES} frames, seed ${seed}`);
  // The fuzzer SENDs and SUBSCRIBEs on /topic/**: open those, as the npm test does.
  const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-soak-'));
  const authorizationFile = join(dir, 'authorization.json');
  const open = [{ destination: '/topic/**', users: '*' }];
  writeFileSync(authorizationFile, JSON.stringify({ subscribe: open, send: open }));
  const service = await startTestService({
    stompTcpPort: 0,
    ...limits,
    maxFramesPerSecond: 1_000_000,
    authorizationFile,
  });
  const tally = emptyTally();
  const started = Date.now();
  const heapBefore = process.memoryUsage().heapUsed;
  const options = { seed, target: FUZZ_FRAMES, limits };
  const deadline = started + 60 * 60_000;
  await Promise.all(
    [0, 1, 2, 3].map((w) =>
      fuzzWorker(service, w % 2 === 0 ? 'tcp' : 'websocket', w, tally, deadline, options),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log('');
  console.log('fuzz figures');
  console.log(
    `  frames                   ${tally.frames} in ${seconds.toFixed(0)} s over ${tally.connections} connections (seed ${seed})`,
  );
  console.log(
    `  batches                  ${tally.batches}: clean ${tally.clean}, known-bad ${tally.knownBad}, mutated survived ${tally.mutatedSurvived} / refused ${tally.mutatedRefused} / unfinished ${tally.incomplete}`,
  );
  console.log(
    `  heap                     ${(heapBefore / 1048576).toFixed(0)} -> ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MiB (no gc forced)`,
  );
  console.log('');
  for (const f of tally.failures) log(`  ${f}`);
  check(tally.failures.length === 0, 'fuzz: every batch answered as the oracle says');
}

async function main(): Promise<void> {
  const modes = new Set(MODE === 'all' ? ['delivery', 'slow', 'inbox'] : MODE.split(','));
  const unknown = [...modes].filter((m) => !['delivery', 'slow', 'inbox', 'fuzz'].includes(m));
  if (unknown.length > 0)
    throw new Error(`--mode must be all, or some of delivery,slow,inbox,fuzz (got ${MODE})`);
  if (modes.has('delivery')) await deliverySoak();
  if (modes.has('slow')) await slowSoak();
  if (modes.has('inbox')) await inboxSoak();
  if (modes.has('fuzz')) await fuzzSoak();
  if (problems.length > 0) {
    log(`${problems.length} check(s) failed: ${problems.join('; ')}`);
    process.exit(1);
  }
  log('all checks passed');
  process.exit(0);
}

main().catch(async (err: unknown) => {
  log(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  // Never leave the broker or PostgreSQL stopped, or instances and nginx running, for whoever comes next.
  await rabbitmqctl(['start_app']).catch(() => undefined);
  await restartPostgresIfDown();
  await Promise.all([...liveClusters].map((c) => c.stop().catch(() => undefined)));
  process.exit(1);
});
