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
 * One AMQP connection (amqp-link.ts) carries the instance queues and user pushes (and the presence
 * directory, composed beside the broker, rides on it: amqpConnection); a fixed pool of STOMP
 * connections carries /queue subscriptions and topic publishes.
 *
 * publish() to a topic resolves on the plugin's RECEIPT (sent once the publish is confirmed); a user
 * push on its AMQP confirm. A `/queue/` publish goes over AMQP, mandatory and confirmed, and every
 * `/queue/` SUBSCRIBE declares its queue over AMQP first (client-queues.ts says why: a queue deleted
 * under the relay must neither swallow confirmed messages nor close a shared connection), and so
 * do the `/queue/` SENDs of a transaction at COMMIT. commit() is relay-transactions.ts; how the parts are built and wired, relay-parts.ts.
 */
import { ServiceError } from '../../errors';
import { InFlight } from '../../in-flight';
import { type MessageTarget } from '../../destinations/destination';
import { frame } from '../../stomp/frame';
import type {
  BackendMessage,
  Broker,
  BrokerSubscription,
  OutgoingMessage,
  PublishReceipt,
  Readiness,
  ReplyQueues,
  SubscribeRequest,
  TransactionOp,
} from '../broker';
import { assertOwnUserTarget } from '../broker';
import type { FanOutTarget } from '../../delivery/fan-out';
import type { Connection } from 'rabbitmq-client';
import { allowedHeaderRecord } from '../../messaging/header-policy';
import { BrokerConsumer } from './broker-consumer';
import { ClientQueues, clientQueueName } from './client-queues';
import type { RelayLogger } from './connection-pool';
import { notTaken, poolSend } from './pool-send';
import { ReadinessNotifier } from './readiness-notifier';
import { checkRelayOptions, type RabbitRelayBrokerOptions } from './relay-options';
import { relayParts, type RelayParts } from './relay-parts';
import { DirectSubscription } from './relay-subscriptions';
import { RawDestinations } from './raw-destinations';
import { RelayTransactions } from './relay-transactions';
import { declareTopology } from './topology';
import { brokerDestination, clientQueueHeaders, type ClientQueueType } from './wire';

export type { RabbitRelayBrokerOptions } from './relay-options';

/** How long stop() lets publishes in flight finish before closing the connections. */
const STOP_GRACE_MS = 5_000;

const silentLogger: RelayLogger = { info() {}, warn() {}, error() {} };

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export class RabbitRelayBroker implements Broker {
  readonly kind = 'rabbitmq';
  readonly forwardToBackend?: (message: BackendMessage) => Promise<void>;
  /** `/amq/queue/` and `/exchange/`, where the authorization file allows them (raw-destinations.ts). */
  readonly raw: NonNullable<Broker['raw']>;
  /** Temp queues of request/reply (delivery/reply-queues.ts), on the instance's users queue. */
  readonly replies: ReplyQueues;

  private readonly options: RabbitRelayBrokerOptions;
  private readonly queueType: ClientQueueType;
  private readonly logger: RelayLogger;
  private readonly parts: RelayParts;
  private readonly transactions: RelayTransactions;
  private readonly readinessNotifier: ReadinessNotifier;
  private readonly inFlight = new InFlight();
  private state: State = 'idle';
  private queues: ClientQueues | undefined;
  private readonly rawDestinations: RawDestinations;

  constructor(options: RabbitRelayBrokerOptions) {
    checkRelayOptions(options);
    this.options = options;
    this.queueType = options.clientQueueType ?? 'classic';
    this.logger = options.logger ?? silentLogger;
    this.readinessNotifier = new ReadinessNotifier(this.logger);
    this.parts = relayParts(options, this.logger, () => this.readinessChanged());
    this.transactions = new RelayTransactions({
      pool: this.parts.pool,
      fanOut: this.parts.fanOut,
      instanceId: options.instanceId,
      track: (promise) => this.inFlight.track(promise),
      publishToQueue: (target, message) => this.publishToQueue(target, message),
    });
    this.rawDestinations = new RawDestinations({
      connection: this.parts.link.connection,
      pool: this.parts.pool,
      prefetch: options.prefetch,
      parking: this.parts.parking,
      logger: this.logger,
    });
    this.raw = {
      subscribe: (request) => {
        this.assertRunning();
        return this.rawDestinations.subscribe(request);
      },
      publish: (target, message) => {
        this.assertRunning();
        return this.inFlight.track(this.rawDestinations.publish(target, message));
      },
    };
    const replies = this.parts.replies;
    this.replies = {
      open: (deliver) => {
        this.assertRunning();
        return replies.open(deliver);
      },
      reply: (token, message) => {
        this.assertRunning();
        return this.inFlight.track(replies.reply(token, message));
      },
    };
    const bridge = this.parts.bridge;
    if (bridge) {
      this.forwardToBackend = (message) => {
        this.assertRunning();
        return this.inFlight.track(bridge.forward(message));
      };
    }
  }

  /**
   * The instance's one AMQP connection (amqp-link.ts), for the presence directory that rides on it
   * (broker/create-broker.ts); open from start() to stop().
   */
  get amqpConnection(): Connection {
    return this.parts.link.connection;
  }

  localSessionOpened(user: string): void {
    this.parts.users.sessionOpened(user);
  }

  localSessionClosed(user: string): void {
    this.parts.users.sessionClosed(user);
  }

  /** STOMP connections currently up (never more than the pool size). */
  get connectionCount(): number {
    return this.parts.pool.upCount;
  }

  /** Keys bound on the instance's users and topics queues right now. */
  get bindingCount(): { users: number; topics: number } {
    const { amqp } = this.parts;
    return { users: amqp.users.bindings.size, topics: amqp.topics.bindings.size };
  }

  /** Starts each part in order; a failure stops what had started and rejects with one line. */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`the RabbitMQ relay cannot start: it is ${this.state}`);
    this.state = 'starting';
    const { link, amqp, pool, bridge } = this.parts;
    const started: (() => Promise<void>)[] = [];
    try {
      await link.start();
      started.push(() => link.stop());
      await declareTopology(link.connection);
      await amqp.start();
      started.push(() => amqp.stop());
      this.queues = new ClientQueues(link.connection, this.queueType);
      started.push(() => this.stopClientQueues());
      await pool.start();
      started.push(() => pool.stop());
      bridge?.start();
    } catch (err: unknown) {
      for (const stop of started.reverse()) await stop().catch(() => undefined);
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
    this.logger.info(
      {
        brokers: pool.slots.map((s) => s.address.label),
        pool: pool.slots.length,
        queues: [amqp.users.name, amqp.topics.name],
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
    await this.inFlight.settled(STOP_GRACE_MS);
    const { link, amqp, pool, bridge, fanOut } = this.parts;
    await Promise.allSettled([
      pool.stop(),
      bridge?.stop(),
      this.stopClientQueues(),
      this.rawDestinations.close(),
    ]);
    fanOut.clear();
    await amqp.stop();
    await link.stop();
    this.state = 'stopped';
    this.readinessChanged();
  }

  readiness(): Readiness {
    if (this.state !== 'running') return { ready: false, reason: `RabbitMQ relay is ${this.state}` };
    const { link, amqp, pool } = this.parts;
    const reasons = [pool.downReason()];
    if (!link.ready) reasons.push(`the AMQP connection to ${link.where} is down`);
    else if (!amqp.ready) reasons.push('the instance queues are being bound again after a reconnect');
    const reason = reasons.filter((r) => r !== undefined).join('; ');
    return reason === '' ? { ready: true } : { ready: false, reason };
  }

  connections(): { up: number; total: number } {
    return { up: this.parts.pool.upCount, total: this.options.poolSize };
  }

  onReadinessChange(listener: (readiness: Readiness) => void): void {
    this.readinessNotifier.listen(listener);
  }

  async subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
    this.assertRunning();
    assertOwnUserTarget(request);
    const { target } = request;
    if (target.kind === 'user') return this.parts.users.subscribe({ ...request, target });
    if (target.kind === 'topic') return this.subscribeTopic({ ...request, target });
    const prefetch = Math.min(
      request.prefetch > 0 ? request.prefetch : this.options.prefetch,
      this.options.prefetch,
    );
    const subscription = new DirectSubscription(request, this.logger, this.parts.deliveryLimit);
    const prepare = (): Promise<void> => this.clientQueues().ensure(clientQueueName(target.name));
    // Declared before the SUBSCRIBE reaches the shared connection (client-queues.ts).
    await prepare();
    const slot = this.parts.pool.leastLoaded();
    subscription.consumer = new BrokerConsumer(slot, {
      destination: brokerDestination(target),
      headers: clientQueueHeaders(this.queueType),
      prefetch,
      ownsQueue: false,
      parking: this.parts.parking,
      onMessage: (message) => subscription.onMessage(message),
      prepare,
      onRefused: (reason) => subscription.ended(reason),
    });
    await slot.subscribe(subscription.consumer);
    return subscription;
  }

  async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    this.assertRunning();
    if (target.kind === 'user') return this.inFlight.track(this.parts.users.push(target, message));
    if (target.kind === 'queue') {
      await this.inFlight.track(this.publishToQueue(target, message));
      return {};
    }
    const slot = this.parts.pool.anyUp();
    const { destination, headers } = poolSend(target, message);
    const send = frame('SEND', { ...headers, destination }, message.body);
    await this.inFlight.track(
      slot.send(send, { receipt: true }).catch((err: unknown) => {
        throw notTaken(destination, err);
      }),
    );
    return {};
  }

  async commit(ops: TransactionOp[]): Promise<void> {
    this.assertRunning();
    await this.transactions.commit(ops);
  }

  /** Over AMQP, mandatory and confirmed: resolves once the message is in the queue (client-queues.ts). */
  private publishToQueue(
    target: Extract<MessageTarget, { kind: 'queue' }>,
    message: OutgoingMessage,
  ): Promise<void> {
    const headers = allowedHeaderRecord(Object.entries(message.headers), 'relay');
    const p = message.properties ?? {};
    return this.clientQueues().publish(clientQueueName(target.name), message, headers, {
      priority: p.priority,
      expiration: p.ttlMs === undefined ? undefined : String(p.ttlMs),
      persistent: p.persistent,
      replyTo: p.replyTo,
    });
  }

  /** Local subscription first, then the binding: nothing routed after this resolves is missed. */
  private async subscribeTopic(
    request: SubscribeRequest & { target: Extract<FanOutTarget, { kind: 'topic' }> },
  ): Promise<BrokerSubscription> {
    const { name } = request.target;
    const { amqp, fanOut } = this.parts;
    let held = true;
    const subscription = fanOut.subscribe(request, () => {
      if (held) amqp.releaseTopic(name);
      held = false;
    });
    try {
      await amqp.holdTopic(name);
    } catch (err: unknown) {
      held = false;
      amqp.releaseTopic(name);
      await subscription.close();
      throw err;
    }
    return subscription;
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

  private readinessChanged(): void {
    this.readinessNotifier.update(this.readiness());
  }
}
