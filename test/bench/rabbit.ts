/**
 * What the harness needs from the local RabbitMQ: whether its ports answer, how many sockets it
 * can still take (Web-STOMP peers count against its file-descriptor limit), and deleting the
 * queues the direct peer runs leave behind (`/queue/<name>` in the STOMP plugin is durable); what the
 * idle runs read of it (queues of one instance, its memory).
 */
import { tcpOpen } from '../support/rabbitmq';

const MANAGEMENT = 'http://127.0.0.1:15672/api';
const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

/** Whether something accepts a TCP connection on 127.0.0.1:`port` within 2 s. */
export function portOpen(port: number): Promise<boolean> {
  return tcpOpen(port, 2000);
}

async function management<T>(path: string, method = 'GET'): Promise<T | undefined> {
  try {
    const res = await fetch(`${MANAGEMENT}${path}`, { method, headers: { authorization: AUTH } });
    if (!res.ok) return undefined;
    return method === 'GET' ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

export interface BrokerNode {
  version?: string;
  socketsUsed?: number;
  socketsTotal?: number;
  fdTotal?: number;
}

export async function brokerNode(): Promise<BrokerNode> {
  const overview = await management<{ rabbitmq_version?: string }>('/overview');
  const nodes =
    await management<{ sockets_used?: number; sockets_total?: number; fd_total?: number }[]>('/nodes');
  const node = nodes?.[0];
  return {
    version: overview?.rabbitmq_version,
    socketsUsed: node?.sockets_used,
    socketsTotal: node?.sockets_total,
    fdTotal: node?.fd_total,
  };
}

/** Names of queues of vhost `/` starting with `prefix`. */
export async function queuesStartingWith(prefix: string): Promise<string[]> {
  const queues = await management<{ name: string }[]>('/queues/%2F?columns=name');
  return (queues ?? []).map((q) => q.name).filter((n) => n.startsWith(prefix));
}

export async function deleteQueues(names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(
      names.slice(i, i + 20).map((n) => management(`/queues/%2F/${encodeURIComponent(n)}`, 'DELETE')),
    );
  }
}

/** How many queues of vhost `/` have names starting with `prefix` (one filtered page, no listing). */
export async function queueCount(prefix: string): Promise<number | null> {
  const pattern = encodeURIComponent(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
  const page = await management<{ filtered_count?: number }>(
    `/queues/%2F?page=1&page_size=1&columns=name&use_regex=true&name=${pattern}`,
  );
  return page?.filtered_count ?? null;
}

/** Memory RabbitMQ reports using (`mem_used` of /api/nodes), in KiB. */
export async function brokerMemoryKiB(): Promise<number | null> {
  const nodes = await management<{ mem_used?: number }[]>('/nodes?columns=mem_used');
  const used = nodes?.[0]?.mem_used;
  return used === undefined ? null : Math.round(used / 1024);
}
