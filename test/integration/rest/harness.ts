/**
 * The REST routers on a bare express app with a real broker behind them, on port 0. The API and
 * ops routers are what is under test; startService() adds transports and sessions that these
 * tests do not need, and a bare app lets a test choose the broker (a stopped one, one that fails).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt, { type SignOptions } from 'jsonwebtoken';

import type { Settings } from '../../../config/settings';
import { loadConfig } from '../../../app/config';
import { TokenVerifier } from '../../../app/auth/token-verifier';
import type { Broker, BrokerSubscription, Delivery } from '../../../app/broker/broker';
import type { MessageTarget } from '../../../app/destinations/destination';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { Metrics } from '../../../app/observability/metrics';
import { silentLogger } from '../../../app/observability/logger';
import { createApiRouter } from '../../../app/rest/api';
import { createOpsRouter } from '../../../app/rest/ops';

export interface RestApp {
  url: string;
  settings: Settings;
  broker: Broker;
  verifier: TokenVerifier;
  metrics: Metrics;
  /** Set to make the app behave as during a SIGTERM drain. */
  draining: boolean;
  /** Pushes handed to track() and not yet settled. */
  inFlight: number;
  close(): Promise<void>;
}

export interface RestAppOptions {
  settings?: Partial<Settings>;
  /** Defaults to a fresh EmbeddedBroker. */
  broker?: Broker;
}

export async function startRestApp(options: RestAppOptions = {}): Promise<RestApp> {
  const settings = loadConfig({}, { jwtSecret: randomBytes(32).toString('base64url'), ...options.settings });
  const broker = options.broker ?? new EmbeddedBroker({ instanceId: settings.instanceId });
  await broker.start();
  const verifier = new TokenVerifier(settings);
  const metrics = new Metrics({ defaultMetrics: false });
  const state = { draining: false, inFlight: 0 };

  const app = express();
  app.use(
    '/api',
    createApiRouter({
      settings,
      broker,
      verifier,
      metrics,
      logger: silentLogger,
      isDraining: () => state.draining,
      track: async (work) => {
        state.inFlight += 1;
        try {
          return await work;
        } finally {
          state.inFlight -= 1;
        }
      },
    }),
  );
  app.use('/', createOpsRouter({ broker, metrics, isDraining: () => state.draining }));

  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    settings,
    broker,
    verifier,
    metrics,
    get draining() {
      return state.draining;
    },
    set draining(value: boolean) {
      state.draining = value;
    },
    get inFlight() {
      return state.inFlight;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await broker.stop();
    },
  };
}

/** A token the app accepts, for `user` with `scope` (space-separated). */
export function tokenFor(app: RestApp, user: string, scope = '', options: SignOptions = {}): string {
  return jwt.sign({ scope }, app.verifier.key, {
    algorithm: 'HS256',
    subject: user,
    expiresIn: 60,
    ...(app.settings.jwtIssuer ? { issuer: app.settings.jwtIssuer } : {}),
    ...(app.settings.jwtAudience ? { audience: app.settings.jwtAudience } : {}),
    ...options,
  });
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the answer is not JSON. */
  body: unknown;
}

/** One request; `body` is sent as JSON unless it is already a string (sent as-is, as JSON). */
export async function call(
  app: RestApp,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let payload: string | undefined;
  if (options.body !== undefined) {
    payload = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${app.url}${path}`, { method, headers, body: payload });
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body };
}

/** `{"error", "detail"}` of an error answer, checked for shape. */
export function errorOf(answer: ApiAnswer): { error: string; detail: string } {
  const body = answer.body as { error?: unknown; detail?: unknown };
  if (typeof body !== 'object' || typeof body.error !== 'string' || typeof body.detail !== 'string') {
    throw new Error(`not a JSON error answer: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return { error: body.error, detail: body.detail };
}

/** Subscribes like a STOMP session would and records what arrives. */
export async function record(
  broker: Broker,
  user: string,
  target: MessageTarget,
): Promise<{ deliveries: Delivery[]; subscription: BrokerSubscription }> {
  const deliveries: Delivery[] = [];
  const subscription = await broker.subscribe({
    sessionId: `test-${randomBytes(6).toString('hex')}`,
    user,
    target,
    ackMode: 'auto',
    prefetch: 100,
    deliver: (delivery) => deliveries.push(delivery),
  });
  return { deliveries, subscription };
}
