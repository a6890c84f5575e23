/**
 * The cross-instance list of live sessions, kept current through RabbitMQ alone (no Redis, no shared
 * database): every instance tells every other what it holds, and each answers list() from its own view.
 *
 * Wire: one fanout exchange (stomp-relay.directory); each instance consumes it through an exclusive,
 * auto-delete queue `stomp-relay.<instanceId>.directory`, so the queue dies with the connection and
 * nothing is left behind. Messages are JSON, one of:
 *   hello    - "I (re)joined; here are my sessions; announce yours now". Sent after every (re)connect,
 *              so a new instance has the full list within one round trip instead of one announce period.
 *   snapshot - every announceMs: the sender's full list; replaces the receiver's view of the sender.
 *              hello and snapshot carry `announced` too: what setAnnouncement() gives (admin stats),
 *              kept by receivers as sent (at most MAX_ANNOUNCED_CHARS of JSON, else dropped).
 *   upsert / remove - one session, sent at once so lists are current between snapshots.
 *   gone     - sent by stop(): receivers drop the sender immediately.
 * Events and snapshots of one instance travel through one channel to each queue, so they arrive in
 * the order sent; a lost event (publish while the broker is away) is repaired by the next snapshot.
 *
 * Liveness bound: a receiver forgets instance X once it has heard nothing from X for
 * 3 x announceMs. So the sessions of an instance that dies without saying goodbye (kill -9, network
 * loss) disappear from every other instance's list at most 3 x announceMs after its last message
 * arrived. Three periods tolerate two lost or late snapshots (a GC pause, a reconnect) before a
 * live instance is wrongly dropped; its next message brings it back. Messages also carry that
 * period as their AMQP expiration, so nothing older than the bound is ever applied.
 *
 * Reconnects are rabbitmq-client's job: its consumer re-declares the exchange, queue and binding on
 * every new channel, and each time it is ready again we send a hello (we may have missed events).
 */
import { Connection, type AsyncMessage, type Consumer, type Publisher } from 'rabbitmq-client';
import {
  byConnectedAt,
  type InstancePresence,
  type LocalSessionListener,
  type PresenceDirectory,
  type SessionInfo,
} from './directory';
import { ServiceError } from '../errors';
import { withTimeout } from '../timeout';
import { parseMessage, type DirectoryMessage } from './directory-wire';
import { amqpConnectionTarget } from '../broker/rabbitmq/amqp-url';
import { EXCHANGES, EXCHANGE_DECLARATIONS, directoryQueueName } from '../broker/rabbitmq/topology';

export interface DirectoryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AmqpSessionDirectoryOptions {
  /**
   * The instance's AMQP connection (amqp-link.ts), kept open by its owner; or instead `amqpUrl`, for
   * a directory with a connection of its own (never logged: it holds the password).
   */
  connection?: Connection;
  amqpUrl?: string;
  /** This instance's id; part of the queue name and of every entry's `instance`. */
  instanceId: string;
  /** Period of full snapshots; instances silent for 3 x this are dropped. */
  announceMs: number;
  logger?: DirectoryLogger;
  /** Told when this instance's first entry for a session is added, and when it is removed. */
  onLocalSession?: LocalSessionListener;
}

interface RemoteView {
  /** performance.now() when the last message from this instance arrived. */
  heardAt: number;
  sessions: Map<string, SessionInfo>;
  /** What its last hello or snapshot carried beside the sessions. */
  announced: unknown;
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/** How long start() waits for the first connection before giving up. */
const START_TIMEOUT_MS = 10_000;
/** How long stop() gives the goodbye and the connection close before cutting the socket. */
const STOP_TIMEOUT_MS = 3_000;
/** Reconnect backoff ceiling: well above announce periods, well below rabbitmq-client's 30 s default. */
const RETRY_HIGH_MS = 5_000;

const noopLogger: DirectoryLogger = { info() {}, warn() {}, error() {} };

export class AmqpSessionDirectory implements PresenceDirectory {
  readonly name = 'presence';
  private readonly options: AmqpSessionDirectoryOptions;
  private readonly instanceId: string;
  private readonly announceMs: number;
  private readonly expireAfterMs: number;
  private readonly logger: DirectoryLogger;
  private readonly queue: string;

  private state: State = 'idle';
  private readonly own = new Map<string, SessionInfo>();
  private readonly remote = new Map<string, RemoteView>();
  private connection?: Connection;
  private publisher?: Publisher;
  private consumer?: Consumer;
  private timer?: NodeJS.Timeout;
  /** Set while publishes fail, so an outage is logged once and its end once, not per session. */
  private publishFailing = false;
  private announcement: () => unknown = () => undefined;

  constructor(options: AmqpSessionDirectoryOptions) {
    if (!options.instanceId) throw new RangeError('instanceId must not be empty');
    if (!Number.isInteger(options.announceMs) || options.announceMs <= 0) {
      throw new RangeError(`announceMs must be a positive integer, got ${options.announceMs}`);
    }
    if (!options.connection && !options.amqpUrl) throw new RangeError('connection or amqpUrl is needed');
    this.options = options;
    this.instanceId = options.instanceId;
    this.announceMs = options.announceMs;
    this.expireAfterMs = 3 * options.announceMs;
    this.logger = options.logger ?? noopLogger;
    this.queue = directoryQueueName(options.instanceId);
  }

  /**
   * Connects, declares, consumes and says hello. Rejects with broker_unavailable if RabbitMQ cannot
   * be reached within 10 s (and leaves nothing running); after that, outages are survived.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`session directory cannot start: it is ${this.state}`);
    this.state = 'starting';
    const connection =
      this.options.connection ??
      new Connection({
        ...amqpConnectionTarget(this.options.amqpUrl ?? ''),
        connectionName: `${this.queue} (session directory)`,
        retryHigh: RETRY_HIGH_MS,
        noDelay: true, // a session list request must not wait on Nagle (see amqp-link.ts)
      });
    this.connection = connection;
    if (!this.options.connection) {
      connection.on('error', (err: unknown) =>
        this.logger.warn({ err }, 'session directory: AMQP connection error'),
      );
    }
    this.publisher = connection.createPublisher({
      confirm: true,
      exchanges: [EXCHANGE_DECLARATIONS.directory],
    });
    const consumer = connection.createConsumer(
      {
        queue: this.queue,
        queueOptions: { exclusive: true, autoDelete: true, durable: false },
        exchanges: [EXCHANGE_DECLARATIONS.directory],
        queueBindings: [{ exchange: EXCHANGES.directory, queue: this.queue, routingKey: '' }],
        noAck: true,
      },
      (msg) => this.receive(msg),
    );
    this.consumer = consumer;
    consumer.on('error', (err: unknown) => this.logger.warn({ err }, 'session directory: consumer error'));
    const ready = new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(() => {
        consumer.off('ready', onReady);
        reject(new ServiceError('broker_unavailable', 'session directory: RabbitMQ did not answer in time'));
      }, START_TIMEOUT_MS);
      const onReady = (): void => {
        clearTimeout(timeout);
        resolve();
      };
      consumer.once('ready', onReady);
    });
    // Every (re)connect: we may have missed events, and others may have dropped us; re-sync both ways.
    consumer.on('ready', () => this.announce('hello'));
    try {
      await ready;
    } catch (err: unknown) {
      await this.closeAmqp();
      this.state = 'stopped';
      throw err;
    }
    if ((this.state as State) !== 'starting') {
      // stop() was called while we waited: it found nothing to close, so close here.
      await this.closeAmqp();
      return;
    }
    this.timer = setInterval(() => this.tick(), this.announceMs);
    this.timer.unref();
    this.state = 'running';
    this.logger.info(
      {
        instance: this.instanceId,
        queue: this.queue,
        announceMs: this.announceMs,
        expireAfterMs: this.expireAfterMs,
      },
      'session directory started',
    );
  }

  /** Says goodbye (others drop this instance at once), then closes. Idempotent. */
  async stop(): Promise<void> {
    if (this.state !== 'running') {
      // Never started, already stopped, or still starting (start() sees this and closes).
      if (this.state !== 'stopping') this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    clearInterval(this.timer);
    try {
      await withTimeout(
        this.publish({ v: 1, type: 'gone', from: this.instanceId }),
        STOP_TIMEOUT_MS,
        'goodbye',
      );
    } catch (err: unknown) {
      this.logger.warn(
        { err },
        'session directory: goodbye not sent; others drop us after 3 announce periods',
      );
    }
    await this.closeAmqp();
    this.own.clear();
    this.remote.clear();
    this.state = 'stopped';
  }

  upsert(info: SessionInfo): void {
    const copy = copySession(info);
    const previous = this.own.get(copy.sessionId);
    this.own.set(copy.sessionId, copy);
    if (previous?.user !== copy.user) {
      if (previous) this.options.onLocalSession?.closed(previous.user);
      this.options.onLocalSession?.opened(copy.user);
    }
    if (this.state === 'running') this.send({ v: 1, type: 'upsert', from: this.instanceId, session: copy });
  }

  remove(sessionId: string): void {
    const previous = this.own.get(sessionId);
    if (!previous) return;
    this.own.delete(sessionId);
    this.options.onLocalSession?.closed(previous.user);
    if (this.state === 'running') this.send({ v: 1, type: 'remove', from: this.instanceId, sessionId });
  }

  async list(user: string): Promise<SessionInfo[]> {
    const now = performance.now();
    const found: SessionInfo[] = [];
    for (const info of this.own.values()) if (info.user === user) found.push(copySession(info));
    for (const view of this.remote.values()) {
      if (now - view.heardAt > this.expireAfterMs) continue;
      for (const info of view.sessions.values()) if (info.user === user) found.push(copySession(info));
    }
    return found.sort(byConnectedAt);
  }

  instances(): InstancePresence[] {
    const now = performance.now();
    const found: InstancePresence[] = [
      {
        instance: this.instanceId,
        heardAgoMs: 0,
        sessions: [...this.own.values()],
        announced: this.announcement(),
      },
    ];
    for (const [instance, view] of this.remote) {
      const heardAgoMs = Math.round(now - view.heardAt);
      if (heardAgoMs > this.expireAfterMs) continue;
      found.push({ instance, heardAgoMs, sessions: [...view.sessions.values()], announced: view.announced });
    }
    return found;
  }

  setAnnouncement(provide: () => unknown): void {
    this.announcement = provide;
  }

  private tick(): void {
    const now = performance.now();
    for (const [instance, view] of this.remote) {
      if (now - view.heardAt > this.expireAfterMs) {
        this.remote.delete(instance);
        this.logger.info(
          { instance, sessions: view.sessions.size, silentMs: Math.round(now - view.heardAt) },
          'session directory: instance went silent; its sessions are dropped',
        );
      }
    }
    this.announce('snapshot');
  }

  private announce(type: 'hello' | 'snapshot'): void {
    if (this.state !== 'running' && this.state !== 'starting') return;
    let announced: unknown;
    try {
      announced = this.announcement();
    } catch (err: unknown) {
      // The sessions matter more than the extra: announce them without it.
      this.logger.warn({ err }, 'session directory: the announcement provider failed');
    }
    this.send({ v: 1, type, from: this.instanceId, sessions: [...this.own.values()], announced });
  }

  /** Fire and forget: never throws, logs the first failure of an outage and its recovery. */
  private send(message: DirectoryMessage): void {
    this.publish(message).then(
      () => {
        if (!this.publishFailing) return;
        this.publishFailing = false;
        this.logger.info({}, 'session directory: publishing again');
      },
      (err: unknown) => {
        if (this.publishFailing) return;
        this.publishFailing = true;
        this.logger.warn(
          { err, type: message.type },
          'session directory: publish failed; the next snapshot after recovery will catch up',
        );
      },
    );
  }

  private async publish(message: DirectoryMessage): Promise<void> {
    // While disconnected rabbitmq-client would queue the publish until acquireTimeout; a snapshot
    // follows anyway, so fail fast rather than pile up one pending publish per session event.
    if (!this.publisher || !this.connection?.ready) {
      throw new ServiceError('broker_unavailable', 'session directory: RabbitMQ connection is down');
    }
    await this.publisher.send(
      { exchange: EXCHANGES.directory, routingKey: '', expiration: String(this.expireAfterMs) },
      message,
    );
  }

  private receive(msg: AsyncMessage): void {
    const message = parseMessage(msg.body);
    if (!message) {
      this.logger.warn({ contentType: msg.contentType }, 'session directory: ignored a malformed message');
      return;
    }
    if (message.from === this.instanceId) return; // the fanout also delivers our own messages
    const now = performance.now();
    switch (message.type) {
      case 'hello':
      case 'snapshot':
        this.remote.set(message.from, {
          heardAt: now,
          sessions: new Map(message.sessions.map((s) => [s.sessionId, s])),
          announced: message.announced,
        });
        if (message.type === 'hello') this.announce('snapshot');
        return;
      case 'upsert':
        this.viewOf(message.from, now).sessions.set(message.session.sessionId, message.session);
        return;
      case 'remove':
        this.viewOf(message.from, now).sessions.delete(message.sessionId);
        return;
      case 'gone':
        this.remote.delete(message.from);
        return;
    }
  }

  private viewOf(instance: string, now: number): RemoteView {
    let view = this.remote.get(instance);
    if (!view) {
      view = { heardAt: now, sessions: new Map(), announced: undefined };
      this.remote.set(instance, view);
    }
    view.heardAt = now;
    return view;
  }

  private async closeAmqp(): Promise<void> {
    const { consumer, publisher, connection } = this;
    this.consumer = undefined;
    this.publisher = undefined;
    this.connection = undefined;
    try {
      await withTimeout(
        (async () => {
          await consumer?.close();
          await publisher?.close();
          // A connection given to us is its owner's to close.
          if (!this.options.connection) await connection?.close();
        })(),
        STOP_TIMEOUT_MS,
        'closing the session directory connection',
      );
    } catch (err: unknown) {
      this.logger.warn({ err }, 'session directory: AMQP close did not finish; closing the socket');
      if (!this.options.connection) connection?.unsafeDestroy();
    }
  }
}

function copySession(info: SessionInfo): SessionInfo {
  return { ...info, subscriptions: info.subscriptions.map((s) => ({ ...s })) };
}
