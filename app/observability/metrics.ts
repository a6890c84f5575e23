/**
 * The service's Prometheus metrics, each created once here so that names and labels stay consistent
 * between the session, the REST API and the broker side. A fresh Registry per service instance keeps
 * tests that start several services in one process from colliding.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * How often the event-loop delay is sampled (prom-client's default, made explicit). Node's
 * monitorEventLoopDelay records the whole interval between two samples, so every
 * `nodejs_eventloop_lag_*` figure is this plus the delay: an idle loop reads about 10 ms.
 */
export const EVENT_LOOP_SAMPLE_MS = 10;

export class Metrics {
  readonly registry = new Registry();

  readonly sessions = new Gauge({
    name: 'stomp_sessions',
    help: 'Connected STOMP sessions by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly subscriptions = new Gauge({
    name: 'stomp_subscriptions',
    help: 'Active client subscriptions',
    registers: [this.registry],
  });
  /**
   * MESSAGE frames and bytes written to clients, as plain numbers: a fan-out counts both for every
   * subscriber of every message, and a labelled inc() hashes and checks its labels each time. They
   * are added to the counters below whenever those are read (/metrics).
   */
  private messagesOut = 0;
  private bytesOut = 0;
  readonly frames = new Counter({
    name: 'stomp_frames_total',
    help: 'STOMP frames by direction (in = from clients) and command',
    labelNames: ['direction', 'command'] as const,
    registers: [this.registry],
    collect: () => {
      if (this.messagesOut === 0) return;
      this.frames.inc({ direction: 'out', command: 'MESSAGE' }, this.messagesOut);
      this.messagesOut = 0;
    },
  });
  readonly bytes = new Counter({
    name: 'stomp_bytes_total',
    help: 'Bytes received from and sent to clients',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: () => {
      if (this.bytesOut === 0) return;
      this.bytes.inc({ direction: 'out' }, this.bytesOut);
      this.bytesOut = 0;
    },
  });
  readonly pushes = new Counter({
    name: 'stomp_pushes_total',
    help: 'REST pushes and publishes by kind (user, destination) and outcome (accepted, rejected, unavailable)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly pushesOffline = new Counter({
    name: 'stomp_user_pushes_offline_total',
    help: 'User pushes the broker took while no instance held a live session of the user (202 with "online": false)',
    registers: [this.registry],
  });
  readonly repliesDropped = new Counter({
    name: 'stomp_replies_dropped_total',
    help: 'Replies to a temp queue (/reply-queue/<token>) whose session had gone: dropped',
    registers: [this.registry],
  });
  readonly brokerReconnects = new Counter({
    name: 'stomp_broker_reconnects_total',
    help: 'Broker connections re-established after a loss',
    registers: [this.registry],
  });
  readonly brokerUp = new Gauge({
    name: 'stomp_broker_up',
    help: '1 while the broker connection is up',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'stomp_errors_total',
    help: 'Errors reported to clients, by kind (the error code)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly limitsHit = new Counter({
    name: 'stomp_limits_hit_total',
    help: 'Requests refused because a configured limit was reached, by limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly flowPauses = new Counter({
    name: 'stomp_flow_pauses_total',
    help: 'Times a session stopped reading from its client because its frames were waiting on the broker (MAX_FRAMES_IN_FLIGHT / MAX_BYTES_IN_FLIGHT), by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly flowPaused = new Gauge({
    name: 'stomp_flow_paused_sessions',
    help: 'Sessions not reading from their client right now (flow control), by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly restPushesInFlight = new Gauge({
    name: 'stomp_rest_pushes_in_flight',
    help: 'REST pushes handed to the broker and not yet taken (bounded by REST_MAX_PUSHES_IN_FLIGHT)',
    registers: [this.registry],
  });
  readonly sockjsRefused = new Counter({
    name: 'stomp_sockjs_messages_refused_total',
    help: 'SockJS messages refused before they became STOMP (not a JSON array of strings), by sub-transport and reason',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });
  readonly headersDropped = new Counter({
    name: 'stomp_message_headers_dropped_total',
    help: "Message headers left off a subscriber's MESSAGE because its STOMP version cannot carry their value (a line break for 1.0, a CR for 1.0 and 1.1)",
    labelNames: ['version'] as const,
    registers: [this.registry],
  });
  readonly publishLatency = new Histogram({
    name: 'stomp_publish_latency_seconds',
    help: 'Time from accepting a message (REST or SEND) until the broker has taken it',
    labelNames: ['source'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  /** One MESSAGE frame written to a client (stomp_frames_total{direction="out",command="MESSAGE"}). */
  countMessageOut(): void {
    this.messagesOut += 1;
  }

  /** `bytes` written to a client (stomp_bytes_total{direction="out"}). */
  countBytesOut(bytes: number): void {
    this.bytesOut += bytes;
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    }
  }
}
