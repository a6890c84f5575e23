/**
 * The instance's one AMQP connection to RabbitMQ (rabbitmq-client). Everything AMQP does better
 * than STOMP rides on it: the exchanges' declaration, the instance's exclusive queues and their
 * bindings (exclusive queues can only be used by the connection that declared them, so it has to be
 * one connection), user pushes with confirms and `mandatory`, the session directory, the backend
 * bridge. One connection, so one place that reconnects and one name in the management UI.
 *
 * Start-up is bounded and says why it failed: rabbitmq-client retries every failure forever, and
 * a refused login or a missing vhost never comes right by waiting, so those end start() at once
 * with the broker's own words; an unreachable port is retried until the bound.
 */
import { Connection } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import { withTimeout } from '../../timeout';
import { amqpConnectionTarget, amqpLabel } from './amqp-url';
import type { RelayLogger } from './connection-pool';
import { shapeReadMessages } from './message-shape';

export interface AmqpLinkOptions {
  /** AMQP_URL: amqp://user:pass@host:port/vhost, or a comma-separated failover list of them; never logged. */
  url: string;
  instanceId: string;
  /** How long start() waits for the first connection. */
  connectTimeoutMs: number;
  /** Longest wait between reconnect attempts once running. */
  reconnectMaxMs: number;
  logger: RelayLogger;
}

/** How long stop() gives an orderly close before cutting the socket. */
const CLOSE_TIMEOUT_MS = 3_000;

/** AMQP errors that waiting cannot cure: start() fails on the first one. */
const PERMANENT = new Set(['ACCESS_REFUSED', 'NOT_ALLOWED', 'INVALID_PATH', 'NOT_FOUND']);

function describe(err: unknown): { code: string | undefined; text: string } {
  if (!(err instanceof Error)) return { code: undefined, text: String(err) };
  const code = (err as { code?: unknown }).code;
  // rabbitmq-client prefixes the method (`ConnectionOpen: NOT_ALLOWED - ...`); the rest is RabbitMQ's.
  const text = err.message.replace(/^(undefined|[A-Za-z]+): /, '');
  return { code: typeof code === 'string' ? code : undefined, text };
}

export class AmqpLink {
  readonly connection: Connection;
  /** The broker's address without credentials, for messages. */
  readonly where: string;
  private lastError: string | undefined;
  private stopped = false;

  constructor(private readonly options: AmqpLinkOptions) {
    this.where = amqpLabel(options.url);
    shapeReadMessages();
    this.connection = new Connection({
      ...amqpConnectionTarget(options.url),
      connectionName: `stomp-relay ${options.instanceId}`,
      retryLow: 200,
      retryHigh: options.reconnectMaxMs,
      // Nagle would hold a confirm-awaited publish behind the previous one's TCP ACK (up to 40 ms).
      noDelay: true,
    });
    this.connection.on('error', (err: unknown) => {
      this.lastError = describe(err).text;
      if (!this.stopped) options.logger.warn({ err }, 'AMQP connection error');
    });
  }

  get ready(): boolean {
    return this.connection.ready;
  }

  /** Resolves once connected; rejects with one line naming the broker and RabbitMQ's reason. */
  async start(): Promise<void> {
    let onError: ((err: unknown) => void) | undefined;
    const permanent = new Promise<never>((_, reject) => {
      onError = (err: unknown) => {
        const { code, text } = describe(err);
        if (code !== undefined && PERMANENT.has(code)) reject(new Error(text));
      };
      this.connection.on('error', onError);
    });
    try {
      await Promise.race([this.connection.onConnect(this.options.connectTimeoutMs), permanent]);
    } catch (err: unknown) {
      const why =
        err instanceof Error && !err.message.includes('failed to connect in time')
          ? err.message
          : `no connection within ${this.options.connectTimeoutMs} ms (${this.lastError ?? 'no answer'})`;
      await this.stop();
      throw new ServiceError('broker_unavailable', `RabbitMQ AMQP at ${this.where}: ${why}`, { cause: err });
    } finally {
      if (onError) this.connection.off('error', onError);
    }
  }

  /** Closes in order if it can, else cuts the socket: never waits past CLOSE_TIMEOUT_MS. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.connection.ready) {
      // Not connected (never was, or between attempts): close() would wait for a connection.
      this.connection.unsafeDestroy();
      return;
    }
    try {
      await withTimeout(this.connection.close(), CLOSE_TIMEOUT_MS, 'closing the AMQP connection');
    } catch {
      this.connection.unsafeDestroy();
    }
  }
}
