/**
 * The soak's inbox phase (issue 13): --inbox-pushes durable pushes (default 10,000) to --inbox-users
 * users (200) whose 1-3 devices connect and disconnect at random across three instances sharing one
 * PostgreSQL database, while one instance is killed with kill -9 (and started again), RabbitMQ is
 * restarted (stop_app, --inbox-outage seconds, start_app) and PostgreSQL is restarted (stopped for
 * as long, then started: pg_ctlcluster). Needs the exclusive test lock: it restarts the machine's
 * RabbitMQ and PostgreSQL.
 *
 * A push is a REST call with an Idempotency-Key to a random instance, retried (same key, another
 * instance) while it gets no answer or a 503, within 60 s: what a careful backend does. Once the
 * pushes are done every device has a last session, which must bring it everything its user was
 * answered 202 for. Printed: pushed, accepted, delivered per device, acked, redelivered, duplicated
 * beyond redelivery, lost; a loss is printed with the push's calls, the device's sessions, the
 * status call's answer and the instances' trace lines of that message.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

import type { Cluster } from '../support/cluster';
import { signToken } from '../support/instances';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../support/postgres-databases';
import { listQueues, rabbitmqctl, waitForRabbit } from '../support/rabbitmq';
import { sleep, waitFor } from '../support/wait';
import { check, log, option, startInstances, traces } from './common';
import { accountInbox, Device, type Duplicate, type InboxAccount, type InboxPush } from './inbox-devices';

const PUSHES = Number(option('inbox-pushes', '10000'));
const USERS = Number(option('inbox-users', '200'));
const RATE = Number(option('inbox-rate', '150'));
const OUTAGE_S = Number(option('inbox-outage', '8'));
/** The machine's PostgreSQL cluster, as pg_ctlcluster names it. */
const PG_CLUSTER = option('inbox-pg-cluster', '15 main').split(' ');
const IN_FLIGHT = 64;
const RETRY_FOR_MS = 60_000;
const DRAIN_MS = 90_000;

const execFileAsync = promisify(execFile);
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

/** The machine's PostgreSQL started, if the phase failed while it was stopped. */
export async function restartPostgresIfDown(): Promise<void> {
  await pgctl('start').catch(() => undefined);
}

async function pgctl(action: 'stop' | 'start'): Promise<void> {
  await execFileAsync('pg_ctlcluster', ['--skip-systemctl-redirect', ...PG_CLUSTER, action], {
    timeout: 60_000,
  });
}

/** One push, retried with its key until it is answered other than 503, or RETRY_FOR_MS passes. */
async function push(p: InboxPush, urls: readonly string[], token: string): Promise<void> {
  const until = Date.now() + RETRY_FOR_MS;
  for (;;) {
    const url = pick(urls);
    const attempt: InboxPush['attempts'][number] = { url, at: Date.now() };
    p.attempts.push(attempt);
    try {
      const res = await fetch(`${url}/api/users/${p.user}/messages`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'idempotency-key': p.key,
        },
        body: JSON.stringify({ destination: '/queue/inbox', body: `i${p.index}` }),
        signal: AbortSignal.timeout(15_000),
      });
      attempt.status = res.status;
      p.status = res.status;
      const body = (await res.json().catch(() => ({}))) as { id?: string; seq?: number };
      if (res.status === 202) {
        p.id = body.id;
        p.seq = body.seq;
        return;
      }
      if (res.status !== 503) return;
    } catch (err: unknown) {
      attempt.error = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= until) return;
    await sleep(200 + Math.random() * 800);
  }
}

/** Pushes every one of `pushes`, paced at RATE/s, at most IN_FLIGHT at once; `sent` counts them out. */
async function pushAll(pushes: InboxPush[], urls: readonly string[], token: string, sent: { n: number }) {
  const inFlight = new Set<Promise<void>>();
  const start = Date.now();
  for (const p of pushes) {
    while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    const work = push(p, urls, token).finally(() => inFlight.delete(work));
    inFlight.add(work);
    sent.n++;
    await sleep(Math.max(0, start + (sent.n * 1000) / RATE - Date.now()));
  }
  await Promise.all([...inFlight]);
}

/** Connects, stays 1-8 s, is cut off, stays away up to 4 s, again, until `running()` is false. */
async function churn(device: Device, urls: readonly string[], running: () => boolean): Promise<void> {
  await sleep(Math.random() * 3000);
  while (running()) {
    if (await device.open(pick(urls))) {
      const until = Date.now() + 1000 + Math.random() * 7000;
      while (running() && device.connected && Date.now() < until) await sleep(100);
    }
    device.close();
    const back = Date.now() + Math.random() * 4000;
    while (running() && Date.now() < back) await sleep(100);
  }
}

async function everyInstanceReady(urls: readonly string[], what: string): Promise<void> {
  const ready = async (url: string): Promise<boolean> => {
    const body = (await (await fetch(`${url}/readyz`)).json()) as { status?: string; inbox?: string };
    return body.status === 'ready' && body.inbox === 'ready';
  };
  await waitFor(async () => (await Promise.all(urls.map(ready))).every(Boolean), 90_000, what);
}

interface FaultTimes {
  killAt?: number;
  rabbitDown?: [number, number];
  postgresDown?: [number, number];
}

/** The three faults, one after the other, as the pushes pass 15 %, 40 % and 70 %. */
async function faults(cluster: Cluster, sent: { n: number }, killed: Set<string>): Promise<FaultTimes> {
  const times: FaultTimes = {};
  const urls = cluster.instanceUrls;
  const passing = (share: number): Promise<void> =>
    waitFor(() => sent.n >= PUSHES * share, 30 * 60_000, `${share * 100} % of the pushes`);

  await passing(0.15);
  const victim = cluster.instances[2]!;
  killed.add(victim.id);
  log(`kill -9 ${victim.id} (pid ${victim.pid})`);
  times.killAt = Date.now();
  process.kill(victim.pid, 'SIGKILL');
  await sleep(3000);
  await cluster.restartInstance(2);
  log(`${victim.id} started again`);

  await passing(0.4);
  log('rabbitmqctl stop_app');
  const rabbitFrom = Date.now();
  await rabbitmqctl(['stop_app']);
  await sleep(OUTAGE_S * 1000);
  log('rabbitmqctl start_app');
  for (let attempt = 1; ; attempt++) {
    await rabbitmqctl(['start_app']);
    try {
      await waitForRabbit(20_000);
      break;
    } catch (err: unknown) {
      if (attempt >= 3) throw err;
    }
  }
  await everyInstanceReady(urls, 'every instance ready after RabbitMQ came back');
  times.rabbitDown = [rabbitFrom, Date.now()];

  await passing(0.7);
  log(`pg_ctlcluster ${PG_CLUSTER.join(' ')} stop`);
  const pgFrom = Date.now();
  await pgctl('stop');
  await sleep(OUTAGE_S * 1000);
  log(`pg_ctlcluster ${PG_CLUSTER.join(' ')} start`);
  await pgctl('start');
  await everyInstanceReady(urls, 'every instance ready after PostgreSQL came back');
  times.postgresDown = [pgFrom, Date.now()];
  return times;
}

/** Every device's last session, on a random instance, until it has all it is owed (or DRAIN_MS). */
async function drain(devices: Device[], pushes: InboxPush[], urls: readonly string[]): Promise<void> {
  const owedTo = (d: Device): InboxPush[] => pushes.filter((p) => p.user === d.user && p.status === 202);
  const until = Date.now() + DRAIN_MS;
  const owed = new Map(devices.map((d) => [d, owedTo(d)]));
  const complete = (d: Device): boolean => owed.get(d)!.every((p) => d.got.has(p.index));
  for (let i = 0; i < devices.length; i += 50) {
    await Promise.all(
      devices.slice(i, i + 50).map(async (d) => {
        while (!(await d.open(pick(urls))) && Date.now() < until) await sleep(500);
      }),
    );
  }
  // A device whose last session was cut anyway (none should be) comes back until the deadline.
  while (Date.now() < until && !devices.every(complete)) {
    for (const d of devices) if (!d.connected && !complete(d)) await d.open(pick(urls));
    await sleep(250);
  }
  await sleep(1000); // past any delivery still on its way: a duplicate would show now
  for (const d of devices) d.close();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const at = (ms: number | undefined): string =>
  ms === undefined || ms === 0 ? '-' : new Date(ms).toISOString().slice(11, 23);

async function printLoss(loss: InboxAccount['lost'][number], urls: readonly string[], token: string) {
  const { device, push } = loss;
  log(
    `LOST push ${push.index} to ${push.user} (id ${push.id}, seq ${push.seq}) never reached ${device.name}`,
  );
  for (const a of push.attempts) log(`  call ${at(a.at)} ${a.url}: ${a.status ?? a.error ?? 'no answer'}`);
  for (const [i, s] of device.sessions.entries())
    log(
      `  session ${i} on ${s.url}: ${at(s.openedAt)} - ${at(s.closedAt)}, ${s.messages} messages, last seq ${s.lastSeq}`,
    );
  if (push.id !== undefined) {
    const res = await fetch(`${pick(urls)}/api/users/${push.user}/messages/${push.id}`, {
      headers: { authorization: `Bearer ${token}` },
    }).catch((err: unknown) => err as Error);
    log(`  status call: ${res instanceof Error ? res.message : `${res.status} ${await res.text()}`}`);
  }
  const steps = push.id === undefined ? undefined : traces.get(push.id);
  if (!steps || steps.length === 0) log('  no trace line for this message on any instance');
  for (const step of steps ?? []) log(`  ${step}`);
}

/** REST calls by answer: `{"202": n, "503": n, "no answer": n}`. */
function callsByAnswer(pushes: readonly InboxPush[]): string {
  const counts: Record<string, number> = {};
  for (const p of pushes)
    for (const a of p.attempts) {
      const key = a.status === undefined ? 'no answer' : String(a.status);
      counts[key] = (counts[key] ?? 0) + 1;
    }
  return JSON.stringify(counts);
}

function printFigures(
  a: InboxAccount,
  pushes: readonly InboxPush[],
  devices: Device[],
  times: FaultTimes,
  seconds: number,
): void {
  const perDevice = devices.map((d) => d.messages).sort((x, y) => x - y);
  const sessions = devices.reduce((n, d) => n + d.sessions.length, 0);
  const span = (t?: [number, number]): string => (t ? `${((t[1] - t[0]) / 1000).toFixed(1)} s` : '-');
  console.log('');
  console.log('inbox soak figures');
  console.log(
    `  run                      ${seconds.toFixed(0)} s, 3 instances on one PostgreSQL database, ${USERS} users, ${devices.length} devices`,
  );
  console.log(
    `  faults                   kill -9 at ${at(times.killAt)}; RabbitMQ down ${span(times.rabbitDown)} (to every instance ready); PostgreSQL down ${span(times.postgresDown)}`,
  );
  console.log(`  pushed                   ${a.pushed}`);
  console.log(`  accepted (202)           ${a.accepted}`);
  console.log(`  REST calls (retries)     ${callsByAnswer(pushes)}`);
  console.log(`  owed (device x 202)      ${a.owed}`);
  console.log(
    `  delivered per device     total ${perDevice.reduce((n, m) => n + m, 0)}; min ${perDevice[0] ?? 0}, median ${percentile(perDevice, 50)}, max ${perDevice.at(-1) ?? 0}`,
  );
  console.log(`  acked                    ${devices.reduce((n, d) => n + d.acked, 0)}`);
  console.log(`  redelivered              ${devices.reduce((n, d) => n + d.redelivered, 0)}`);
  console.log(`  duplicated beyond redel. ${a.duplicates.length}`);
  console.log(`  out of order in session  ${a.outOfOrder}`);
  console.log(`  lost                     ${a.lost.length}`);
  console.log(`  delivered, never 202     ${a.ambiguousDelivered} (a 503 or cut call whose commit held)`);
  console.log(`  delivered, never pushed  ${a.neverPushed.length}`);
  console.log(
    `  sessions                 ${sessions} (${devices.reduce((n, d) => n + d.failedConnects, 0)} refused or cut before subscribed)`,
  );
}

export async function inboxSoak(): Promise<void> {
  const run = randomBytes(2).toString('hex');
  const prefix = `soak-inbox-${run}-`;
  log(
    `inbox: ${PUSHES} durable pushes at ${RATE}/s to ${USERS} users with 1-3 devices each, 3 instances; kill -9, RabbitMQ and PostgreSQL restarts of ${OUTAGE_S} s`,
  );
  await waitForRabbit();
  const database = await createTestDatabase();
  const killed = new Set<string>();
  let cluster: Cluster | undefined;
  try {
    cluster = await startInstances(
      3,
      prefix,
      {
        INBOX_DATABASE_URL: testDatabaseUrl(database),
        INBOX_CATCH_UP_MS: '2000',
        DIRECTORY_ANNOUNCE_MS: '2000',
        MAX_SESSIONS_PER_USER: '1000',
      },
      'trace',
      (source) => killed.has(source),
    );
    const urls = cluster.instanceUrls;
    const token = signToken(cluster.secret, 'soak-backend', 'push', 3600);
    const devices: Device[] = [];
    for (let u = 0; u < USERS; u++) {
      const user = `inbox-${run}-u${u}`;
      const count = 1 + Math.floor(Math.random() * 3);
      for (let d = 0; d < count; d++)
        devices.push(new Device(user, `d${d}`, signToken(cluster.secret, user, '', 3600)));
    }
    const users = [...new Set(devices.map((d) => d.user))];
    const pushes: InboxPush[] = Array.from({ length: PUSHES }, (_, index) => ({
      index,
      user: pick(users),
      key: `soak-${run}-${index}`,
      attempts: [],
      status: 0,
    }));
    const started = Date.now();
    let running = true;
    const sent = { n: 0 };
    const churning = devices.map((d) => churn(d, urls, () => running));
    const faulting = faults(cluster, sent, killed);
    // Awaited once the pushes are done; a fault that fails before then must not end the process
    // as an unhandled rejection (the finally below still stops the instances).
    faulting.catch(() => undefined);
    const progress = setInterval(() => {
      const accepted = pushes.filter((p) => p.status === 202).length;
      log(
        `${sent.n} pushes sent (${accepted} accepted), ${devices.filter((d) => d.connected).length} devices connected, ${devices.reduce((n, d) => n + d.messages, 0)} delivered`,
      );
    }, 15_000);
    try {
      await pushAll(pushes, urls, token, sent);
    } finally {
      clearInterval(progress);
    }
    const times = await faulting;
    running = false;
    await Promise.all(churning);
    log('pushes done; every device has its last session');
    await drain(devices, pushes, urls);

    const account = accountInbox(pushes, devices);
    // A delivery the store cannot record (PostgreSQL down) is held back until it can
    // (app/delivery/durable-subscription.ts), so none may come again without `redelivered`; those
    // first delivered while PostgreSQL was out (or a second before) are still counted apart.
    const pg = times.postgresDown;
    const storeOut = (d: Duplicate): boolean =>
      pg !== undefined && d.firstAt >= pg[0] - 1000 && d.firstAt <= pg[1];
    const unrecorded = account.duplicates.filter(storeOut);
    printFigures(account, pushes, devices, times, (Date.now() - started) / 1000);
    console.log(
      `  of the duplicates        ${unrecorded.length} first delivered while PostgreSQL was out, ${account.duplicates.length - unrecorded.length} otherwise`,
    );
    console.log('');
    for (const d of account.duplicates.slice(0, 20)) log(`  duplicate: ${d.line}`);
    for (const line of account.neverPushed.slice(0, 20)) log(`  ${line}`);
    for (const loss of account.lost.slice(0, 10)) await printLoss(loss, urls, token);
    check(account.lost.length === 0, `inbox: lost 0 (${account.lost.length})`);
    check(
      account.duplicates.length === 0,
      `inbox: no duplicate beyond redelivery, and no redelivery missing its flag (${account.duplicates.length}; ${unrecorded.length} first delivered while PostgreSQL was out)`,
    );
    check(account.outOfOrder === 0, `inbox: in inbox-seq order on every session (${account.outOfOrder} out)`);
    check(account.neverPushed.length === 0, 'inbox: nothing delivered that was not pushed to that user');
    check(
      account.accepted === account.pushed,
      `inbox: every push accepted within its retries (${account.accepted} of ${account.pushed})`,
    );
  } finally {
    await cluster?.stop();
    await dropTestDatabase(database).catch((err: unknown) => log(`dropping ${database}: ${String(err)}`));
  }
  await sleep(3000);
  const left = (await listQueues()).filter((q) => q.name.startsWith(`stomp-relay.${prefix}`));
  check(left.length === 0, `inbox: no queues left behind ${left.map((q) => q.name).join(' ')}`);
}
