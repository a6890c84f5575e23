/**
 * The load generator's ways of pushing, each as a backend would do it, each confirmed the way its
 * system confirms (so that `pump` bounds what is in flight the same way for all): REST calls
 * (202), batch REST calls (200 with a result per item), STOMP SENDs with RECEIPTs, AMQP publishes
 * with publisher confirms (to the relay's user exchange, or to a bare exchange for the ceiling),
 * and @socket.io/redis-emitter, whose PUBLISH is confirmed only by Redis's reply (Redis took it;
 * nothing says any node got it). `{k}` in a destination or room is the push's key: seq modulo
 * keyCount.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Emitter } from '@socket.io/redis-emitter';
import { Connection } from 'rabbitmq-client';
import { createClient } from 'redis';
import { EXCHANGES, TOPIC_EXCHANGE, userRoutingKey } from '../../app/broker/rabbitmq/topology';
import { USER_DESTINATION_HEADER } from '../../app/broker/rabbitmq/amqp-delivery';
import { MESSAGE_ID_HEADER } from '../../app/broker/rabbitmq/wire';
import { openClient, tokenFor, type ClientPlan, type LoadClient } from './clients';
import { makeBody } from './payload';
import { PACED_TICK_MS, pump, type PumpOptions, type PumpResult } from './pump';
import { PUSH_EVENT } from './socketio-client';
import { Stats } from './stats';

/** REST pushes, `POST /api/users/{user}/messages`, spread round-robin over `baseUrls`. */
export interface RestPlan {
  protocol: 'rest';
  baseUrls: string[];
  secret: string;
  userPrefix: string;
}

/** `POST /api/messages/batch` (SPEC "Batch pushes"): `batchSize` user items per call. */
export interface RestBatchPlan {
  protocol: 'rest-batch';
  baseUrls: string[];
  secret: string;
  userPrefix: string;
  batchSize: number;
}

/**
 * A backend publishing user pushes straight to the relay's user exchange over AMQP, with publisher
 * confirms, as README "Replies: REST, or exchange stomp-relay.user" documents: no instance sees the
 * publish, only the deliveries.
 */
export interface AmqpBackendPlan {
  protocol: 'amqp';
  url: string;
  userPrefix: string;
  /** `x-relay-user-destination`, e.g. `queue/echo`. */
  userDestination: string;
}

/** The ceiling's publisher: confirmed publishes to `exchange` with routing key `${keyPrefix}{k}`. */
export interface AmqpBarePlan {
  protocol: 'amqp-bare';
  url: string;
  exchange: string;
  keyPrefix: string;
}

/**
 * A backend broadcasting to a topic over AMQP: amq.topic with the topic name as routing key (what
 * the STOMP plugin's `/topic/<name>` is, and what each instance's topics queue is bound by), with
 * publisher confirms, a message id and content type as a backend sets them. No instance handles
 * the publish, as no Socket.IO node handles the emitter's.
 */
export interface AmqpTopicPlan {
  protocol: 'amqp-topic';
  url: string;
}

/** A Socket.IO backend: `emitter.to(<destination>).emit('m', body)` through Redis. */
export interface EmitterPlan {
  protocol: 'socketio-emitter';
  redisUrl: string;
  /** The adapter's key (channel prefix), the same as the nodes'. */
  key: string;
}

export type PushVia =
  ClientPlan | RestPlan | RestBatchPlan | AmqpBackendPlan | AmqpBarePlan | AmqpTopicPlan | EmitterPlan;

/** A load generator's own connection(s): `{k}` in destination/user is seq modulo keyCount. */
export interface PublishArgs extends PumpOptions {
  via: PushVia;
  connections: number;
  destination: string;
  keyCount: number;
}

export async function publish(args: PublishArgs): Promise<PumpResult> {
  const key = (seq: number): string => String(seq % args.keyCount);
  const via = args.via;
  switch (via.protocol) {
    case 'rest':
      return restPublish(args, via, key);
    case 'rest-batch':
      return restBatchPublish(args, via, key);
    case 'amqp':
      return amqpPublish(args, via.url, (seq) => ({
        exchange: EXCHANGES.user,
        routingKey: userRoutingKey(`${via.userPrefix}${key(seq)}`),
        headers: {
          [USER_DESTINATION_HEADER]: via.userDestination,
          [MESSAGE_ID_HEADER]: `bench-${seq}`,
        },
      }));
    case 'amqp-bare':
      return amqpPublish(args, via.url, (seq) => ({
        exchange: via.exchange,
        routingKey: `${via.keyPrefix}${key(seq)}`,
      }));
    case 'amqp-topic':
      return amqpPublish(args, via.url, () => ({
        exchange: TOPIC_EXCHANGE,
        routingKey: args.destination.replace(/^\/topic\//, ''),
        messageId: randomUUID(),
        contentType: 'text/plain',
      }));
    case 'socketio-emitter':
      return emitterPublish(args, via, key);
    default:
      return clientsPublish(args, via, key);
  }
}

async function clientsPublish(
  args: PublishArgs,
  via: ClientPlan,
  key: (seq: number) => string,
): Promise<PumpResult> {
  const publishers: LoadClient[] = [];
  const own = new Stats();
  try {
    for (let i = 0; i < args.connections; i++) publishers.push(await openClient(via, i, own, 10_000));
    return await pump(args, (seq) =>
      publishers[seq % publishers.length].send(
        args.destination.replace('{k}', key(seq)),
        makeBody(seq),
        true,
      ),
    );
  } finally {
    await Promise.all(publishers.map((p) => p.close()));
  }
}

/**
 * A keep-alive agent that closes its idle sockets before the server would. Node's server closes a
 * keep-alive socket idle for keepAliveTimeout (5 s by default) and says so (`Keep-Alive: timeout=5`),
 * but an agent without a `timeout` of its own ignores that hint (Node 20's keepSocketAlive only
 * shortens a timeout already set): a request written on a socket in the instant the server closes
 * it fails with "socket hang up", never having reached the service (the x4 rest row of 2026-12-01:
 * 2 of 20,000; reproduced with a bare Node server: 8 of 1,600 requests on sockets idle 5.9-6.3 s
 * failed so, none with the agent's own timeout at 4 s). A backend's HTTP client keeps below the
 * server's timeout; so does the bench's.
 */
function restAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, timeout: REST_IDLE_SOCKET_MS });
}

/** Below Node's default server keepAliveTimeout (5 s), which the service keeps. */
const REST_IDLE_SOCKET_MS = 4000;

async function restPublish(
  args: PublishArgs,
  via: RestPlan,
  key: (seq: number) => string,
): Promise<PumpResult> {
  const agent = restAgent(args.window);
  const token = tokenFor('bench-backend', via.secret, 'push');
  const online = { yes: 0, no: 0 };
  try {
    const result = await pump(args, async (seq) => {
      const base = via.baseUrls[seq % via.baseUrls.length];
      const answer = await postJson(agent, token, `${base}/api/users/${via.userPrefix}${key(seq)}/messages`, {
        destination: args.destination,
        body: makeBody(seq),
      });
      if (answer.status !== 202) throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
      countOnline(online, (JSON.parse(answer.text) as { online?: unknown }).online);
    });
    return { ...result, online };
  } finally {
    agent.destroy();
  }
}

/**
 * Batch calls of `batchSize` items; what is counted is items (sent, confirmed = answered `{"id"}`,
 * failed), so that the figures read like single pushes. The window and rate are in items too.
 * Paced, a call carries the pushes that came due since the last one (a pump tick's worth), as a
 * backend batching what it has would send them. A full call of `batchSize` at 1000/s is a backend
 * holding pushes for 100 ms, which the latency (timed from the call) would not show, and it would
 * time the service's work on the 99 items ahead of each push instead of the push.
 */
async function restBatchPublish(
  args: PublishArgs,
  via: RestBatchPlan,
  key: (seq: number) => string,
): Promise<PumpResult> {
  const due = Math.round((args.ratePerSec * PACED_TICK_MS) / 1000);
  const size = Math.max(1, args.ratePerSec > 0 ? Math.min(via.batchSize, due) : via.batchSize);
  const agent = restAgent(Math.max(1, Math.ceil(args.window / size)));
  const token = tokenFor('bench-backend', via.secret, 'push');
  let confirmed = 0;
  let failed = 0;
  const online = { yes: 0, no: 0 };
  const calls = Math.ceil(args.total / size);
  try {
    const result = await pump(
      {
        ...args,
        total: calls,
        window: Math.max(1, Math.ceil(args.window / size)),
        ratePerSec: args.ratePerSec / size,
      },
      async (call) => {
        const first = (call - 1) * size + 1;
        const count = Math.min(size, args.total - first + 1);
        const messages = Array.from({ length: count }, (_, j) => ({
          user: `${via.userPrefix}${key(first + j)}`,
          destination: args.destination,
          body: makeBody(first + j),
        }));
        const base = via.baseUrls[call % via.baseUrls.length];
        const answer = await postJson(agent, token, `${base}/api/messages/batch`, { messages });
        if (answer.status !== 200) {
          failed += count;
          throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
        }
        const results = (
          JSON.parse(answer.text) as { results?: { id?: string; error?: string; online?: unknown }[] }
        ).results;
        for (const r of results ?? []) countOnline(online, r.online);
        const taken = (results ?? []).filter((r) => typeof r.id === 'string').length;
        confirmed += taken;
        failed += count - taken;
        if (taken < count) throw new Error(`batch: ${count - taken} of ${count} items refused`);
      },
    );
    return { ...result, sent: Math.min(args.total, result.sent * size), confirmed, failed, online };
  } finally {
    agent.destroy();
  }
}

/** Counts a push answer's `online` (absent: the broker could not tell, not counted). */
function countOnline(counts: { yes: number; no: number }, online: unknown): void {
  if (online === true) counts.yes++;
  else if (online === false) counts.no++;
}

type AmqpEnvelope = {
  exchange: string;
  routingKey: string;
  headers?: Record<string, string>;
  messageId?: string;
  contentType?: string;
};

async function amqpPublish(
  args: PublishArgs,
  url: string,
  envelope: (seq: number) => AmqpEnvelope,
): Promise<PumpResult> {
  const connection = new Connection({
    url,
    connectionName: 'stomp-relay bench backend',
    noDelay: true, // as a latency-minded backend would (rabbitmq-client leaves Nagle on)
  });
  // Each publish that cannot be confirmed rejects on its own (counted by pump); this only keeps the
  // connection's own error event from ending the load generator.
  connection.on('error', () => undefined);
  const publisher = connection.createPublisher({ confirm: true });
  try {
    return await pump(args, (seq) => publisher.send(envelope(seq), Buffer.from(makeBody(seq))));
  } finally {
    await publisher.close();
    await connection.close();
  }
}

async function emitterPublish(
  args: PublishArgs,
  via: EmitterPlan,
  key: (seq: number) => string,
): Promise<PumpResult> {
  const redis = createClient({ url: via.redisUrl });
  redis.on('error', () => undefined); // a failed PUBLISH rejects its own promise, counted by pump
  await redis.connect();
  // The emitter drops PUBLISH's reply; this client hands it back, so the window bounds the
  // PUBLISHes Redis has not answered yet, as confirms do for the other systems.
  let replied: Promise<unknown> = Promise.resolve();
  const confirming = {
    publish: (channel: string, message: Buffer): Promise<unknown> =>
      (replied = redis.publish(channel, message)),
  };
  const emitter = new Emitter(confirming, { key: via.key });
  try {
    return await pump(args, async (seq) => {
      emitter.to(args.destination.replace('{k}', key(seq))).emit(PUSH_EVENT, makeBody(seq));
      await replied;
    });
  } finally {
    await redis.close();
  }
}

interface Answer {
  status: number;
  text: string;
}

function postJson(agent: http.Agent, token: string, url: string, payload: object): Promise<Answer> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
