/**
 * Looking at RabbitMQ from tests: what queues, exchanges and bindings exist (management HTTP API),
 * running rabbitmqctl, and counting TCP connections to a port. Every helper takes an optional node
 * (test/support/rabbit-nodes.ts), the machine's own by default. `npm test` makes sure the local node
 * and the 4.x node are up first (test/support/ensure-rabbitmq.cjs, ensure-rabbitmq4.cjs).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { LOCAL_RABBIT, type RabbitNode } from './rabbit-nodes';
import { waitFor } from './wait';

export const AMQP_URL = LOCAL_RABBIT.amqpUrl;
export const STOMP_URL = LOCAL_RABBIT.stompUrl;
const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

const execFileAsync = promisify(execFile);

export interface QueueInfo {
  name: string;
  consumers: number;
  auto_delete: boolean;
  exclusive?: boolean;
  durable?: boolean;
  messages?: number;
  arguments?: Record<string, unknown>;
}

export interface ExchangeInfo {
  name: string;
  type: string;
  durable: boolean;
  auto_delete: boolean;
}

export interface BindingInfo {
  source: string;
  destination: string;
  destination_type: 'queue' | 'exchange';
  routing_key: string;
}

export interface ConnectionInfo {
  name: string;
  user: string;
  client_properties?: { connection_name?: string };
}

export interface DeprecatedFeatureInfo {
  name: string;
  deprecation_phase: string;
  provided_by?: string;
}

/** GET on a node's management API, parsed JSON; throws with the node, path and status on failure. */
export async function managementGet<T>(path: string, node: RabbitNode = LOCAL_RABBIT): Promise<T> {
  const res = await fetch(`${node.managementUrl}${path}`, {
    headers: { authorization: AUTH },
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) throw new Error(`GET ${path} on ${node.name}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The node's RabbitMQ version (management API), remembered in `node.version`. */
export async function rabbitVersion(node: RabbitNode = LOCAL_RABBIT): Promise<string> {
  node.version ??= (await managementGet<{ rabbitmq_version: string }>('/overview', node)).rabbitmq_version;
  return node.version;
}

/**
 * Queues of vhost `/`. Existence is current; `consumers` comes from the management stats and can
 * lag by a few seconds, so poll (waitFor) rather than assert once.
 */
export async function listQueues(node: RabbitNode = LOCAL_RABBIT): Promise<QueueInfo[]> {
  const queues = await managementGet<QueueInfo[]>('/queues/%2F', node);
  return queues.map((q) => ({ ...q, consumers: q.consumers ?? 0 }));
}

export function listExchanges(node: RabbitNode = LOCAL_RABBIT): Promise<ExchangeInfo[]> {
  return managementGet<ExchangeInfo[]>('/exchanges/%2F', node);
}

export function listBindings(node: RabbitNode = LOCAL_RABBIT): Promise<BindingInfo[]> {
  return managementGet<BindingInfo[]>('/bindings/%2F', node);
}

/** Client connections (any vhost), from the management stats: they can lag by a few seconds. */
export function listConnections(node: RabbitNode = LOCAL_RABBIT): Promise<ConnectionInfo[]> {
  return managementGet<ConnectionInfo[]>('/connections', node);
}

/**
 * Deprecated features the node finds in use (RabbitMQ 3.13 and later; 3.10 answers 404). Only those
 * with a usage check are ever listed (on 4.0: transient_nonexcl_queues, classic_queue_mirroring),
 * and a node that denies them, as RABBIT4 does, refuses their use instead: there the refusal is
 * what a test sees, and an empty list here shows the denial still holds.
 */
export function deprecatedFeaturesUsed(node: RabbitNode): Promise<DeprecatedFeatureInfo[]> {
  return managementGet<DeprecatedFeatureInfo[]>('/deprecated-features/used', node);
}

/** Deletes a queue of vhost `/` (management API); a queue that is not there is no error. */
export async function deleteQueue(name: string, node: RabbitNode = LOCAL_RABBIT): Promise<void> {
  const res = await fetch(`${node.managementUrl}/queues/%2F/${encodeURIComponent(name)}`, {
    method: 'DELETE',
    headers: { authorization: AUTH },
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok && res.status !== 404)
    throw new Error(`DELETE queue ${name} on ${node.name}: HTTP ${res.status}`);
}

/**
 * A name for something this test process makes on RabbitMQ: `<stem>-<pid>-<random>`. The pid lets
 * a later run delete what a run killed before its `after` hook left (deleteOrphanedQueues), without
 * touching what a run still going beside it (another engineer's, on the same RabbitMQ) holds.
 */
export function processScopedName(stem: string): string {
  return `${stem}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    // EPERM: alive, someone else's; ESRCH: gone.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes the queues named `<prefix>-<pid>-...` (processScopedName) whose pid is no live process:
 * leftovers of a run that died before cleaning up. Resolves with their names.
 */
export async function deleteOrphanedQueues(
  prefix: string,
  node: RabbitNode = LOCAL_RABBIT,
): Promise<string[]> {
  const orphans = (await queueNames(`${prefix}-`, node)).filter((name) => {
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length + 1))?.[1]);
    return pid > 0 && pid !== process.pid && !processAlive(pid);
  });
  for (const name of orphans) await deleteQueue(name, node);
  return orphans;
}

/** Names of the queues whose name starts with `prefix`, e.g. `stomp-relay.<instanceId>.`. */
export async function queueNames(prefix = '', node: RabbitNode = LOCAL_RABBIT): Promise<string[]> {
  return (await listQueues(node)).map((q) => q.name).filter((name) => name.startsWith(prefix));
}

/**
 * Cuts every AMQP connection whose client-given name (rabbitmq-client's `connectionName`) starts
 * with `prefix`, the way a network failure would: rabbitmqctl finds them (it sees connections at
 * once; the management API only after its next stats tick, and `close_connection` wants an Erlang
 * pid the CLI does not print usably), then `ss -K` aborts the client's socket, so both ends see the
 * connection die. Needs root (CAP_NET_ADMIN). Resolves with how many were cut.
 */
export async function cutConnectionsNamed(prefix: string, node: RabbitNode = LOCAL_RABBIT): Promise<number> {
  interface ConnectionRow {
    name: string;
    client_properties: [string, string, unknown][];
  }
  const rows = JSON.parse(
    await rabbitmqctl(
      ['list_connections', 'name', 'client_properties', '--formatter', 'json', '-q'],
      60_000,
      node,
    ),
  ) as ConnectionRow[];
  let cut = 0;
  for (const row of rows) {
    const named = row.client_properties.some(
      ([key, , value]) => key === 'connection_name' && typeof value === 'string' && value.startsWith(prefix),
    );
    // Names look like "127.0.0.1:54014 -> 127.0.0.1:5672": the client's port comes first.
    const match = /^[^ ]*:(\d+) -> [^ ]*:(\d+)$/.exec(row.name);
    if (!named || !match) continue;
    const killed = execFileSync('ss', ['-K', '-tnH', `( sport = :${match[1]} and dport = :${match[2]} )`], {
      encoding: 'utf8',
    });
    if (killed.trim() === '') throw new Error(`ss -K did not find the socket of ${row.name}`);
    cut++;
  }
  return cut;
}

/** Runs rabbitmqctl with `args` against `node` and resolves with its stdout; rejects with stderr on failure. */
export async function rabbitmqctl(
  args: string[],
  timeoutMs = 60_000,
  node: RabbitNode = LOCAL_RABBIT,
): Promise<string> {
  const { command, args: before, env } = node.ctl;
  const { stdout } = await execFileAsync(command, [...before, ...args], {
    timeout: timeoutMs,
    env: env ? { ...process.env, ...env } : process.env,
  });
  return stdout;
}

/**
 * ESTABLISHED TCP connections to `port` (client side: the peer's port is `port`), from `ss -tnp`.
 * With `pid`, only those owned by that process; without, all of them (any process).
 */
export function connectionsTo(port: number, pid?: number): number {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => pid === undefined || new RegExp(`pid=${pid},`).test(line)).length;
}

/** Connections this test process holds to `port`. */
export function ownConnectionsTo(port: number): number {
  return connectionsTo(port, process.pid);
}

/** Resolves when something accepts a TCP connection on 127.0.0.1:`port`. */
export function tcpOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Waits until AMQP, STOMP and the management API all answer (e.g. after stop_app/start_app). */
export async function waitForRabbit(timeoutMs = 60_000, node: RabbitNode = LOCAL_RABBIT): Promise<void> {
  await waitFor(
    async () => {
      if (!(await tcpOpen(node.amqpPort)) || !(await tcpOpen(node.stompPort))) return false;
      await managementGet('/overview', node);
      return true;
    },
    timeoutMs,
    `RabbitMQ ${node.name} (AMQP ${node.amqpPort}, STOMP ${node.stompPort}, management ${node.managementPort})`,
  );
}
