/**
 * The REST API as the service runs it: startService()'s own wiring on port 0, with a broker the test
 * may choose (a gated one, one that is stopped or fails). What differs from production is only what
 * a test needs to see or set: the pushes in flight, and the draining state without a real SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import jwt, { type SignOptions } from 'jsonwebtoken';

import type { Settings } from '../../../config/settings';
import type { TokenVerifier } from '../../../app/auth/token-verifier';
import type { Broker, BrokerSubscription, Delivery } from '../../../app/broker/broker';
import type { MessageTarget } from '../../../app/destinations/destination';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import type { Metrics } from '../../../app/observability/metrics';
import type { SessionDirectory } from '../../../app/presence/directory';
import { startService } from '../../../app/server';
import { apiDescriptionOf } from '../../support/api-description';
import { recordDeliveries } from '../../support/broker-harness';
import { testSettings } from '../../support/service';

export interface RestApp {
  url: string;
  settings: Settings;
  broker: Broker;
  /** The presence directory beside it (sessions listed here make their user online). */
  presence: SessionDirectory;
  verifier: TokenVerifier;
  metrics: Metrics;
  /** Set to make the app behave as during a SIGTERM drain (new work refused); cannot be unset. */
  draining: boolean;
  /** Pushes handed to the broker and not yet settled. */
  inFlight: number;
  close(): Promise<void>;
}

export interface RestAppOptions {
  settings?: Partial<Settings>;
  /** Defaults to a fresh EmbeddedBroker. */
  broker?: Broker;
}

export async function startRestApp(options: RestAppOptions = {}): Promise<RestApp> {
  const settings = testSettings({ jwtSecret: randomBytes(32).toString('base64url'), ...options.settings });
  // With BROKER_URL in the settings and no broker given, the service makes its own (RabbitMQ).
  const broker =
    options.broker ??
    (settings.brokerUrl ? undefined : new EmbeddedBroker({ instanceId: settings.instanceId }));
  const service = await startService({ settings, broker });
  return {
    url: service.url,
    settings,
    broker: service.broker,
    presence: service.presence,
    verifier: service.verifier,
    metrics: service.metrics,
    get draining() {
      return service.admission.isDraining();
    },
    set draining(value: boolean) {
      if (!value) throw new Error('a drain cannot be undone');
      service.admission.refuseNewWork();
    },
    get inFlight() {
      return service.admission.inFlightCount;
    },
    close: () => service.stop(),
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

/**
 * One request; `body` is sent as JSON unless it is already a string (sent as-is, as JSON). Every
 * answer is checked against the API description the service serves (GET /api/openapi.json): an
 * undocumented status, header or body shape fails the test that made the call.
 */
export async function call(
  app: Pick<RestApp, 'url'>,
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
  const answer = { status: res.status, headers: res.headers, body };
  (await apiDescriptionOf(app)).check({ method, path }, { ...answer, text });
  return answer;
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
  const { got, subscription } = await recordDeliveries(broker, target, { user, prefetch: 100 });
  return { deliveries: got, subscription };
}
