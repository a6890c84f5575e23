/**
 * The parts of one `npm run bench`, in the order it runs them, in stages that each start the
 * servers they need together and stop them at the end of the stage: starting is not measured, and
 * a server started once serves every part of its stage (the one-instance runs use the first
 * instance of the smallest pair, whose other instance idles meanwhile; the Socket.IO idle run uses
 * that pair's nodes).
 * What the parts share is a `Run` (bench-run.ts).
 */
import type { Run } from './bench-run';
import { SMOKE } from './harness';
import {
  AMQP_URL,
  DIRECT_QUEUE_PREFIX,
  bareFanout,
  productFanout,
  productOneToOne,
  socketIoFanout,
  socketIoOneToOne,
  webStompFanout,
  webStompOneToOne,
} from './lineup';
import { brokerNode, deleteQueues, queueCount, queuesStartingWith } from './rabbit';
import { runBindings } from './scenarios/bindings';
import { runCeiling } from './scenarios/ceiling';
import { runInboxPostgres } from './scenarios/inbox-postgres';
import { runInboxService } from './scenarios/inbox-service';
import { crowdFdLimit, runCrowd } from './scenarios/crowd';
import { runFanout, type FanoutTarget } from './scenarios/fanout';
import { runIdle } from './scenarios/idle';
import { runPeerIdle } from './scenarios/idle-socketio';
import { runOneToOne, type OneToOneSetup } from './scenarios/one-to-one';
import type { Spawned } from './processes';
import type { SocketIoCluster } from './lineup';

/** The parts of a run, as `--only` names them. */
export const SCENARIOS = [
  'fanout',
  'one-to-one',
  'ceiling',
  'peers',
  'idle',
  'crowd',
  'bindings',
  'inbox',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

const POOL_SIZE = 2; // BROKER_POOL_SIZE default
/** Sockets left free on RabbitMQ for everyone else (other tests, our own pools). */
const BROKER_SOCKET_RESERVE = 60;

async function fanoutAt(run: Run, target: FanoutTarget, counts: number[]): Promise<void> {
  for (const n of counts) {
    await run.attempt(`fan-out, ${target.system} x${target.processes} at ${n}`, async () => {
      run.measured.fanout.push(await runFanout(run.ctx, target, n));
    });
  }
}

async function oneToOne(run: Run, setup: OneToOneSetup): Promise<void> {
  await run.attempt(`one-to-one, ${setup.system} x${setup.processes}`, async () => {
    run.measured.oneToOne.push(...(await runOneToOne(run.ctx, setup)));
  });
}

/** Fan-out subscribers Web-STOMP can take now, within RabbitMQ's free sockets. */
async function webStompRoom(run: Run, wanted: number): Promise<number> {
  const now = await brokerNode();
  if (now.socketsTotal === undefined || now.socketsUsed === undefined) return wanted;
  const room = now.socketsTotal - now.socketsUsed - BROKER_SOCKET_RESERVE - 1;
  if (room >= wanted) return wanted;
  run.notes.push(
    `RabbitMQ had ${now.socketsUsed}/${now.socketsTotal} sockets in use: the Web-STOMP comparison ran at ${Math.max(0, room)} subscribers instead of ${wanted}.`,
  );
  return Math.max(1, room);
}

/** Fan-out and one-to-one on one instance, beside Web-STOMP direct and the bare-ws ceiling. */
async function measureSingle(run: Run, instance: Spawned, only: Set<Scenario>): Promise<void> {
  const { sizes, pids } = run;
  const instances = [instance];
  const bare = await run.startBare();
  try {
    if (only.has('fanout')) {
      let compare = Math.min(sizes.fanout.compareSubscribers, sizes.fanout.subscribers);
      if (run.setup.webStomp) {
        compare = await webStompRoom(run, compare);
        await fanoutAt(run, webStompFanout(pids), [compare]);
      }
      for (const n of new Set([compare, sizes.fanout.subscribers])) {
        await fanoutAt(run, productFanout(instances, run.ctx.secret, pids), [n]);
        await fanoutAt(run, bareFanout(bare, pids), [n]);
      }
    }
    if (only.has('one-to-one')) {
      await oneToOne(run, productOneToOne(instances, run.ctx.secret, sizes.oneToOne.batchSize, pids));
      if (run.setup.webStomp) {
        await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
        await oneToOne(run, webStompOneToOne(pids));
        await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
      }
    }
  } finally {
    await run.stopAll([bare]);
  }
}

/** RabbitMQ alone: the physical ceiling of one-to-one traffic. */
async function measureCeiling(run: Run): Promise<void> {
  await run.attempt('ceiling, bare AMQP', async () => {
    run.measured.ceiling.push(...(await runCeiling(run.ctx, AMQP_URL, { ...run.pids })));
  });
}

/** stomp-relay on N instances against Socket.IO on N nodes: fan-out at `fanCounts`, and one-to-one. */
async function measurePeers(
  run: Run,
  instances: Spawned[],
  cluster: SocketIoCluster,
  fanCounts: number[],
): Promise<void> {
  const { sizes, pids } = run;
  await fanoutAt(run, productFanout(instances, run.ctx.secret, pids, 'backend'), fanCounts);
  await oneToOne(run, productOneToOne(instances, run.ctx.secret, sizes.oneToOne.batchSize, pids));
  await fanoutAt(run, socketIoFanout(cluster, run.ctx.secret, pids), fanCounts);
  await oneToOne(run, socketIoOneToOne(cluster, run.ctx.secret, pids));
}

/** Server processes of stage `n`, started together (a failure to start is the stage's failure). */
async function startStage(
  run: Run,
  relay: number,
  socketIo: number,
  options: { profile?: boolean } = {},
): Promise<{ instances: Spawned[]; cluster: SocketIoCluster | null }> {
  const [a, b] = await Promise.allSettled([
    run.startInstances(relay, options),
    socketIo > 0 ? run.startSocketIo(socketIo) : Promise.resolve(null),
  ]);
  if (a.status === 'fulfilled' && b.status === 'fulfilled')
    return { instances: a.value.instances, cluster: b.value };
  if (a.status === 'fulfilled') await run.stopAll(a.value.instances);
  if (b.status === 'fulfilled' && b.value) await run.stopAll(b.value.nodes);
  throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
}

/**
 * Every selected part, stage by stage: (1) one instance (of a pair when peers run) with Web-STOMP
 * direct, the bare-ws reference, the ceiling, and the pair against Socket.IO's smallest cluster;
 * (2) each larger count of instances against as many nodes; (3) the idle run, then the crowd.
 */
export async function measureAll(run: Run, only: Set<Scenario>): Promise<void> {
  const counts = run.sizes.peers.processCounts;
  const peers = only.has('peers') && counts.length > 0;
  const single = only.has('fanout') || only.has('one-to-one');
  if (single || peers) {
    const pair = peers ? counts[0] : 1;
    await run.attempt(`stage: stomp-relay x${pair}${peers ? ` and socket.io x${pair}` : ''}`, async () => {
      const { instances, cluster } = await startStage(run, pair, peers ? pair : 0, {
        profile: run.setup.cpuProf,
      });
      try {
        if (single) await measureSingle(run, instances[0], only);
        if (only.has('ceiling')) await measureCeiling(run);
        if (peers && cluster) {
          await measurePeers(run, instances, cluster, run.sizes.peers.fanoutSubscribers);
          await run.stopAll(instances);
          if (only.has('idle')) await measureSocketIoIdle(run, cluster);
        }
      } finally {
        await run.stopAll([...instances, ...(cluster?.nodes ?? [])]);
      }
    });
  } else if (only.has('ceiling')) await measureCeiling(run);
  if (peers) {
    for (const n of counts.slice(1)) {
      await run.attempt(`stage: stomp-relay x${n} and socket.io x${n}`, async () => {
        const { instances, cluster } = await startStage(run, n, n);
        try {
          await measurePeers(run, instances, cluster!, [run.sizes.fanout.subscribers]);
        } finally {
          await run.stopAll([...instances, ...(cluster?.nodes ?? [])]);
        }
      });
    }
  }
  if (only.has('idle') && !peers) {
    await run.attempt('stage: socket.io for idle', async () => {
      const { cluster } = await startStage(run, 0, counts[0] ?? 2);
      try {
        await measureSocketIoIdle(run, cluster!);
      } finally {
        await run.stopAll(cluster?.nodes ?? []);
      }
    });
  }
  if (only.has('idle') || only.has('crowd')) await measureIdleAndCrowd(run, only);
  if (only.has('bindings')) {
    // RabbitMQ alone, no server of ours: last, so the other runs' RabbitMQ memory is not inflated.
    await run.attempt('bindings', async () => {
      run.measured.bindings = await runBindings({
        amqpUrl: AMQP_URL,
        ...run.sizes.bindings,
        rabbitPid: run.pids.rabbitmq[0],
        log: (m) => run.ctx.log(m),
      });
    });
  }
  if (only.has('inbox')) {
    await run.attempt('inbox store on PostgreSQL', async () => {
      run.measured.inboxPostgres = await runInboxPostgres(run.ctx.root);
    });
    // The service's own figures after the store's: durable beside non-durable pushes, live latency,
    // replay on SUBSCRIBE (one service of its own, started and stopped by the child).
    await run.attempt('inbox through the service', async () => {
      run.measured.inboxService = await runInboxService(run.ctx.root, run.sizes === SMOKE);
    });
  }
}

async function measureSocketIoIdle(run: Run, cluster: SocketIoCluster): Promise<void> {
  await run.attempt(`idle connections, socket.io x${cluster.nodes.length}`, async () => {
    run.measured.peerIdle = await runPeerIdle(run.ctx, cluster.nodes, cluster.redisUrl, cluster.redisPid);
  });
}

/** The idle run (issue 14's figures), then the crowd (item 8), each on fresh instances. */
async function measureIdleAndCrowd(run: Run, only: Set<Scenario>): Promise<void> {
  if (only.has('idle')) {
    await run.attempt('idle sessions', async () => {
      const { instances, ids } = await run.startInstances(1, { inspect: true });
      try {
        run.measured.idle = await runIdle(run.ctx, {
          service: instances[0],
          instanceId: ids[0],
          poolSize: POOL_SIZE,
          rabbitPid: run.pids.rabbitmq[0],
        });
      } finally {
        await run.stopAll(instances);
        await removeInstanceQueues(run, ids[0]);
      }
    });
  }
  if (only.has('crowd')) {
    await run.attempt('crowd', async () => {
      run.measured.crowd = await runCrowd(run.ctx, {
        alwaysTopicRow: run.sizes.crowd.alwaysTopicRow,
        startService: async () => {
          const fdLimit = crowdFdLimit(run.sizes.crowd.sessions);
          const { instances, ids } = await run.startInstances(1, { inspect: true, fdLimit });
          return {
            service: instances[0],
            instanceId: ids[0],
            stop: async () => {
              await run.stopAll(instances);
              await removeInstanceQueues(run, ids[0]);
            },
          };
        },
      });
    });
  }
}

/** A stopped instance's queues should have gone with it; any left are noted and deleted. */
async function removeInstanceQueues(run: Run, instanceId: string): Promise<void> {
  const prefix = `stomp-relay.${instanceId}.`;
  // Auto-delete queues go once RabbitMQ has seen their consumers cancelled, some thousands a
  // second: wait while their number still falls (at most a minute).
  const until = Date.now() + 60_000;
  let count = (await queueCount(prefix)) ?? 0;
  let fellAt = Date.now();
  while (count > 0 && Date.now() < until && Date.now() - fellAt < 3000) {
    await new Promise((r) => setTimeout(r, 500));
    const now = (await queueCount(prefix)) ?? 0;
    if (now < count) fellAt = Date.now();
    count = now;
  }
  const left = await queuesStartingWith(prefix);
  if (left.length === 0) return;
  run.notes.push(
    `${left.length} queue(s) of instance ${instanceId} were left in RabbitMQ after it stopped; deleted.`,
  );
  await deleteQueues(left);
}
