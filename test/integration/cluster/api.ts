/**
 * REST calls against child-process instances (test/support/instances.ts): JSON in and out, with a
 * Bearer token the instance accepts. STOMP clients of those instances are the shared
 * test/support/stomp-clients.ts (an Instance is a StompEndpoint).
 */
import type { Instance } from '../../support/instances';

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** A JSON call with a Bearer token for `user` (scope `push` by default). */
export async function api(
  instance: Instance,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  user = 'backend',
): Promise<HttpAnswer> {
  const res = await fetch(`${instance.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${instance.token(user, 'push')}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

export function pushToUser(
  instance: Instance,
  user: string,
  destination: string,
  body: unknown,
): Promise<HttpAnswer> {
  return api(instance, 'POST', `/api/users/${encodeURIComponent(user)}/messages`, { destination, body });
}

export function publish(instance: Instance, destination: string, body: unknown): Promise<HttpAnswer> {
  return api(instance, 'POST', '/api/messages', { destination, body });
}

export async function readyStatus(instance: Instance): Promise<number> {
  try {
    const res = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}
