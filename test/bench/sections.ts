/**
 * The parts of one `npm run bench`, in the order it runs them, and what they share (`Run`): the
 * load processes, the servers running now (stopped on the way out, whatever happened), the
 * figures measured so far and the notes for RESULTS.md. A part that fails leaves a note and the
 * run goes on to the next.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchSizes } from './harness';
import {
  AMQP_URL,
  BROKER_URL,
  DIRECT_QUEUE_PREFIX,
  bareFanout,
  productFanout,
  productOneToOne,
  socketIoFanout,
  socketIoOneToOne,
  webStompFanout,
  webStompOneToOne,
  type LoadPids,
  type SocketIoCluster,
} from './lineup';
import { listenerPid, startBareWs, startService, startSocketIoNode, type Spawned } from './processes';
import { brokerNode, deleteQueues, queueCount, queuesStartingWith } from './rabbit';
import { deleteKeys, REDIS_URL } from './redis-info';
import { runCeiling, type CeilingResult } from './scenarios/ceiling';
import { runCrowd, type CrowdRow } from './scenarios/crowd';
import { runFanout, type FanoutResult, type FanoutTarget } from './scenarios/fanout';
import { runIdle, type IdleResult } from './scenarios/idle';
import { runPeerIdle, type PeerIdleResult } from './scenarios/idle-socketio';
import { runOneToOne, type OneToOneResult, type OneToOneSetup } from './scenarios/one-to-one';
import { LoadWorker } from './workers';

const POOL_SIZE = 2; // BROKER_POOL_SIZE default
/** Sockets left free on RabbitMQ for everyone else (other tests, our own pools). */
const BROKER_SOCKET_RESERVE = 60;

export interface Measured {
  fanout: FanoutResult[];
  oneToOne: OneToOneResult[];
  ceiling: CeilingResult[];
  idle: IdleResult | null;
  peerIdle: PeerIdleResult | null;
  crowd: CrowdRow[];
}

export interface RunSetup {
  root: string;
  sizes: BenchSizes;
  log(message: string): void;
  outDir: string;
  dist: boolean;
  cpuProf: boolean;
  webStomp: boolean;
}

interface InstanceOptions {
  profile?: boolean;
  inspect?: boolean;
  fdLimit?: number;
}

export class Run {
  readonly notes: string[] = [];
  readonly measured: Measured = {
    fanout: [],
    oneToOne: [],
    ceiling: [],
    idle: null,
    peerIdle: null,
    crowd: [],
  };
  private readonly running = new Map<Spawned, 'instance' | 'other'>();
  /** Redis channel prefix of this run's Socket.IO nodes and emitter. */
  readonly socketIoKey = `stomp-relay-bench-sio-${randomBytes(3).toString('hex')}`;

  private constructor(
    readonly ctx: BenchContext,
    readonly setup: RunSetup,
    readonly pids: LoadPids,
    private readonly all: LoadWorker[],
  ) {}

  static async start(setup: RunSetup): Promise<Run> {
    const { sizes, log, root } = setup;
    log(`starting ${sizes.workers} client workers and a load generator`);
    const all = await Promise.all(
      Array.from({ length: sizes.workers + 1 }, (_, i) => LoadWorker.start(i, root)),
    );
    const notes: string[] = [];
    const ctx: BenchContext = {
      root,
      sizes,
      workers: all.slice(0, sizes.workers),
      loadgen: all[sizes.workers],
      secret: randomBytes(32).toString('base64url'),
      log,
      notes,
    };
    const rabbitPid = (await listenerPid(5672)) ?? (await listenerPid(61613));
    const pids: LoadPids = {
      rabbitmq: rabbitPid ? [rabbitPid] : [],
      clients: ctx.workers.map((w) => w.pid ?? 0),
      loadgen: [ctx.loadgen.pid ?? 0],
    };
    const run = new Run(ctx, setup, pids, all);
    if (!setup.webStomp)
      run.notes.push('RabbitMQ Web-STOMP (15674) did not answer: the direct peer was not measured.');
    return run;
  }

  get sizes(): BenchSizes {
    return this.ctx.sizes;
  }

  /** Runs one part; a failure becomes a note, and the run goes on. */
  async attempt(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : String(err);
      this.ctx.log(`${what} failed: ${why}`);
      this.notes.push(`${what} failed: ${why.slice(0, 300)}`);
    }
  }

  /** `n` fresh stomp-relay instances on RabbitMQ, each with its own instance id. */
  async startInstances(
    n: number,
    options: InstanceOptions = {},
  ): Promise<{ instances: Spawned[]; ids: string[] }> {
    const profileDir = join(this.setup.outDir, 'profiles');
    if (options.profile) mkdirSync(profileDir, { recursive: true });
    const ids = Array.from({ length: n }, () => `bench-${randomBytes(3).toString('hex')}`);
    const instances: Spawned[] = [];
    try {
      for (const instanceId of ids) {
        const s = await startService({
          root: this.setup.root,
          secret: this.ctx.secret,
          instanceId,
          brokerUrl: BROKER_URL,
          dist: this.setup.dist,
          cpuProfDir: options.profile ? profileDir : undefined,
          inspect: options.inspect,
          fdLimit: options.fdLimit,
        });
        this.running.set(s, 'instance');
        instances.push(s);
      }
    } catch (err: unknown) {
      await this.stopAll(instances);
      throw err;
    }
    return { instances, ids };
  }

  async startBare(): Promise<Spawned> {
    const bare = await startBareWs(this.setup.root);
    this.running.set(bare, 'other');
    return bare;
  }

  /** `n` Socket.IO nodes on the local Redis, sharing this run's adapter key. */
  async startSocketIo(n: number): Promise<SocketIoCluster> {
    const nodes: Spawned[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const node = await startSocketIoNode({
          root: this.setup.root,
          redisUrl: REDIS_URL,
          key: this.socketIoKey,
          secret: this.ctx.secret,
        });
        this.running.set(node, 'other');
        nodes.push(node);
      }
    } catch (err: unknown) {
      await this.stopAll(nodes);
      throw err;
    }
    return { nodes, redisUrl: REDIS_URL, key: this.socketIoKey, redisPid: await listenerPid(6379) };
  }

  /** Stops servers of this run; for instances, first notes any lost broker connection. */
  async stopAll(servers: Spawned[]): Promise<void> {
    for (const s of servers) {
      const kind = this.running.get(s);
      this.running.delete(s);
      if (kind === 'instance') {
        const reconnects = await brokerReconnects(s.url);
        if (reconnects > 0) {
          this.notes.push(
            `An instance lost its RabbitMQ connection ${reconnects} time(s) during the run (RabbitMQ restarted by other work on this machine?): figures from that part are not valid; run again.`,
          );
        }
      }
    }
    await Promise.all(servers.map((s) => s.stop()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.running.keys()].map((s) => s.stop()));
    this.running.clear();
    for (const w of this.all) w.stop();
    try {
      const left = await deleteKeys(REDIS_URL, this.socketIoKey);
      if (left > 0) this.notes.push(`Deleted ${left} Redis key(s) left under ${this.socketIoKey}.`);
    } catch {
      // Redis was never used (or is gone): nothing of ours can be there.
    }
  }
}

/** stomp_broker_reconnects_total of a running service (0 if it cannot be read). */
async function brokerReconnects(url: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^stomp_broker_reconnects_total\s+(\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

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
