/**
 * The Broker over RabbitMQ's STOMP plugin: N instances of the service behave as one.
 *
 * Mapping (design; names as they appear in the management UI):
 * - `/topic/<name>`, ack auto: all local subscribers share ONE broker subscription to the plugin's
 *   `/topic/<name>` on the auto-delete queue `stomp-relay.<instanceId>.topic.<name>`, fanned out
 *   locally (shared-subscriptions.ts).
 * - `/queue/<name>`: one broker subscription per client subscription on the durable queue
 *   `stomp-relay.queue.<name>` (wire.ts), so competing consumers, ack/nack and prefetch are RabbitMQ's.
 * - user destinations: published once to the `stomp-relay.user` exchange, one shared broker
 *   subscription per user per instance (user-delivery.ts).
 * - topic and user subscriptions in a client ack mode get a private auto-delete queue
 *   (`….<name>~<n>`), so their acks and NACK redeliveries are theirs alone.
 * Every broker subscription has a finite prefetch-count (BROKER_PREFETCH at most) and acknowledges
 * to the broker only once the message was handed on, so a slow instance cannot be made to buffer
 * without bound. The STOMP connections are a fixed pool (connection-pool.ts).
 *
 * publish() to a topic or user resolves on the plugin's RECEIPT, which it sends once the publish is
 * confirmed. A `/queue/` publish goes over AMQP, mandatory and confirmed, and every `/queue/`
 * SUBSCRIBE declares its queue over AMQP first (client-queues.ts says why: a queue deleted under
 * the relay must neither swallow confirmed messages nor close a shared connection).
 * commit() runs inside a plugin transaction with a unique name on the connection holding the
 * subscriptions it acknowledges for; acks are only valid on the connection that delivered them.
 */
import { Connection } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import { type MessageTarget } from '../../destinations/destination';
import { frame } from '../../stomp/frame';
import type {
  Broker,
  BrokerSubscription,
  OutgoingMessage,
  PublishReceipt,
  Readiness,
  SubscribeRequest,
  TransactionOp,
} from '../broker';
import { assertOwnUserTarget } from '../broker';
import { allowedHeaderRecord } from '../../messaging/header-policy';
import { BrokerConsumer, type ConsumerSpec } from './broker-consumer';
import { amqpConnectionTarget, amqpLabel } from './amqp-url';
import { ClientQueues, clientQueueName } from './client-queues';
import { parseBrokerUrl } from './broker-url';
import { ConnectionPool, type PoolSlot, type RelayLogger } from './connection-pool';
import { AmqpSessionDirectory } from './session-directory';
import { SharedSubscriptions } from './shared-subscriptions';
import { DirectSubscription, MemberSubscription } from './relay-subscriptions';
import { declareTopology, instanceQueueName, NAME_PREFIX, QUEUE_ROLES } from './topology';
import { userPublish, userSubscription } from './user-delivery';
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
  /** AMQP_URL: comma-separated failover list, for declaring the exchanges and the session directory. */
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
  /** Longest wait between reconnect attempts (BROKER_RECONNECT_MAX_MS). */
  reconnectMaxMs: number;
  /** Session directory snapshot period (DIRECTORY_ANNOUNCE_MS). */
  announceMs: number;
  logger?: RelayLogger;
  /** Called each time a lost broker connection is back (for metrics). */
  onReconnect?: () => void;
}

const RECONNECT_BASE_MS = 200;
const CONNECT_TIMEOUT_MS = 10_000;
const TOPOLOGY_TIMEOUT_MS = 10_000;
/** How long stop() lets publishes in flight finish before closing the connections. */
const STOP_GRACE_MS = 5_000;

const silentLogger: RelayLogger = { info() {}, warn() {}, error() {} };

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export class RabbitRelayBroker implements Broker {
  readonly kind = 'rabbitmq';
  readonly sessions: AmqpSessionDirectory;

  private readonly options: RabbitRelayBrokerOptions;
  private readonly logger: RelayLogger;
  private readonly pool: ConnectionPool;
  private readonly shared: SharedSubscriptions;
  private readonly parking: ConsumerSpec['parking'];
  private readonly listeners: ((readiness: Readiness) => void)[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private state: State = 'idle';
  private amqp: Connection | undefined;
  private queues: ClientQueues | undefined;
  private lastReady = false;
  private privateSeq = 0;
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
    this.shared = new SharedSubscriptions(this.pool, this.logger);
    this.parking = {
      destination: `/exchange/amq.direct/${NAME_PREFIX}.parking.${options.instanceId}`,
      queueName: `${NAME_PREFIX}.${options.instanceId}.parking`,
    };
    this.sessions = new AmqpSessionDirectory({
      amqpUrl: options.amqpUrl,
      instanceId: options.instanceId,
      announceMs: options.announceMs,
      logger: options.logger,
    });
  }

  /** STOMP connections currently up (never more than the pool size). */
  get connectionCount(): number {
    return this.pool.upCount;
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`the RabbitMQ relay cannot start: it is ${this.state}`);
    this.state = 'starting';
    try {
      await this.declareTopology();
      await this.startClientQueues();
      await this.pool.start();
      try {
        await this.sessions.start();
      } catch (err: unknown) {
        await this.pool.stop();
        throw err;
      }
    } catch (err: unknown) {
      this.state = 'stopped';
      await this.stopClientQueues();
      throw err;
    }
    this.state = 'running';
    this.logger.info(
      { brokers: this.pool.slots.map((s) => s.address.label), pool: this.pool.slots.length },
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
    await Promise.allSettled([this.pool.stop(), this.sessions.stop(), this.stopClientQueues()]);
    this.state = 'stopped';
    this.readinessChanged();
  }

  readiness(): Readiness {
    if (this.state !== 'running') return { ready: false, reason: `RabbitMQ relay is ${this.state}` };
    const reason = this.pool.downReason();
    return reason === undefined ? { ready: true } : { ready: false, reason };
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
    const prefetch = Math.min(
      request.prefetch > 0 ? request.prefetch : this.options.prefetch,
      this.options.prefetch,
    );
    const instanceId = this.options.instanceId;
    if (target.kind !== 'queue' && request.ackMode === 'auto') {
      const route =
        target.kind === 'topic'
          ? {
              key: `topic:${target.name}`,
              destination: brokerDestination(target),
              queueName: instanceQueueName(instanceId, QUEUE_ROLES.topic, target.name),
            }
          : userSubscription(instanceId, target.user);
      const member = new MemberSubscription(request, route.key, this.shared);
      await this.shared.join(
        route.key,
        {
          destination: route.destination,
          headers: { 'x-queue-name': route.queueName },
          prefetch: this.options.prefetch,
          ownsQueue: true,
          parking: this.parking,
        },
        member,
      );
      return member;
    }
    let destination: string;
    let headers: Record<string, string>;
    if (target.kind === 'queue') {
      destination = brokerDestination(target);
      headers = clientQueueHeaders(this.options.clientQueueType ?? 'classic');
    } else {
      const suffix = String(++this.privateSeq);
      const route =
        target.kind === 'topic'
          ? {
              destination: brokerDestination(target),
              queueName: instanceQueueName(instanceId, QUEUE_ROLES.topic, `${target.name}~${suffix}`),
            }
          : userSubscription(instanceId, target.user, suffix);
      destination = route.destination;
      headers = { 'x-queue-name': route.queueName };
    }
    const subscription = new DirectSubscription(request, this.logger);
    const prepare =
      target.kind === 'queue' ? () => this.clientQueues().ensure(clientQueueName(target.name)) : undefined;
    // Declared before the SUBSCRIBE reaches the shared connection (client-queues.ts).
    await prepare?.();
    const slot = this.pool.leastLoaded();
    subscription.consumer = new BrokerConsumer(slot, {
      destination,
      headers,
      prefetch,
      ownsQueue: target.kind !== 'queue',
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
    const { destination, headers } = this.route(target);
    const send = frame('SEND', { ...sendHeaders(message, headers), destination }, message.body);
    await this.track(
      slot.send(send, { receipt: true }).catch((err: unknown) => {
        throw this.notTaken(destination, err);
      }),
    );
    return {};
  }

  async commit(ops: TransactionOp[]): Promise<void> {
    this.assertRunning();
    if (ops.length === 0) return;
    // Check everything before doing anything: a bad ack id fails the whole transaction.
    const bySlot = new Map<PoolSlot, TransactionOp[]>();
    for (const op of ops) {
      if (op.op === 'publish') continue;
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
  }

  private async commitOn(slot: PoolSlot, ops: TransactionOp[]): Promise<void> {
    const transaction = `${this.options.instanceId}-tx-${++this.txSeq}`;
    const generation = slot.generation;
    const sent: Promise<void>[] = [slot.send(frame('BEGIN', { transaction }), { generation })];
    for (const op of ops) {
      if (op.op === 'publish') {
        const { destination, headers } = this.route(op.target);
        // Checked values only (header-policy.ts), so the plugin cannot refuse them.
        const properties = op.target.kind === 'queue' ? propertyHeaders(op.message.properties) : {};
        const send = frame(
          'SEND',
          { ...sendHeaders(op.message, headers), ...properties, destination, transaction },
          op.message.body,
        );
        // The plugin answers a transactional SEND's receipt after COMMIT, once confirmed.
        sent.push(slot.send(send, { receipt: true, generation }));
      } else if (op.subscription instanceof DirectSubscription) {
        const tags =
          op.subscription.consumer.tagState(op.ackId) === 'outstanding'
            ? op.subscription.tagsFor(op.ackId)
            : [];
        sent.push(op.subscription.consumer.settle(tags, op.op === 'ack' ? 'ACK' : 'NACK', transaction));
      }
    }
    sent.push(slot.send(frame('COMMIT', { transaction }), { receipt: true, generation }));
    try {
      await Promise.all(sent);
    } catch (err: unknown) {
      throw this.notTaken(`transaction ${transaction}`, err);
    }
  }

  private route(target: MessageTarget): { destination: string; headers: Record<string, string> } {
    switch (target.kind) {
      case 'topic':
        return { destination: brokerDestination(target), headers: {} };
      case 'queue':
        // Durable queue: persistent messages survive a broker restart.
        return {
          destination: brokerDestination(target),
          headers: { persistent: 'true', ...clientQueueHeaders(this.options.clientQueueType ?? 'classic') },
        };
      case 'user':
        return userPublish(target);
    }
  }

  private async declareTopology(): Promise<void> {
    const connection = new Connection({
      ...amqpConnectionTarget(this.options.amqpUrl),
      connectionName: `stomp-relay ${this.options.instanceId} (topology)`,
    });
    connection.on('error', () => undefined); // reported through onConnect below
    try {
      await connection.onConnect(TOPOLOGY_TIMEOUT_MS);
      await declareTopology(connection);
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ServiceError(
        'broker_unavailable',
        `cannot declare the service's exchanges over AMQP at ${amqpLabel(this.options.amqpUrl)}: ${why}`,
        { cause: err },
      );
    } finally {
      await connection.close().catch(() => undefined);
    }
  }

  /** The AMQP connection for client queues; opened at start, like the topology's. */
  private async startClientQueues(): Promise<void> {
    const connection = new Connection({
      ...amqpConnectionTarget(this.options.amqpUrl),
      connectionName: `stomp-relay ${this.options.instanceId} (queues)`,
      retryLow: RECONNECT_BASE_MS,
      retryHigh: this.options.reconnectMaxMs,
    });
    connection.on('error', (err: unknown) => {
      this.logger.warn({ err }, 'AMQP connection for client queues: error');
    });
    this.amqp = connection;
    try {
      await connection.onConnect(TOPOLOGY_TIMEOUT_MS, true);
    } catch (err: unknown) {
      await this.stopClientQueues();
      const why = err instanceof Error ? err.message : String(err);
      throw new ServiceError(
        'broker_unavailable',
        `cannot open the AMQP connection for client queues at ${amqpLabel(this.options.amqpUrl)}: ${why}`,
        { cause: err },
      );
    }
    this.queues = new ClientQueues(connection, this.options.clientQueueType ?? 'classic');
  }

  private async stopClientQueues(): Promise<void> {
    const [queues, connection] = [this.queues, this.amqp];
    this.queues = undefined;
    this.amqp = undefined;
    await queues?.close();
    // close() of a connection that never connected does not settle (issue 11.6): bounded here.
    if (connection) {
      await Promise.race([
        connection.close().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
      ]);
    }
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
