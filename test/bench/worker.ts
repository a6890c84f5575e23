/**
 * A load process: holds many clients (subscribers) and/or runs a load generator (publisher), on
 * orders from the harness over the IPC channel (`{ id, cmd, args }` in, `{ id, ok, result }` out).
 * Started by workers.ts with its own raised file-descriptor limit; never shares a process with
 * the service being measured.
 */
import http from 'node:http';
import { Connection } from 'rabbitmq-client';
import { EXCHANGES, userRoutingKey } from '../../app/broker/rabbitmq/topology';
import { USER_DESTINATION_HEADER } from '../../app/broker/rabbitmq/user-delivery';
import { MESSAGE_ID_HEADER } from '../../app/broker/rabbitmq/wire';
import { openClient, Stats, tokenFor, type ClientPlan, type LoadClient } from './clients';
import { makeBody } from './payload';
import { pump, type PumpOptions, type PumpResult } from './pump';

export interface OpenArgs {
  plan: ClientPlan;
  from: number;
  to: number;
  concurrency: number;
  timeoutMs: number;
}

export interface OpenResult {
  opened: number;
  failed: number;
  ms: number;
  errorSamples: string[];
}

/** Each of this worker's clients sends; `{i}` in the destination becomes the client's index. */
export interface ClientSendArgs extends PumpOptions {
  destination: string;
  confirm: boolean;
}

/**
 * A backend publishing user pushes straight to the user exchange over AMQP, with publisher
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

/** A load generator's own connection(s): `{k}` in destination/user is seq modulo keyCount. */
export interface PublishArgs extends PumpOptions {
  via:
    ClientPlan | { protocol: 'rest'; baseUrl: string; secret: string; userPrefix: string } | AmqpBackendPlan;
  connections: number;
  destination: string;
  keyCount: number;
}

type Command =
  | { cmd: 'open'; args: OpenArgs }
  | { cmd: 'reset' }
  | { cmd: 'stats' }
  | { cmd: 'count' }
  | { cmd: 'clientSend'; args: ClientSendArgs }
  | { cmd: 'publish'; args: PublishArgs }
  | { cmd: 'close' };

const stats = new Stats();
const clients: LoadClient[] = [];

async function open(args: OpenArgs): Promise<OpenResult> {
  const started = Date.now();
  let next = args.from;
  let failed = 0;
  const errorSamples: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < args.to) {
      const index = next++;
      try {
        clients.push(await openClient(args.plan, index, stats, args.timeoutMs));
      } catch (err: unknown) {
        failed++;
        if (errorSamples.length < 5) errorSamples.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, args.concurrency) }, lane));
  return { opened: args.to - args.from - failed, failed, ms: Date.now() - started, errorSamples };
}

async function clientSend(args: ClientSendArgs): Promise<PumpResult> {
  if (clients.length === 0) throw new Error('no clients to send from');
  return pump(args, (seq) => {
    const client = clients[seq % clients.length];
    return client.send(args.destination.replace('{i}', String(client.index)), makeBody(seq), args.confirm);
  });
}

async function publish(args: PublishArgs): Promise<PumpResult> {
  const key = (seq: number): string => String(seq % args.keyCount);
  const via = args.via;
  if (via.protocol === 'rest') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: args.window });
    const token = tokenFor('bench-backend', via.secret, 'push');
    try {
      return await pump(args, (seq) =>
        restPush(agent, token, `${via.baseUrl}/api/users/${via.userPrefix}${key(seq)}/messages`, {
          destination: args.destination,
          body: makeBody(seq),
        }),
      );
    } finally {
      agent.destroy();
    }
  }
  if (via.protocol === 'amqp') return amqpPublish(args, via, key);
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

async function amqpPublish(
  args: PublishArgs,
  via: AmqpBackendPlan,
  key: (seq: number) => string,
): Promise<PumpResult> {
  const connection = new Connection({
    url: via.url,
    connectionName: 'stomp-relay bench backend',
    noDelay: true, // as a latency-minded backend would (rabbitmq-client leaves Nagle on)
  });
  const publisher = connection.createPublisher({ confirm: true });
  try {
    return await pump(args, (seq) =>
      publisher.send(
        {
          exchange: EXCHANGES.user,
          routingKey: userRoutingKey(`${via.userPrefix}${key(seq)}`),
          headers: { [USER_DESTINATION_HEADER]: via.userDestination, [MESSAGE_ID_HEADER]: `bench-${seq}` },
        },
        Buffer.from(makeBody(seq)),
      ),
    );
  } finally {
    await publisher.close();
    await connection.close();
  }
}

function restPush(agent: http.Agent, token: string, url: string, payload: object): Promise<void> {
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
        res.on('end', () => {
          if (res.statusCode === 202) resolve();
          else reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function close(): Promise<{ closed: number }> {
  const all = clients.splice(0);
  for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((c) => c.close()));
  return { closed: all.length };
}

async function handle(message: Command): Promise<unknown> {
  switch (message.cmd) {
    case 'open':
      return open(message.args);
    case 'reset':
      stats.reset();
      return null;
    case 'stats':
      return stats.data();
    case 'count':
      return { received: stats.received, lastAt: stats.lastAt, clients: clients.length };
    case 'clientSend':
      return clientSend(message.args);
    case 'publish':
      return publish(message.args);
    case 'close':
      return close();
  }
}

process.on('message', (message: Command & { id: number }) => {
  handle(message).then(
    (result) => process.send?.({ id: message.id, ok: true, result }),
    (err: unknown) =>
      process.send?.({ id: message.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The harness going away (even by kill -9) ends the worker: no orphaned load.
process.on('disconnect', () => process.exit(0));
