/**
 * Looking at the local RabbitMQ from tests: what queues, exchanges and bindings exist (management
 * HTTP API), running rabbitmqctl, and counting TCP connections to a port. `npm test` makes sure the
 * node and its plugins are up first (test/support/ensure-rabbitmq.cjs).
 */
import { execFile, execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { waitFor } from './wait';

export const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const STOMP_URL = 'stomp://guest:guest@127.0.0.1:61613';
const MANAGEMENT = 'http://127.0.0.1:15672/api';
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

/** GET on the management API (default vhost), parsed JSON; throws with the status on failure. */
export async function managementGet<T>(path: string): Promise<T> {
  const res = await fetch(`${MANAGEMENT}${path}`, { headers: { authorization: AUTH } });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Queues of vhost `/`. Existence is current; `consumers` comes from the management stats and can
 * lag by a few seconds, so poll (waitFor) rather than assert once.
 */
export async function listQueues(): Promise<QueueInfo[]> {
  const queues = await managementGet<QueueInfo[]>('/queues/%2F');
  return queues.map((q) => ({ ...q, consumers: q.consumers ?? 0 }));
}

export function listExchanges(): Promise<ExchangeInfo[]> {
  return managementGet<ExchangeInfo[]>('/exchanges/%2F');
}

export function listBindings(): Promise<BindingInfo[]> {
  return managementGet<BindingInfo[]>('/bindings/%2F');
}

/** Names of the queues whose name starts with `prefix`, e.g. `stomp-relay.<instanceId>.`. */
export async function queueNames(prefix = ''): Promise<string[]> {
  return (await listQueues()).map((q) => q.name).filter((name) => name.startsWith(prefix));
}

/**
 * Cuts every AMQP connection whose client-given name (rabbitmq-client's `connectionName`) starts
 * with `prefix`, the way a network failure would: rabbitmqctl finds them (it sees connections at
 * once; the management API only after its next stats tick, and `close_connection` wants an Erlang
 * pid the CLI does not print usably), then `ss -K` aborts the client's socket, so both ends see the
 * connection die. Needs root (CAP_NET_ADMIN). Resolves with how many were cut.
 */
export async function cutConnectionsNamed(prefix: string): Promise<number> {
  interface ConnectionRow {
    name: string;
    client_properties: [string, string, unknown][];
  }
  const rows = JSON.parse(
    await rabbitmqctl(['list_connections', 'name', 'client_properties', '--formatter', 'json', '-q']),
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

/** Runs rabbitmqctl with `args` and resolves with its stdout; rejects with stderr on failure. */
export async function rabbitmqctl(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await execFileAsync('rabbitmqctl', args, { timeout: timeoutMs });
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
export async function waitForRabbit(timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      if (!(await tcpOpen(5672)) || !(await tcpOpen(61613))) return false;
      await managementGet('/overview');
      return true;
    },
    timeoutMs,
    'RabbitMQ (AMQP 5672, STOMP 61613, management 15672)',
  );
}
