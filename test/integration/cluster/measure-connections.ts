/**
 * The figures issue 3 asks for in its closing note (not a test; run it by hand):
 *
 *   npx tsx test/integration/cluster/measure-connections.ts [sessions...]   (default 1 100 1000)
 *
 * 1. One instance (child process) on the local RabbitMQ; this process opens @stomp/stompjs sessions
 *    over /stomp up to each count (spread over 25 users, under MAX_SESSIONS_PER_USER; each session
 *    subscribes to its /user/queue/greetings and to one shared topic), then counts the instance's
 *    ESTABLISHED TCP connections to port 61613 with `ss -tnp` (by the child's pid), and checks that
 *    a topic publish reaches every session through them.
 * 2. Three instances serving two users (alice, bob: one /stomp session each per instance, subscribed
 *    to /user/queue/greetings) and one topic (/topic/prices): the queues RabbitMQ's management API
 *    shows for those instances, then the same after the instances are stopped (SIGTERM).
 */
import { execFileSync } from 'node:child_process';
import { startInstances, stopInstances, type Instance } from '../../support/instances';
import { connectionsTo, listQueues, waitForRabbit, type QueueInfo } from '../../support/rabbitmq';
import { sleep, waitFor } from '../../support/wait';
import { StompClients, type MessageLog } from '../../support/stomp-clients';
import { publish } from './api';

const STOMP_PORT = 61613;
/** Not part of the figure asked for, shown for completeness: session directory and backend bridge. */
const AMQP_PORT = 5672;
const USERS = 25;
const run = Math.random().toString(16).slice(2, 8);

function ssLines(pid: number): string[] {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${STOMP_PORT} )`], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((line) => line.includes(`pid=${pid},`));
}

function queueRows(queues: QueueInfo[]): string[] {
  return queues.map((q) => {
    const flags = [
      q.durable ? 'durable' : 'transient',
      q.auto_delete ? 'auto-delete' : '',
      q.exclusive ? 'exclusive' : '',
    ]
      .filter(Boolean)
      .join(',');
    return `  ${q.name.padEnd(52)} ${flags.padEnd(32)} consumers=${q.consumers}`;
  });
}

async function queuesOf(instances: readonly Instance[]): Promise<QueueInfo[]> {
  const prefixes = instances.map((i) => `stomp-relay.${i.id}.`);
  return (await listQueues())
    .filter((q) => prefixes.some((p) => q.name.startsWith(p)))
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function measureConnections(targets: number[]): Promise<void> {
  const [instance] = await startInstances(1, { prefix: `measure${run}-` });
  const clients = new StompClients({ waitMs: 5000 });
  const topic = `/topic/measure-${run}`;
  const subs: MessageLog[] = [];
  const results: string[] = [];
  try {
    console.log(`instance ${instance.id} pid ${instance.pid} port ${instance.port}; before any session:`);
    console.log(`  connections to ${STOMP_PORT}: ${connectionsTo(STOMP_PORT, instance.pid)}`);
    for (const target of targets) {
      const have = clients.size;
      await clients.connectMany(
        target - have,
        instance,
        (i) => `m${(have + i) % USERS}`,
        async (client) => {
          await client.subscribe('/user/queue/greetings');
          subs.push(await client.subscribe(topic));
        },
      );
      await sleep(500);
      const toBroker = connectionsTo(STOMP_PORT, instance.pid);
      const toAmqp = connectionsTo(AMQP_PORT, instance.pid);
      const fromClients = connectionsTo(instance.port, process.pid);
      const sent = await publish(instance, topic, `at ${target}`);
      await waitFor(
        () => subs.every((s) => s.bodies().includes(`at ${target}`)),
        30_000,
        `the topic message to reach all ${subs.length} sessions`,
      );
      const line =
        `${String(target).padStart(5)} sessions: ${toBroker} TCP connection(s) from the instance to :${STOMP_PORT}, ${toAmqp} to :${AMQP_PORT}` +
        ` (client sockets to the instance, incl. fetch keep-alive: ${fromClients}; topic publish ${sent.status}, delivered to all ${subs.length})`;
      results.push(line);
      console.log(line);
      for (const row of ssLines(instance.pid)) console.log(`    ${row.replace(/\s+/g, ' ')}`);
    }
  } finally {
    await clients.closeAll();
    const status = await instance.stop();
    console.log(`instance stopped: exit ${status.code}`);
  }
  console.log('\nSummary:');
  for (const line of results) console.log(`  ${line}`);
}

async function listQueuesDuringAndAfter(): Promise<void> {
  const instances = await startInstances(3, { prefix: `demo${run}-` });
  const clients = new StompClients({ waitMs: 5000 });
  try {
    for (const instance of instances) {
      for (const user of ['alice', 'bob']) {
        const client = await clients.connect(instance, user);
        await client.subscribe('/user/queue/greetings');
        await client.subscribe('/topic/prices');
      }
    }
    // `consumers` comes from the management stats, which lag by up to their 5 s interval.
    await waitFor(
      async () => {
        const queues = await queuesOf(instances);
        return queues.length === 12 && queues.every((q) => q.consumers > 0);
      },
      15_000,
      'consumer counts in the management API',
    ).catch((err: unknown) => console.log(String(err)));
    console.log(
      `\nQueues while ${instances.map((i) => i.id).join(', ')} serve alice, bob and /topic/prices:`,
    );
    for (const row of queueRows(await queuesOf(instances))) console.log(row);
  } finally {
    await clients.closeAll();
    const statuses = await stopInstances(instances);
    console.log(`\nInstances stopped (SIGTERM): exit codes ${statuses.map((s) => s.code).join(', ')}`);
  }
  await waitFor(async () => (await queuesOf(instances)).length === 0, 10_000, 'queues to go').catch(
    (err: unknown) => console.log(String(err)),
  );
  const left = await queuesOf(instances);
  console.log(`Queues of those instances after the stop: ${left.length === 0 ? '(none)' : ''}`);
  for (const row of queueRows(left)) console.log(row);
}

async function main(): Promise<void> {
  const targets = process.argv.slice(2).map(Number);
  await waitForRabbit(30_000);
  await measureConnections(targets.length > 0 ? targets : [1, 100, 1000]);
  await listQueuesDuringAndAfter();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
