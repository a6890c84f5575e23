/**
 * The Broker over RabbitMQ: N instances of the service behave as one.
 *
 * Mapping (names as they appear in the management UI; see amqp-delivery.ts for the topology):
 * - `/topic/<name>`: published over the STOMP pool to amq.topic (the plugin's `/topic/<name>`);
 *   received through the instance's exclusive queue `stomp-relay.<instanceId>.topics`, bound with
 *   routing key <name> while any local subscription holds it, and fanned out locally.
 * - user destinations: published once over AMQP to the `stomp-relay.user` exchange with the user's
 *   key (confirmed, mandatory: `online`); received through `stomp-relay.<instanceId>.users`, bound
 *   per user key while the instance has a session or subscription of that user
 *   (delivery/user-delivery.ts both ways).
 * - `/queue/<name>`: one broker subscription per client subscription on the durable queue
 *   `stomp-relay.queue.<name>` over the STOMP pool (wire.ts), so competing consumers, ack/nack and
 *   prefetch are RabbitMQ's. Every such broker subscription has a finite prefetch-count
 *   (BROKER_PREFETCH at most) and acknowledges to the broker only once the message was handed on.
 * - topic and user subscriptions in a client ack mode are acknowledged locally (delivery/fan-out.ts):
 *   the instance queue is shared by all of them, so the broker cannot keep their acks apart.
 *
 * One AMQP connection (amqp-link.ts) carries the instance queues, user pushes and the session
 * directory; a fixed pool of STOMP connections carries /queue and topic publishes.
 *
 * publish() to a topic resolves on the plugin's RECEIPT (sent once the publish is confirmed); a user
 * push on its AMQP confirm. A `/queue/` publish goes over AMQP, mandatory and confirmed, and every
 * `/queue/` SUBSCRIBE declares its queue over AMQP first (client-queues.ts says why: a queue deleted
 * under the relay must neither swallow confirmed messages nor close a shared connection). commit() runs inside a plugin transaction with a unique name on the
 * connection holding the subscriptions it acknowledges for; acks are only valid on the connection
 * that delivered them. Local acks in it are applied once the broker's part has committed.
 */
import { ServiceError } from '../../errors';
import { type MessageTarget } from '../../destinations/destination';
import { frame } from '../../stomp/frame';
import type {
  BackendMessage,
  Broker,
  BrokerSubscription,
  OutgoingMessage,
  PublishReceipt,
  Readiness,
  SubscribeRequest,
  TransactionOp,
} from '../broker';
import { assertOwnUserTarget } from '../broker';
import { LocalFanOut, type FanOutTarget } from '../../delivery/fan-out';
import { UserDelivery } from '../../delivery/user-delivery';
import type { EmbeddedSubscription } from '../embedded/subscription';
import { AmqpDelivery, CONTENT_TYPE_HEADER, USER_DESTINATION_HEADER } from './amqp-delivery';
import { noTrace, type MessageTracer } from '../../observability/trace';
import { BackendBridge } from '../../messaging/backend-bridge';
import type { BackendServices } from '../../messaging/backend-services';
import { AmqpLink } from './amqp-link';
import { allowedHeaderRecord } from '../../messaging/header-policy';
import { BrokerConsumer, type ConsumerSpec } from './broker-consumer';
import { ClientQueues, clientQueueName } from './client-queues';
import { DeliveryLimit } from './delivery-limit';
import { parseBrokerUrl } from './broker-url';
import { ConnectionPool, type PoolSlot, type RelayLogger } from './connection-pool';
import { AmqpSessionDirectory } from '../../presence/amqp-directory';
import { DirectSubscription } from './relay-subscriptions';
import { declareTopology, EXCHANGES, NAME_PREFIX, userRoutingKey } from './topology';
import {
  brokerDestination,
  clientQueueHeaders,
  propertyHeaders,
  sendHeaders,
  type ClientQueueType,
} from './wire';

export interface RabbitRelayBrokerOptions {
  /** BROKER_URL: comma-separated stomp://user:pass@host:port/vhost failover list. */
  brokerUrl: string;
  /** AMQP_URL: comma-separated failover list for the instance's AMQP connection (exchanges, instance queues, user pushes, directory). */
  amqpUrl: string;
  /** Part of every per-instance queue name; `queue` is refused (it would alias client queues). */
  instanceId: string;
  /** STOMP connections to RabbitMQ (BROKER_POOL_SIZE). */
  poolSize: number;
  /** Heart-beat both ways on broker connections, ms (BROKER_HEARTBEAT_MS); 0 = off. */
  heartbeatMs: number;
  /** Highest prefetch-count of any broker subscription (BROKER_PREFETCH). */
  prefetch: number;
  /** CLIENT_QUEUE_TYPE: what client /queue/<name> queues are declared as; default classic. */
  clientQueueType?: ClientQueueType;
  /** Most deliveries of one /queue/ message (QUEUE_DELIVERY_LIMIT; 0: none; default 20). */
  deliveryLimit?: number;
  /** Longest wait between reconnect attempts (BROKER_RECONNECT_MAX_MS). */
  reconnectMaxMs: number;
  /** Session directory snapshot period (DIRECTORY_ANNOUNCE_MS). */
  announceMs: number;
  /**
   * Most messages one client-ack topic or user subscriber may leave waiting locally; past it that
   * subscriber is cut off with slow_consumer (counted through onOverflow). Default 10,000.
   */
  maxBacklog?: number;
  logger?: RelayLogger;
  /** Called each time a lost broker connection is back (for metrics). */
  onReconnect?: () => void;
  /** A subscriber whose local backlog was full is being cut off. */
  onOverflow?: () => void;
  /** The backend services `/app` messages may go to (BACKENDS_FILE), over the instance's AMQP connection. */
  backends?: BackendServices;
  /** Per-message trace (LOG_LEVEL=trace): what arrived on the instance queues, and for how many. */
  trace?: MessageTracer;
}

const RECONNECT_BASE_MS = 200;
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a user push waits for its confirm before the caller is told the broker did not take it. */
const PUBLISH_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BACKLOG = 10_000;
/** How long stop() lets publishes in flight finish before closing the connections. */
const STOP_GRACE_MS = 5_000;

const silentLogger: RelayLogger = { info() {}, warn() {}, error() {} };

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export class RabbitRelayBroker implements Broker {
  readonly kind = 'rabbitmq';
  readonly sessions: AmqpSessionDirectory;

  private readonly options: RabbitRelayBrokerOptions;
  private readonly logger: RelayLogger;
  private readonly link: AmqpLink;
  private readonly pool: ConnectionPool;
  private readonly amqp: AmqpDelivery;
  private readonly fanOut: LocalFanOut;
  private readonly users: UserDelivery;
  private readonly parking: ConsumerSpec['parking'];
  private readonly bridge: BackendBridge | undefined;
  readonly forwardToBackend?: (message: BackendMessage) => Promise<void>;
  private readonly listeners: ((readiness: Readiness) => void)[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private state: State = 'idle';
  private readonly deliveryLimit: DeliveryLimit;
  private queues: ClientQueues | undefined;
  private lastReady = false;
  private txSeq = 0;

  constructor(options: RabbitRelayBrokerOptions) {
    if (!/^[A-Za-z0-9_\-.]{1,64}$/.test(options.instanceId) || options.instanceId === 'queue') {
      throw new ServiceError(
        'bad_request',
        `instance id '${options.instanceId}' cannot name broker queues: use 1-64 of A-Z a-z 0-9 _ - . (and not 'queue')`,
      );
    }
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new RangeError(`prefetch must be a positive integer, got ${options.prefetch}`);
    }
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    const trace = options.trace ?? noTrace;
    this.link = new AmqpLink({
      url: options.amqpUrl,
      instanceId: options.instanceId,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      reconnectMaxMs: options.reconnectMaxMs,
      logger: this.logger,
    });
    this.pool = new ConnectionPool({
      addresses: parseBrokerUrl(options.brokerUrl),
      size: options.poolSize,
      heartbeatMs: options.heartbeatMs,
      reconnectBaseMs: RECONNECT_BASE_MS,
      reconnectMaxMs: options.reconnectMaxMs,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      logger: this.logger,
      onReconnect: () => options.onReconnect?.(),
      onChange: () => this.readinessChanged(),
    });
    this.fanOut = new LocalFanOut({
      maxBacklog: options.maxBacklog ?? DEFAULT_MAX_BACKLOG,
      onDeliveryError: (err, session) =>
        this.logger.error({ err, session }, 'subscriber failed to take a message'),
      onOverflow: () => options.onOverflow?.(),
    });
    this.amqp = new AmqpDelivery(this.link.connection, {
      instanceId: options.instanceId,
      prefetch: options.prefetch,
      publishTimeoutMs: PUBLISH_TIMEOUT_MS,
      logger: this.logger,
      onTopicMessage: (name, message) => {
        const local = this.fanOut.deliver({ kind: 'topic', name }, message);
        trace('routed', message.id, { topic: name, local });
      },
      onUserMessage: (target, message) => {
        const local = this.users.receive(target, message);
        trace('routed', message.id, {
          user: target.user,
          destination: `${target.type}/${target.name}`,
          local,
        });
      },
      onReadyChange: () => this.readinessChanged(),
    });
    this.users = new UserDelivery(this.amqp, this.fanOut, this.logger);
    // Registered after AmqpDelivery's instance queues: on a new connection they first mark their
    // bindings gone, so readiness is not reported back before the re-binding (on 4.x, where the
    // STOMP pool came back first, it read [false, true, false, true] across one restart).
    this.link.connection.on('connection', () => this.readinessChanged());
    this.link.connection.on('error', () => this.readinessChanged());
    if (options.backends) {
      const bridge = new BackendBridge({
        connection: this.link.connection,
        instanceId: options.instanceId,
        services: options.backends,
        logger: this.logger,
      });
      this.bridge = bridge;
      this.forwardToBackend = (message) => {
        this.assertRunning();
        return this.track(bridge.forward(message));
      };
    }
    this.deliveryLimit = new DeliveryLimit(options.deliveryLimit ?? 20);
    this.parking = {
      destination: `/exchange/amq.direct/${NAME_PREFIX}.parking.${options.instanceId}`,
      queueName: `${NAME_PREFIX}.${options.instanceId}.parking`,
    };
    this.sessions = new AmqpSessionDirectory({
      connection: this.link.connection,
      instanceId: options.instanceId,
      announceMs: options.announceMs,
      logger: options.logger,
      onLocalSession: {
        opened: (user) => this.users.sessionOpened(user),
        closed: (user) => this.users.sessionClosed(user),
      },
    });
  }

  /** STOMP connections currently up (never more than the pool size). */
  get connectionCount(): number {
    return this.pool.upCount;
  }

  /** Keys bound on the instance's users and topics queues right now. */
  get bindingCount(): { users: number; topics: number } {
    return { users: this.amqp.users.bindings.size, topics: this.amqp.topics.bindings.size };
  }

  /** Starts each part in order; a failure stops what had started and rejects with one line. */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`the RabbitMQ relay cannot start: it is ${this.state}`);
    this.state = 'starting';
    const started: (() => Promise<void>)[] = [];
    try {
      await this.link.start();
      started.push(() => this.link.stop());
      await declareTopology(this.link.connection);
      await this.amqp.start();
      started.push(() => this.amqp.stop());
      this.queues = new ClientQueues(this.link.connection, this.options.clientQueueType ?? 'classic');
      started.push(() => this.stopClientQueues());
      await this.pool.start();
      started.push(() => this.pool.stop());
      await this.sessions.start();
      this.bridge?.start();
    } catch (err: unknown) {
      for (const stop of started.reverse()) await stop().catch(() => undefined);
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
    this.logger.info(
      {
        brokers: this.pool.slots.map((s) => s.address.label),
        pool: this.pool.slots.length,
        queues: [this.amqp.users.name, this.amqp.topics.name],
      },
      'RabbitMQ relay started',
    );
    this.readinessChanged();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping' || this.state === 'idle') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
    await Promise.race([Promise.allSettled([...this.inFlight]), grace]);
    await Promise.allSettled([
      this.pool.stop(),
      this.sessions.stop(),
      this.bridge?.stop(),
      this.stopClientQueues(),
    ]);
    this.fanOut.clear();
    await this.amqp.stop();
    await this.link.stop();
    this.state = 'stopped';
    this.readinessChanged();
  }

  readiness(): Readiness {
    if (this.state !== 'running') return { ready: false, reason: `RabbitMQ relay is ${this.state}` };
    const reasons = [this.pool.downReason()];
    if (!this.link.ready) reasons.push(`the AMQP connection to ${this.link.where} is down`);
    else if (!this.amqp.ready) reasons.push('the instance queues are being bound again after a reconnect');
    const reason = reasons.filter((r) => r !== undefined).join('; ');
    return reason === '' ? { ready: true } : { ready: false, reason };
  }

  connections(): { up: number; total: number } {
    return { up: this.pool.upCount, total: this.options.poolSize };
  }

  onReadinessChange(listener: (readiness: Readiness) => void): void {
    this.listeners.push(listener);
  }

  async subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
    this.assertRunning();
    assertOwnUserTarget(request);
    const { target } = request;
    if (target.kind === 'user') return this.users.subscribe({ ...request, target });
    if (target.kind === 'topic') return this.subscribeTopic({ ...request, target });
    const prefetch = Math.min(
      request.prefetch > 0 ? request.prefetch : this.options.prefetch,
      this.options.prefetch,
    );
    const subscription = new DirectSubscription(request, this.logger, this.deliveryLimit);
    const prepare = (): Promise<void> => this.clientQueues().ensure(clientQueueName(target.name));
    // Declared before the SUBSCRIBE reaches the shared connection (client-queues.ts).
    await prepare();
    const slot = this.pool.leastLoaded();
    subscription.consumer = new BrokerConsumer(slot, {
      destination: brokerDestination(target),
      headers: clientQueueHeaders(this.options.clientQueueType ?? 'classic'),
      prefetch,
      ownsQueue: false,
      parking: this.parking,
      onMessage: (message) => subscription.onMessage(message),
      prepare,
      onRefused: (reason) => subscription.ended(reason),
    });
    await slot.subscribe(subscription.consumer);
    return subscription;
  }

  async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    this.assertRunning();
    if (target.kind === 'user') return this.track(this.users.push(target, message));
    if (target.kind === 'queue') {
      const headers = allowedHeaderRecord(Object.entries(message.headers), 'relay');
      const p = message.properties ?? {};
      await this.track(
        this.clientQueues().publish(clientQueueName(target.name), message, headers, {
          priority: p.priority,
          expiration: p.ttlMs === undefined ? undefined : String(p.ttlMs),
          persistent: p.persistent,
          replyTo: p.replyTo,
        }),
      );
      return {};
    }
    const slot = this.pool.anyUp();
    const { destination, headers } = this.route(target, message);
    const send = frame('SEND', { ...headers, destination }, message.body);
    await this.track(
      slot.send(send, { receipt: true }).catch((err: unknown) => {
        throw this.notTaken(destination, err);
      }),
    );
    return {};
  }

  /** Local subscription first, then the binding: nothing routed after this resolves is missed. */
  private async subscribeTopic(
    request: SubscribeRequest & { target: Extract<FanOutTarget, { kind: 'topic' }> },
  ): Promise<BrokerSubscription> {
    const { name } = request.target;
    let held = true;
    const subscription = this.fanOut.subscribe(request, () => {
      if (held) this.amqp.releaseTopic(name);
      held = false;
    });
    try {
      await this.amqp.holdTopic(name);
    } catch (err: unknown) {
      held = false;
      this.amqp.releaseTopic(name);
      await subscription.close();
      throw err;
    }
    return subscription;
  }

  async commit(ops: TransactionOp[]): Promise<void> {
    this.assertRunning();
    if (ops.length === 0) return;
    // Check everything before doing anything: a bad ack id fails the whole transaction.
    const bySlot = new Map<PoolSlot, TransactionOp[]>();
    const local: { subscription: EmbeddedSubscription; op: 'ack' | 'nack'; ackId: string }[] = [];
    for (const op of ops) {
      if (op.op === 'publish') continue;
      if (this.fanOut.owns(op.subscription)) {
        op.subscription.assertOutstanding(op.ackId);
        local.push({ subscription: op.subscription, op: op.op, ackId: op.ackId });
        continue;
      }
      if (!(op.subscription instanceof DirectSubscription)) {
        throw new ServiceError(
          'bad_request',
          `cannot ${op.op} in a transaction: that subscription needs no acknowledgement`,
        );
      }
      op.subscription.tagsFor(op.ackId);
      const slot = op.subscription.consumer.slot;
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), op]);
    }
    const publishes = ops.filter((op) => op.op === 'publish');
    if (publishes.length > 0) {
      const slot = bySlot.keys().next().value ?? this.pool.anyUp();
      bySlot.set(slot, [...publishes, ...(bySlot.get(slot) ?? [])]);
    }
    // One broker transaction per connection involved (usually one); never shared between clients.
    for (const [slot, slotOps] of bySlot) await this.track(this.commitOn(slot, slotOps));
    // Lenient: an earlier cumulative op of this transaction may have covered a later id.
    for (const { subscription, op, ackId } of local) subscription.settle(ackId, op, true);
  }

  private async commitOn(slot: PoolSlot, ops: TransactionOp[]): Promise<void> {
    const transaction = `${this.options.instanceId}-tx-${++this.txSeq}`;
    const generation = slot.generation;
    const sent: Promise<void>[] = [slot.send(frame('BEGIN', { transaction }), { generation })];
    for (const op of ops) {
      if (op.op === 'publish') {
        const { destination, headers } = this.route(op.target, op.message);
        // Checked values only (header-policy.ts), so the plugin cannot refuse them.
        const properties = op.target.kind === 'queue' ? propertyHeaders(op.message.properties) : {};
        const send = frame('SEND', { ...headers, ...properties, destination, transaction }, op.message.body);
        // The plugin answers a transactional SEND's receipt after COMMIT, once confirmed.
        sent.push(slot.send(send, { receipt: true, generation }));
      } else if (op.subscription instanceof DirectSubscription) {
        const tags =
          op.subscription.consumer.tagState(op.ackId) === 'outstanding'
            ? op.subscription.tagsFor(op.ackId)
            : [];
        sent.push(
          op.subscription.consumer.settle(tags, op.op === 'ack' ? 'ACK' : 'NACK', transaction, op.requeue),
        );
      }
    }
    sent.push(slot.send(frame('COMMIT', { transaction }), { receipt: true, generation }));
    try {
      await Promise.all(sent);
    } catch (err: unknown) {
      throw this.notTaken(`transaction ${transaction}`, err);
    }
  }

  /** The STOMP destination and SEND headers of a publish over the pool. */
  private route(
    target: MessageTarget,
    message: OutgoingMessage,
  ): { destination: string; headers: Record<string, string> } {
    if (target.kind === 'queue') {
      // Durable queue: persistent messages survive a broker restart.
      return {
        destination: brokerDestination(target),
        headers: sendHeaders(message, {
          persistent: 'true',
          ...clientQueueHeaders(this.options.clientQueueType ?? 'classic'),
        }),
      };
    }
    // Topic and user messages are read over AMQP (amqp-delivery.ts): the content type travels as a
    // header of ours, so that no AMQP client on the way decodes the body by its content_type.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [name, value] of Object.entries(sendHeaders(message, {}))) {
      if (name.toLowerCase() === 'content-type') headers[CONTENT_TYPE_HEADER] ??= value;
      else headers[name] = value;
    }
    if (target.kind === 'topic') return { destination: brokerDestination(target), headers };
    return {
      destination: `/exchange/${EXCHANGES.user}/${userRoutingKey(target.user)}`,
      headers: {
        ...headers,
        [USER_DESTINATION_HEADER]: `${target.type}/${target.name}`,
      },
    };
  }

  private async stopClientQueues(): Promise<void> {
    const queues = this.queues;
    this.queues = undefined;
    await queues?.close();
  }

  private clientQueues(): ClientQueues {
    if (!this.queues) throw new ServiceError('broker_unavailable', `the RabbitMQ relay is ${this.state}`);
    return this.queues;
  }

  private assertRunning(): void {
    if (this.state !== 'running') {
      throw new ServiceError('broker_unavailable', `the RabbitMQ relay is ${this.state}`);
    }
  }

  private notTaken(what: string, err: unknown): ServiceError {
    if (err instanceof ServiceError && err.code !== 'broker_unavailable') return err;
    const why = err instanceof Error ? err.message : String(err);
    return new ServiceError('broker_unavailable', `the broker did not take ${what}: ${why}`, { cause: err });
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    const forget = (): void => {
      this.inFlight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  private readinessChanged(): void {
    const readiness = this.readiness();
    if (readiness.ready === this.lastReady) return;
    this.lastReady = readiness.ready;
    if (readiness.ready) this.logger.info({}, 'broker relay ready');
    else this.logger.warn({ reason: readiness.reason }, 'broker relay not ready');
    for (const listener of this.listeners) {
      try {
        listener(readiness);
      } catch (err: unknown) {
        this.logger.error({ err }, 'readiness listener failed');
      }
    }
  }
}
