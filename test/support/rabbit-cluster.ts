/**
 * A three-node RabbitMQ cluster for tests, from this machine's own RabbitMQ packages: nodes
 * sr-c1@localhost..sr-c3@localhost on AMQP 5701-5703, STOMP 61701-61703, management 15701-15703 and
 * Erlang distribution 25701-25703, with their own epmd (4371), cookie, config, data and log
 * directories in one scratch directory under /tmp. sr-c2 and sr-c3 join sr-c1 with join_cluster.
 * Nothing of it touches the machine's node (5672, epmd 4369) or its data directory.
 * `startRabbitCluster(1)` is sr-c1 alone: a node of a test's own, for what must not happen to a
 * shared node while others' tests use it (stop_app, a restart).
 *
 * One cluster at a time on a machine: the fixed ports are held through a lock file, which a second
 * test run waits for. Every process of a cluster carries CLUSTER_MARK in its environment, so the
 * teardown, an exit of the test process, and the next start after a crash find all of them (beams,
 * epmd, their helpers) and nothing else. Every wait has a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { rabbitNodeOn, type RabbitNode } from './rabbit-nodes';
import { managementGet, rabbitmqctl, rabbitVersion, tcpOpen } from './rabbitmq';
import { waitFor } from './wait';

const SIZE = 3;
const EPMD_PORT = 4371;
// /tmp itself, not os.tmpdir(): runs with another TMPDIR must still see each other's lock and leftovers.
const SCRATCH = '/tmp';
const DIR_PREFIX = 'stomp-relay-rabbit-cluster-';
const LOCK_FILE = join(SCRATCH, 'stomp-relay-rabbit-cluster.lock');
/** Environment variable every process of a cluster inherits: its scratch directory. */
const CLUSTER_MARK = 'STOMP_RELAY_RABBIT_CLUSTER';
const LOCK_WAIT_MS = 300_000;
const NODE_START_MS = 90_000;
const CTL_MS = 60_000;

export interface RabbitCluster {
  /** sr-c1, sr-c2, sr-c3 (as many as asked for), each with `version` filled in. */
  nodes: RabbitNode[];
  /** The scratch directory: per node `<short name>/` with config, data and `log/`. */
  dir: string;
  /** running_nodes of cluster_status, as `from` sees it (default: the first node that answers). */
  runningNodes(from?: RabbitNode): Promise<string[]>;
  /** `kill -9` of the node's Erlang VM; resolves once its ports are closed. */
  kill9(node: RabbitNode): Promise<void>;
  /** Starts the node again (stopping it first if it runs); resolves once it is back in the cluster. */
  restart(node: RabbitNode): Promise<void>;
  /** The last lines of a node's log, for failure messages. */
  recentLog(node: RabbitNode, lines?: number): string;
  /**
   * Kills every process of the cluster, waits until none of its ports accepts a connection, removes
   * its directory, and only then releases the lock (the next cluster binds the same ports, so a check
   * after stop() could meet that one). Rejects if a port stays open. Idempotent.
   */
  stop(): Promise<void>;
}

interface ClusterMember {
  node: RabbitNode;
  dir: string;
  env: NodeJS.ProcessEnv;
  server?: ChildProcess;
}

/** `command` on PATH or in the sbin directories packages install RabbitMQ to. */
function findOnPath(command: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin']) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // not here; next directory
    }
  }
  return undefined;
}

/** The RabbitMQ scripts themselves: Debian's sbin entries are wrappers that switch to the rabbitmq user. */
function rabbitScripts(): { server: string; ctl: string } {
  const found = findOnPath('rabbitmq-server');
  if (!found) throw new Error('rabbitmq-server not found: apt-get install rabbitmq-server');
  const real = realpathSync(found);
  const dir = dirname(real);
  const server = basename(real) === 'rabbitmq-script-wrapper' ? join(dir, 'rabbitmq-server') : real;
  return { server, ctl: join(dirname(server), 'rabbitmqctl') };
}

/** Pids of the processes whose environment carries CLUSTER_MARK (any cluster, or the one in `dir`). */
export function rabbitClusterProcesses(dir?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours to read
    }
    const mark = environ.split('\0').find((v) => v.startsWith(`${CLUSTER_MARK}=`));
    if (mark && (dir === undefined || mark === `${CLUSTER_MARK}=${dir}`)) pids.push(Number(entry));
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs the marked processes and waits until none is left. */
async function killMarked(dir: string | undefined, timeoutMs: number): Promise<void> {
  await waitFor(
    () => {
      const left = rabbitClusterProcesses(dir);
      killAll(left);
      return left.length === 0;
    },
    timeoutMs,
    `the processes of ${dir ?? 'earlier test clusters'} to end`,
  );
}

/** What a crashed run left: only called under the lock, so no live cluster owns any of it. */
async function removeLeftovers(): Promise<void> {
  await killMarked(undefined, 15_000);
  for (const entry of readdirSync(SCRATCH)) {
    if (entry.startsWith(DIR_PREFIX)) rmSync(join(SCRATCH, entry), { recursive: true, force: true });
  }
}

/** Holds LOCK_FILE through flock(1) until release() or this process's end (the pipe closes). */
async function acquireLock(): Promise<() => void> {
  const holder = spawn(
    'flock',
    ['-w', String(LOCK_WAIT_MS / 1000), LOCK_FILE, 'sh', '-c', 'echo locked; exec cat'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const locked = await new Promise<boolean>((resolve) => {
    createInterface({ input: holder.stdout! }).once('line', (line) => resolve(line === 'locked'));
    holder.once('exit', () => resolve(false));
    holder.once('error', () => resolve(false));
  });
  if (!locked)
    throw new Error(`could not lock ${LOCK_FILE} within ${LOCK_WAIT_MS / 1000} s (another cluster test?)`);
  return () => holder.stdin!.end();
}

/** Whether the node's rabbitmq-server script (it outlives its VM only briefly) has ended. */
function exited(member: ClusterMember): boolean {
  const server = member.server;
  return server === undefined || server.exitCode !== null || server.signalCode !== null;
}

function memberFor(index: number, dir: string, ctl: string, base: NodeJS.ProcessEnv): ClusterMember {
  const short = `sr-c${index + 1}`;
  const name = `${short}@localhost`;
  const nodeDir = join(dir, short);
  const ports = { amqp: 5701 + index, stomp: 61701 + index, management: 15701 + index };
  mkdirSync(join(nodeDir, 'log'), { recursive: true });
  writeFileSync(
    join(nodeDir, 'rabbitmq.conf'),
    [
      '# written by test/support/rabbit-cluster.ts',
      `listeners.tcp.local = 127.0.0.1:${ports.amqp}`,
      `stomp.listeners.tcp.1 = 127.0.0.1:${ports.stomp}`,
      'management.tcp.ip = 127.0.0.1',
      `management.tcp.port = ${ports.management}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(nodeDir, 'enabled_plugins'), '[rabbitmq_management,rabbitmq_stomp].\n');
  const env: NodeJS.ProcessEnv = {
    ...base,
    RABBITMQ_NODENAME: name,
    RABBITMQ_DIST_PORT: String(25701 + index),
    RABBITMQ_CONFIG_FILE: join(nodeDir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(nodeDir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(nodeDir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(nodeDir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(nodeDir, 'log'),
    RABBITMQ_PID_FILE: join(nodeDir, 'beam.pid'),
  };
  const ctlEnv = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const node = rabbitNodeOn(name, ports, { command: ctl, args: ['-n', name], env: ctlEnv });
  return { node, dir: nodeDir, env };
}

/** The environment every process of the cluster starts with: its cookie, epmd and mark. */
function clusterEnv(dir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HOME: dir,
    [CLUSTER_MARK]: dir,
    ERL_EPMD_PORT: String(EPMD_PORT),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    // Not this machine's rabbitmq-env.conf, which names the machine's node: a file that is not there.
    RABBITMQ_CONF_ENV_FILE: join(dir, 'no-rabbitmq-env.conf'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

class TestCluster implements RabbitCluster {
  readonly nodes: RabbitNode[];
  private readonly members: ClusterMember[];
  private stopping: Promise<void> | undefined;
  private readonly onExit = (): void => {
    killAll(rabbitClusterProcesses(this.dir));
    rmSync(this.dir, { recursive: true, force: true });
  };

  constructor(
    readonly dir: string,
    private readonly scripts: { server: string; ctl: string },
    private readonly release: () => void,
    size: number,
  ) {
    writeFileSync(join(dir, '.erlang.cookie'), randomBytes(20).toString('hex'), { mode: 0o400 });
    const env = clusterEnv(dir);
    this.members = Array.from({ length: size }, (_, i) => memberFor(i, dir, scripts.ctl, env));
    this.nodes = this.members.map((m) => m.node);
    // mocha's --exit, or a crash of the test, must not leave nodes behind.
    process.once('exit', this.onExit);
  }

  /** Own epmd, the nodes booted side by side, then sr-c2 and sr-c3 (when asked for) joined to sr-c1. */
  async form(): Promise<void> {
    const epmd = spawn('epmd', ['-port', String(EPMD_PORT), '-address', '127.0.0.1'], {
      env: clusterEnv(this.dir),
      stdio: 'ignore',
    });
    await waitFor(() => tcpOpen(EPMD_PORT), 10_000, `epmd on ${EPMD_PORT}`);
    if (epmd.exitCode !== null) throw new Error(`epmd on ${EPMD_PORT} exited: is the port taken?`);
    for (const member of this.members) this.launch(member);
    await Promise.all(this.members.map((m) => this.awaitAnswer(m)));
    const [seed, ...joiners] = this.members;
    if (joiners.length > 0) {
      // Stopping and starting the app are per node and may overlap; joins go one at a time.
      await Promise.all(joiners.map((m) => rabbitmqctl(['stop_app'], CTL_MS, m.node)));
      for (const member of joiners) await rabbitmqctl(['join_cluster', seed!.node.name], CTL_MS, member.node);
      await Promise.all(joiners.map((m) => rabbitmqctl(['start_app'], CTL_MS, m.node)));
      await Promise.all(this.members.map((m) => this.awaitAnswer(m)));
    }
    for (const node of this.nodes) await rabbitVersion(node);
  }

  async runningNodes(from?: RabbitNode): Promise<string[]> {
    let lastError: unknown;
    for (const member of from ? [this.memberOf(from)] : this.members) {
      try {
        const status = JSON.parse(
          await rabbitmqctl(['cluster_status', '--formatter', 'json'], CTL_MS, member.node),
        ) as { running_nodes: string[] };
        return status.running_nodes.sort();
      } catch (err: unknown) {
        lastError = err;
      }
    }
    throw new Error('no node of the cluster answers cluster_status', { cause: lastError });
  }

  async kill9(node: RabbitNode): Promise<void> {
    const member = this.memberOf(node);
    const pid = this.beamPid(member);
    if (pid === undefined) throw new Error(`${node.name} is not running`);
    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () => !(await tcpOpen(node.amqpPort)) && exited(member),
      15_000,
      `${node.name} to be gone`,
    );
  }

  async restart(node: RabbitNode): Promise<void> {
    const member = this.memberOf(node);
    const pid = this.beamPid(member);
    if (pid !== undefined) {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !alive(pid) && exited(member), 30_000, `${node.name} to stop`);
    }
    this.launch(member);
    await this.awaitAnswer(member);
    const all = JSON.stringify(this.nodes.map((n) => n.name).sort());
    await waitFor(
      async () => JSON.stringify(await this.runningNodes(node)) === all,
      30_000,
      `${node.name} to be back in the cluster`,
    );
  }

  recentLog(node: RabbitNode, lines = 30): string {
    const log = join(this.memberOf(node).dir, 'log', 'server.out');
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-lines).join('\n') : '';
  }

  stop(): Promise<void> {
    // Its data goes with the directory, so a graceful stop would only cost time.
    this.stopping ??= (async () => {
      try {
        await killMarked(this.dir, 15_000);
        const ports = this.nodes.flatMap((n) => [n.amqpPort, n.stompPort, n.managementPort]);
        await waitFor(
          async () => (await Promise.all(ports.map((p) => tcpOpen(p)))).every((open) => !open),
          15_000,
          `the cluster's ports (${ports.join(', ')}) to close`,
        );
      } finally {
        process.removeListener('exit', this.onExit);
        rmSync(this.dir, { recursive: true, force: true });
        this.release();
      }
    })();
    return this.stopping;
  }

  private memberOf(node: RabbitNode): ClusterMember {
    const member = this.members.find((m) => m.node.name === node.name);
    if (!member) throw new Error(`${node.name} is not a node of this cluster`);
    return member;
  }

  private launch(member: ClusterMember): void {
    const out = openSync(join(member.dir, 'log', 'server.out'), 'a');
    member.server = spawn(this.scripts.server, [], { env: member.env, stdio: ['ignore', out, out] });
    closeSync(out);
  }

  private async awaitAnswer(member: ClusterMember): Promise<void> {
    const { node, server } = member;
    await waitFor(
      async () => {
        if (server && exited(member)) {
          const how = server.exitCode ?? server.signalCode;
          throw new Error(`${node.name} exited (${how}): ${this.recentLog(node, 5)}`);
        }
        if (!(await tcpOpen(node.amqpPort)) || !(await tcpOpen(node.stompPort))) return false;
        return (await managementGet<{ node: string }>('/overview', node)).node === node.name;
      },
      NODE_START_MS,
      `${node.name} to answer`,
    );
  }

  /** The node's Erlang VM, from the pid file RabbitMQ writes, if it still runs. */
  private beamPid(member: ClusterMember): number | undefined {
    const file = join(member.dir, 'beam.pid');
    const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
    return Number.isInteger(pid) && rabbitClusterProcesses(this.dir).includes(pid) ? pid : undefined;
  }
}

/**
 * Starts the cluster of `size` nodes (1 to 3), waiting first for any other run's cluster to be
 * stopped (they share the ports).
 */
export async function startRabbitCluster(size = SIZE): Promise<RabbitCluster> {
  if (!Number.isInteger(size) || size < 1 || size > SIZE)
    throw new Error(`a test cluster has 1 to ${SIZE} nodes, not ${size}`);
  const scripts = rabbitScripts();
  const release = await acquireLock();
  let cluster: TestCluster | undefined;
  try {
    await removeLeftovers();
    cluster = new TestCluster(mkdtempSync(join(SCRATCH, DIR_PREFIX)), scripts, release, size);
    await cluster.form();
    return cluster;
  } catch (err: unknown) {
    const logs = cluster?.nodes.map((n) => `[${n.name}]\n${cluster!.recentLog(n, 10)}`).join('\n') ?? '';
    if (cluster) await cluster.stop();
    else release();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`RabbitMQ cluster did not start: ${reason}\n${logs}`, { cause: err });
  }
}
