/**
 * What the parts of one `npm run bench` share: the load processes, the servers running now
 * (stopped on the way out, whatever happened), the figures measured so far and the notes for
 * RESULTS.md. A part that fails leaves a note (attempt) and the run goes on to the next.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchSizes } from './harness';
import { BROKER_URL, type LoadPids, type SocketIoCluster } from './lineup';
import { listenerPid, startBareWs, startService, startSocketIoNode, type Spawned } from './processes';
import { deleteKeys, REDIS_URL } from './redis-info';
import { brokerReconnects } from './service-metrics';
import type { BindingsResult } from './scenarios/bindings';
import type { CeilingResult } from './scenarios/ceiling';
import type { InboxPostgresResult } from './scenarios/inbox-postgres';
import type { InboxServiceResult } from './scenarios/inbox-service';
import type { CrowdRow } from './scenarios/crowd';
import type { FanoutResult } from './scenarios/fanout';
import type { IdleResult } from './scenarios/idle';
import type { PeerIdleResult } from './scenarios/idle-socketio';
import type { OneToOneResult } from './scenarios/one-to-one';
import { LoadWorker } from './workers';

export interface Measured {
  fanout: FanoutResult[];
  oneToOne: OneToOneResult[];
  ceiling: CeilingResult[];
  idle: IdleResult | null;
  peerIdle: PeerIdleResult | null;
  crowd: CrowdRow[];
  /** RabbitMQ's cost per binding (scenarios/bindings.ts); absent in results from before it existed. */
  bindings?: BindingsResult | null;
  /** The inbox store on PostgreSQL (scenarios/inbox-postgres.ts); absent in older results. */
  inboxPostgres?: InboxPostgresResult | null;
  /** The inbox through the service (scenarios/inbox-service.ts); absent in older results. */
  inboxService?: InboxServiceResult | null;
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
    bindings: null,
    inboxPostgres: null,
    inboxService: null,
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
    // Started together: each start is mostly compiling and connecting, not measured.
    const started = await Promise.allSettled(
      ids.map((instanceId) =>
        startService({
          root: this.setup.root,
          secret: this.ctx.secret,
          instanceId,
          brokerUrl: BROKER_URL,
          dist: this.setup.dist,
          cpuProfDir: options.profile ? profileDir : undefined,
          inspect: options.inspect,
          fdLimit: options.fdLimit,
        }),
      ),
    );
    const instances = await this.keep(started, 'instance');
    return { instances, ids };
  }

  async startBare(): Promise<Spawned> {
    const bare = await startBareWs(this.setup.root);
    this.running.set(bare, 'other');
    return bare;
  }

  /** `n` Socket.IO nodes on the local Redis, sharing this run's adapter key. */
  async startSocketIo(n: number): Promise<SocketIoCluster> {
    const started = await Promise.allSettled(
      Array.from({ length: n }, () =>
        startSocketIoNode({
          root: this.setup.root,
          redisUrl: REDIS_URL,
          key: this.socketIoKey,
          secret: this.ctx.secret,
        }),
      ),
    );
    const nodes = await this.keep(started, 'other');
    return { nodes, redisUrl: REDIS_URL, key: this.socketIoKey, redisPid: await listenerPid(6379) };
  }

  /** The servers that started, tracked; if any failed to start, the others are stopped and it throws. */
  private async keep(
    started: PromiseSettledResult<Spawned>[],
    kind: 'instance' | 'other',
  ): Promise<Spawned[]> {
    const servers: Spawned[] = [];
    const failures: unknown[] = [];
    for (const s of started) {
      if (s.status === 'fulfilled') {
        this.running.set(s.value, kind);
        servers.push(s.value);
      } else failures.push(s.reason);
    }
    if (failures.length === 0) return servers;
    await this.stopAll(servers);
    throw failures[0] instanceof Error ? failures[0] : new Error(String(failures[0]));
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
            `An instance lost its RabbitMQ connection ${reconnects} time(s) during the run (RabbitMQ restarted by other work on this machine, or the service missed its broker heart-beats: the idle and crowd tables say when): figures from that part are not valid.`,
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
