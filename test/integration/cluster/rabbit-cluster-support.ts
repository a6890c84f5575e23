/**
 * What the RabbitMQ-cluster tests watch while they kill and restart nodes: sessions pinned to one
 * instance each (a raw WebSocket that never reconnects, so a socket close is seen, not hidden),
 * REST traffic (user pushes and topic publishes) recorded with its answer and times, /readyz of every
 * instance sampled all along, which RabbitMQ node an instance's broker sockets are on (`ss`), and
 * an instance's queues and bindings as the management API shows them.
 */
import { header } from '../../../app/stomp/frame';
import type { Instance } from '../../support/instances';
import type { RabbitNode } from '../../support/rabbit-nodes';
import { connectionsTo, managementGet, type BindingInfo, type QueueInfo } from '../../support/rabbitmq';
import { openWebSocket, type RawStompClient } from '../../support/raw-stomp';
import { sleep } from '../../support/wait';

export const USER_DESTINATION = '/user/queue/cluster';
export const TOPIC = '/topic/cluster-news';

export interface Session {
  user: string;
  instance: Instance;
  client: RawStompClient;
}

/** A STOMP session of `user` on `instance`, subscribed to USER_DESTINATION and TOPIC (receipts awaited). */
export async function openSession(instance: Instance, user: string): Promise<Session> {
  const client = await openWebSocket(instance, { protocols: ['v12.stomp'] });
  await client.connect(instance.token(user), { 'heart-beat': '0,0' });
  await client.sendWithReceipt('SUBSCRIBE', { id: 'user', destination: USER_DESTINATION });
  await client.sendWithReceipt('SUBSCRIBE', { id: 'topic', destination: TOPIC });
  return { user, instance, client };
}

/** Sequence numbers (the JSON body) a session received on one of its subscriptions, in order. */
export function received(session: Session, subscription: 'user' | 'topic'): number[] {
  return session.client
    .all('MESSAGE')
    .filter((f) => header(f, 'subscription') === subscription)
    .map((f) => Number(JSON.parse(f.body.toString('utf8')) as unknown));
}

export interface Sent {
  seq: number;
  kind: 'user' | 'topic';
  /** The user pushed to (kind `user`). */
  user?: string;
  via: Instance;
  startedAt: number;
  endedAt: number;
  /** HTTP status; -1 when nothing answered in time. */
  status: number;
}

/**
 * Two loops, each every `everyMs`: a push to the next user or a publish on TOPIC, through the next
 * instance in turn. A call hanging on a dead broker node stops only its own loop for its timeout.
 */
export class Traffic {
  readonly sent: Sent[] = [];
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private seq = 0;

  constructor(instances: Instance[], users: string[], everyMs = 20) {
    const token = instances[0]!.token('backend', 'push', 3600);
    for (let loop = 0; loop < 2; loop++) {
      this.loops.push(
        (async () => {
          while (this.running) {
            const seq = this.seq++;
            const kind = seq % 3 === 2 ? 'topic' : 'user';
            const record: Sent = {
              seq,
              kind,
              user: kind === 'user' ? users[seq % users.length] : undefined,
              via: instances[seq % instances.length]!,
              startedAt: Date.now(),
              endedAt: 0,
              status: 0,
            };
            this.sent.push(record);
            record.status = await post(record, token);
            record.endedAt = Date.now();
            await sleep(everyMs);
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function post(record: Sent, token: string): Promise<number> {
  const path =
    record.kind === 'user' ? `/api/users/${encodeURIComponent(record.user!)}/messages` : '/api/messages';
  const destination = record.kind === 'user' ? USER_DESTINATION.replace('/user', '') : TOPIC;
  try {
    const res = await fetch(`${record.via.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ destination, body: record.seq }),
      signal: AbortSignal.timeout(15_000),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return -1;
  }
}

/** Who a sent message is owed to: every session of its user, or every session for a topic message. */
export function owedTo(sent: Sent, sessions: Session[]): Session[] {
  return sent.kind === 'topic' ? sessions : sessions.filter((s) => s.user === sent.user);
}

export interface Tally {
  /** Accepted (202) messages in the window. */
  accepted: number;
  /** Deliveries owed by those. */
  owed: number;
  /** Owed deliveries that did not arrive: `<kind> <seq> -> <user>@<instance>`. */
  missing: string[];
}

/** Of the accepted messages that `select` picks, which deliveries to `sessions` are missing. */
export function tally(sent: Sent[], sessions: Session[], select: (s: Sent) => boolean): Tally {
  const got = new Map(
    sessions.map((s) => [s, { user: new Set(received(s, 'user')), topic: new Set(received(s, 'topic')) }]),
  );
  const accepted = sent.filter((s) => s.status === 202 && select(s));
  const missing: string[] = [];
  let owed = 0;
  for (const message of accepted) {
    for (const session of owedTo(message, sessions)) {
      owed++;
      if (!got.get(session)![message.kind].has(message.seq)) {
        missing.push(`${message.kind} ${message.seq} -> ${session.user}@${session.instance.id}`);
      }
    }
  }
  return { accepted: accepted.length, owed, missing };
}

/** Deliveries received more than once, or by a session they were not for. */
export function duplicatesAndStrays(sent: Sent[], sessions: Session[]): string[] {
  const bySeq = new Map(sent.map((s) => [s.seq, s]));
  const wrong: string[] = [];
  for (const session of sessions) {
    for (const kind of ['user', 'topic'] as const) {
      const seqs = received(session, kind);
      const seen = new Set<number>();
      for (const seq of seqs) {
        const where = `${kind} ${seq} -> ${session.user}@${session.instance.id}`;
        if (seen.has(seq)) wrong.push(`twice: ${where}`);
        seen.add(seq);
        const message = bySeq.get(seq);
        if (!message || message.kind !== kind || (kind === 'user' && message.user !== session.user)) {
          wrong.push(`stray: ${where}`);
        }
      }
    }
  }
  return wrong;
}

export interface ReadySample {
  at: number;
  status: number;
  /** The 503's reason (the start of its body). */
  reason?: string;
}

/** /readyz of every instance every `everyMs` until stop(); -1 for no answer. */
export class ReadyWatch {
  readonly samples = new Map<Instance, ReadySample[]>();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(instances: Instance[], everyMs = 100) {
    for (const instance of instances) this.samples.set(instance, []);
    this.loop = (async () => {
      while (this.running) {
        await Promise.all(
          instances.map(async (instance) => {
            let status = -1;
            let reason: string | undefined;
            try {
              const res = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
              const body = await res.text();
              status = res.status;
              if (status !== 200) reason = body.slice(0, 300);
            } catch {
              // no answer: recorded as -1
            }
            this.samples.get(instance)!.push({ at: Date.now(), status, reason });
          }),
        );
        await sleep(everyMs);
      }
    })();
  }

  /** Samples of `instance` from `from` on (and before `to`) whose status was not 200. */
  notReady(instance: Instance, from = 0, to = Infinity): ReadySample[] {
    return this.samples.get(instance)!.filter((s) => s.at >= from && s.at < to && s.status !== 200);
  }

  /** When `instance` answered 200 again after its last non-200 since `from` (`from` if it never failed). */
  readySince(instance: Instance, from: number): number {
    const samples = this.samples.get(instance)!.filter((s) => s.at >= from);
    const lastBad = samples.map((s) => s.status !== 200).lastIndexOf(true);
    if (lastBad < 0) return from;
    return samples[lastBad + 1]?.at ?? Infinity;
  }

  /** Every instance has answered 200 for the last `forMs` (and at least one sample was taken since `from`). */
  settledSince(from: number, forMs: number): boolean {
    const now = Date.now();
    return [...this.samples.keys()].every((instance) => {
      const since = this.readySince(instance, from);
      return since !== Infinity && now - Math.max(since, from) >= forMs;
    });
  }

  /** The first sample at or after `from` with this status. */
  first(instance: Instance, status: number, from: number): ReadySample | undefined {
    return this.samples.get(instance)!.find((s) => s.at >= from && s.status === status);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/**
 * The instance's readiness changes as its own log states them ('broker relay ready' / 'not ready',
 * pino's `time` in ms), oldest first: immune to a change shorter than any poll.
 */
export function readinessChanges(instance: Instance): { at: number; ready: boolean }[] {
  const changes: { at: number; ready: boolean }[] = [];
  for (const line of instance.logs()) {
    if (!line.includes('broker relay')) continue;
    try {
      const entry = JSON.parse(line) as { time?: unknown; msg?: unknown };
      if (typeof entry.time !== 'number') continue;
      if (entry.msg === 'broker relay ready') changes.push({ at: entry.time, ready: true });
      else if (entry.msg === 'broker relay not ready') changes.push({ at: entry.time, ready: false });
    } catch {
      // not a JSON line
    }
  }
  return changes;
}

/** The cluster nodes `instance`'s process holds TCP connections to (STOMP or AMQP), by name. */
export function brokerNodesOf(instance: Instance, nodes: RabbitNode[]): string[] {
  return nodes
    .filter((n) => connectionsTo(n.stompPort, instance.pid) + connectionsTo(n.amqpPort, instance.pid) > 0)
    .map((n) => n.name);
}

/** `items` rotated to start at `start`. */
export function rotate<T>(items: T[], start: number): T[] {
  return [...items.slice(start), ...items.slice(0, start)];
}

/** BROKER_URL and AMQP_URL listing every node, `start` first; one STOMP connection. */
export function clusterEnv(nodes: RabbitNode[], start: number): Record<string, string> {
  const order = rotate(nodes, start);
  return {
    BROKER_URL: order.map((n) => n.stompUrl).join(','),
    AMQP_URL: order.map((n) => n.amqpUrl).join(','),
    BROKER_POOL_SIZE: '1',
  };
}

interface QueueOnNode extends QueueInfo {
  node: string;
}

/** The instance's queues (by name, with the node each lives on) and its bindings, as a survivor sees them. */
export interface Topology {
  /** Queue name -> the node it lives on. */
  queues: Map<string, string>;
  /** `exchange -[key]-> queue`, sorted. */
  bindings: string[];
}

export async function topologyOf(instance: Instance, from: RabbitNode): Promise<Topology> {
  const prefix = `stomp-relay.${instance.id}.`;
  const queues = (await managementGet<QueueOnNode[]>('/queues', from)).filter((q) =>
    q.name.startsWith(prefix),
  );
  const bindings = (await managementGet<BindingInfo[]>('/bindings', from))
    .filter((b) => b.destination.startsWith(prefix) && b.source !== '')
    .map((b) => `${b.source} -[${b.routing_key}]-> ${b.destination}`)
    .sort();
  return { queues: new Map(queues.map((q) => [q.name, q.node])), bindings };
}

/**
 * A competing consumer of `/queue/<name>` on `instance`: SUBSCRIBE with ack client-individual, every
 * MESSAGE acknowledged as soon as it is seen (polled every 20 ms). `seqs()` is every body received,
 * in order, redeliveries included.
 */
export class QueueWorker {
  private readonly timer: NodeJS.Timeout;
  private acked = 0;

  private constructor(readonly session: Session) {
    this.timer = setInterval(() => this.ackNew(), 20);
  }

  static async start(instance: Instance, user: string, destination: string): Promise<QueueWorker> {
    const client = await openWebSocket(instance, { protocols: ['v12.stomp'] });
    await client.connect(instance.token(user), { 'heart-beat': '0,0' });
    await client.sendWithReceipt('SUBSCRIBE', { id: 'jobs', destination, ack: 'client-individual' });
    return new QueueWorker({ user, instance, client });
  }

  seqs(): number[] {
    return this.session.client
      .all('MESSAGE')
      .map((f) => Number(JSON.parse(f.body.toString('utf8')) as unknown));
  }

  redelivered(): number {
    return this.session.client.all('MESSAGE').filter((f) => header(f, 'redelivered') === 'true').length;
  }

  stop(): void {
    clearInterval(this.timer);
    this.session.client.close();
  }

  private ackNew(): void {
    const messages = this.session.client.all('MESSAGE');
    for (; this.acked < messages.length; this.acked++) {
      const id = header(messages[this.acked]!, 'ack');
      if (id !== undefined && !this.session.client.closed) this.session.client.send('ACK', { id });
    }
  }
}

/** REST publishes of sequence numbers to `destination` through `instance`, one every `everyMs`. */
export class Producer {
  readonly sent: Sent[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(instance: Instance, destination: string, everyMs = 20) {
    const token = instance.token('backend', 'push', 3600);
    let seq = 0;
    this.loop = (async () => {
      while (this.running) {
        const record: Sent = {
          seq: seq++,
          kind: 'topic',
          via: instance,
          startedAt: Date.now(),
          endedAt: 0,
          status: 0,
        };
        this.sent.push(record);
        try {
          const res = await fetch(`${instance.url}/api/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ destination, body: record.seq }),
            signal: AbortSignal.timeout(15_000),
          });
          await res.arrayBuffer();
          record.status = res.status;
        } catch {
          record.status = -1;
        }
        record.endedAt = Date.now();
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
