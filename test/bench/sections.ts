/**
 * The parts of one `npm run bench`, in the order it runs them (run.ts), each on the servers it
 * starts and stops itself. What they share is a `Run` (bench-run.ts).
 */
import type { Run } from './bench-run';
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
import { runCeiling } from './scenarios/ceiling';
import { runCrowd } from './scenarios/crowd';
import { runFanout, type FanoutTarget } from './scenarios/fanout';
import { runIdle } from './scenarios/idle';
import { runPeerIdle } from './scenarios/idle-socketio';
import { runOneToOne, type OneToOneSetup } from './scenarios/one-to-one';

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
export async function measureSingle(run: Run, fanout: boolean, oneToOneToo: boolean): Promise<void> {
  const { sizes, pids } = run;
  const { instances } = await run.startInstances(1, { profile: run.setup.cpuProf });
  const bare = await run.startBare();
  try {
    if (fanout) {
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
    if (oneToOneToo) {
      await oneToOne(run, productOneToOne(instances, run.ctx.secret, sizes.oneToOne.batchSize, pids));
      if (run.setup.webStomp) {
        await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
        await oneToOne(run, webStompOneToOne(pids));
        await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
      }
    }
  } finally {
    await run.stopAll([bare, ...instances]);
  }
}

/** RabbitMQ alone: the physical ceiling of one-to-one traffic. */
export async function measureCeiling(run: Run): Promise<void> {
  await run.attempt('ceiling, bare AMQP', async () => {
    run.measured.ceiling.push(...(await runCeiling(run.ctx, AMQP_URL, { ...run.pids })));
  });
}

/**
 * stomp-relay on N instances against Socket.IO on N nodes, for each N: fan-out (at both counts at
 * the smallest N, at the full count above it) and one-to-one.
 */
export async function measurePeers(run: Run): Promise<void> {
  const { sizes, pids } = run;
  const counts = sizes.peers.processCounts;
  for (const n of counts) {
    const fanCounts =
      n === counts[0]
        ? [
            ...new Set([
              Math.min(sizes.fanout.compareSubscribers, sizes.fanout.subscribers),
              sizes.fanout.subscribers,
            ]),
          ]
        : [sizes.fanout.subscribers];
    await run.attempt(`stomp-relay x${n}`, async () => {
      const { instances } = await run.startInstances(n);
      try {
        await fanoutAt(run, productFanout(instances, run.ctx.secret, pids), fanCounts);
        await oneToOne(run, productOneToOne(instances, run.ctx.secret, sizes.oneToOne.batchSize, pids));
      } finally {
        await run.stopAll(instances);
      }
    });
    await run.attempt(`socket.io x${n}`, async () => {
      const cluster = await run.startSocketIo(n);
      try {
        await fanoutAt(run, socketIoFanout(cluster, run.ctx.secret, pids), fanCounts);
        await oneToOne(run, socketIoOneToOne(cluster, run.ctx.secret, pids));
      } finally {
        await run.stopAll(cluster.nodes);
      }
    });
  }
}

/** Idle sessions: one instance (the real case: a user queue each), then Socket.IO on the first N. */
export async function measureIdle(run: Run): Promise<void> {
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
  const n = run.sizes.peers.processCounts[0];
  await run.attempt(`idle connections, socket.io x${n}`, async () => {
    const cluster = await run.startSocketIo(n);
    try {
      run.measured.peerIdle = await runPeerIdle(run.ctx, cluster.nodes, cluster.redisUrl, cluster.redisPid);
    } finally {
      await run.stopAll(cluster.nodes);
    }
  });
}

/** Item 8: a crowd of idle sessions with heart-beats on one instance, as many as the machine allows. */
export async function measureCrowd(run: Run): Promise<void> {
  await run.attempt('crowd', async () => {
    run.measured.crowd = await runCrowd(run.ctx, {
      alwaysTopicRow: run.sizes.crowd.alwaysTopicRow,
      startService: async (fdLimit) => {
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

/** An instance's queues should go with its sessions; any left after it stopped are noted and deleted. */
async function removeInstanceQueues(run: Run, instanceId: string): Promise<void> {
  const prefix = `stomp-relay.${instanceId}.`;
  // Auto-delete queues go once RabbitMQ has seen their consumers cancelled: give it a moment.
  for (let i = 0; i < 40 && ((await queueCount(prefix)) ?? 0) > 0; i++)
    await new Promise((r) => setTimeout(r, 250));
  const left = await queuesStartingWith(prefix);
  if (left.length === 0) return;
  run.notes.push(
    `${left.length} queue(s) of instance ${instanceId} were left in RabbitMQ after it stopped; deleted.`,
  );
  await deleteQueues(left);
}
