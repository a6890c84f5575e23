/**
 * The systems a run measures, as the scenarios see them: where each one's clients connect, how
 * its backend pushes, which processes' CPU counts. stomp-relay (one or N instances on RabbitMQ,
 * clients split round-robin over them with no balancer), RabbitMQ Web-STOMP direct, the bare-ws
 * ceiling, and the Socket.IO peer (N nodes on Redis, pushed to by the emitter).
 */
import { tokenFor } from './clients';
import type { Spawned } from './processes';
import type { FanoutTarget } from './scenarios/fanout';
import type { OneToOneSetup, OneToOneVariant } from './scenarios/one-to-one';

export const WEB_STOMP_URL = 'ws://127.0.0.1:15674/ws';
export const BROKER_URL = 'stomp://guest:guest@127.0.0.1:61613';
export const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const DIRECT_QUEUE_PREFIX = 'stomp-bench.';
export const FANOUT_TOPIC = '/topic/bench-fanout';
/** The Socket.IO fan-out: a room everybody joins. */
export const FANOUT_ROOM = 'topic:bench-fanout';

/** Load processes whose CPU every figure reports beside the servers'. */
export interface LoadPids {
  rabbitmq: number[];
  clients: number[];
  loadgen: number[];
}

const login = { kind: 'login' as const, login: 'guest', passcode: 'guest', host: '/' };
const stompUrl = (s: Spawned): string => `ws://127.0.0.1:${s.port}/stomp`;

function spread(servers: Spawned[], url: (s: Spawned) => string): { url: string; instances?: string[] } {
  const urls = servers.map(url);
  return servers.length > 1 ? { url: urls[0], instances: urls } : { url: urls[0] };
}

/**
 * `publisher`: `client`, STOMP SENDs to the first instance with a RECEIPT each (against Web-STOMP
 * direct and bare ws, whose publishers are clients too); `backend`, AMQP publishes to amq.topic
 * with confirms (against Socket.IO, whose publisher is a backend's emitter).
 */
export function productFanout(
  instances: Spawned[],
  secret: string,
  pids: LoadPids,
  publisher: 'client' | 'backend' = 'client',
): FanoutTarget {
  const auth = { kind: 'jwt' as const, secret };
  return {
    system: 'product',
    processes: instances.length,
    subscriber: { protocol: 'stomp', ...spread(instances, stompUrl), auth, subscribe: FANOUT_TOPIC },
    publisher:
      publisher === 'backend'
        ? { protocol: 'amqp-topic', url: AMQP_URL }
        : { protocol: 'stomp', url: stompUrl(instances[0]), auth },
    destination: FANOUT_TOPIC,
    pids: { service: instances.map((s) => s.pid), ...pids },
  };
}

export function webStompFanout(pids: LoadPids): FanoutTarget {
  return {
    system: 'webstomp',
    processes: 1,
    subscriber: { protocol: 'stomp', url: WEB_STOMP_URL, auth: login, subscribe: FANOUT_TOPIC },
    publisher: { protocol: 'stomp', url: WEB_STOMP_URL, auth: login },
    destination: FANOUT_TOPIC,
    pids: { ...pids },
  };
}

export function bareFanout(bare: Spawned, pids: LoadPids): FanoutTarget {
  return {
    system: 'bare-ws',
    processes: 1,
    subscriber: { protocol: 'ws', url: `${bare.url}/sub` },
    publisher: { protocol: 'ws', url: `${bare.url}/pub` },
    destination: '',
    pids: { bare: [bare.pid], clients: pids.clients, loadgen: pids.loadgen },
  };
}

export interface SocketIoCluster {
  nodes: Spawned[];
  redisUrl: string;
  key: string;
  redisPid?: number;
}

export function socketIoFanout(cluster: SocketIoCluster, secret: string, pids: LoadPids): FanoutTarget {
  return {
    system: 'socketio',
    processes: cluster.nodes.length,
    subscriber: {
      protocol: 'socketio',
      ...spread(cluster.nodes, (n) => n.url),
      auth: { kind: 'jwt', secret },
      subscribe: FANOUT_ROOM,
    },
    publisher: { protocol: 'socketio-emitter', redisUrl: cluster.redisUrl, key: cluster.key },
    destination: FANOUT_ROOM,
    pids: socketIoPids(cluster, pids),
  };
}

function socketIoPids(cluster: SocketIoCluster, pids: LoadPids): Record<string, number[]> {
  return {
    nodes: cluster.nodes.map((n) => n.pid),
    redis: cluster.redisPid ? [cluster.redisPid] : [],
    clients: pids.clients,
    loadgen: pids.loadgen,
  };
}

/** Why `POST /api/messages/batch` cannot be measured on `baseUrl`, or null once it exists. */
async function batchRouteMissing(baseUrl: string, secret: string): Promise<string | null> {
  const res = await fetch(`${baseUrl}/api/messages/batch`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokenFor('bench-backend', secret, 'push')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ messages: [] }),
  });
  await res.arrayBuffer();
  return res.status === 404 ? 'route answers 404: not built' : null;
}

/**
 * The product's one-to-one ways of pushing. On one instance every way; on several, the two a
 * backend would use across them: REST calls spread over the instances, and AMQP to the exchange.
 */
export function productOneToOne(
  instances: Spawned[],
  secret: string,
  batchSize: number,
  pids: LoadPids,
): OneToOneSetup {
  const baseUrls = instances.map((s) => s.url);
  const rest: OneToOneVariant = {
    name: 'rest',
    pusher: {
      kind: 'loadgen',
      via: { protocol: 'rest', baseUrls, secret, userPrefix: 'bench-u' },
      destination: '/queue/echo',
    },
  };
  const batch: OneToOneVariant = {
    name: 'rest-batch',
    pusher: {
      kind: 'loadgen',
      via: { protocol: 'rest-batch', baseUrls, secret, userPrefix: 'bench-u', batchSize },
      destination: '/queue/echo',
    },
    unavailable: () => batchRouteMissing(baseUrls[0], secret),
  };
  const stompSend: OneToOneVariant = {
    name: 'stomp-send',
    pusher: { kind: 'clients', destination: '/app/echo' },
  };
  const amqp: OneToOneVariant = {
    name: 'amqp-backend',
    pusher: {
      kind: 'loadgen',
      via: { protocol: 'amqp', url: AMQP_URL, userPrefix: 'bench-u', userDestination: 'queue/echo' },
      destination: '',
    },
  };
  return {
    system: 'product',
    processes: instances.length,
    subscriber: {
      protocol: 'stomp',
      ...spread(instances, stompUrl),
      auth: { kind: 'jwt', secret },
      subscribe: '/user/queue/echo',
    },
    variants: instances.length > 1 ? [amqp, rest] : [rest, batch, stompSend, amqp],
    pids: { service: instances.map((s) => s.pid), ...pids },
    metricsUrls: baseUrls,
  };
}

export function webStompOneToOne(pids: LoadPids): OneToOneSetup {
  const queue = `/queue/${DIRECT_QUEUE_PREFIX}u`;
  return {
    system: 'webstomp',
    processes: 1,
    subscriber: { protocol: 'stomp', url: WEB_STOMP_URL, auth: login, subscribe: `${queue}{i}` },
    variants: [
      {
        name: 'backend-publisher',
        pusher: {
          kind: 'loadgen',
          via: { protocol: 'stomp', url: WEB_STOMP_URL, auth: login, userPrefix: 'bench-backend-' },
          destination: `${queue}{k}`,
        },
      },
      { name: 'self-send', pusher: { kind: 'clients', destination: `${queue}{i}` } },
    ],
    pids: { ...pids },
  };
}

export function socketIoOneToOne(cluster: SocketIoCluster, secret: string, pids: LoadPids): OneToOneSetup {
  return {
    system: 'socketio',
    processes: cluster.nodes.length,
    subscriber: {
      protocol: 'socketio',
      ...spread(cluster.nodes, (n) => n.url),
      auth: { kind: 'jwt', secret },
      subscribe: 'user:{u}',
    },
    variants: [
      {
        name: 'emitter',
        pusher: {
          kind: 'loadgen',
          via: { protocol: 'socketio-emitter', redisUrl: cluster.redisUrl, key: cluster.key },
          destination: 'user:bench-u{k}',
        },
      },
    ],
    pids: socketIoPids(cluster, pids),
  };
}
