/**
 * A RabbitMQ virtual host of a test's own, for tests that must see a cluster with nobody else in
 * it: the session directory is one fanout exchange per vhost, so instances of other test runs on
 * the shared node would show up in a cluster-wide view. Made with the management API, guest given
 * full rights on it; `remove()` deletes it with whatever is left in it.
 */
import { LOCAL_RABBIT, type RabbitNode } from './rabbit-nodes';

const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

export interface TestVhost {
  name: string;
  /** BROKER_URL and AMQP_URL for instances on this vhost. */
  stompUrl: string;
  amqpUrl: string;
  remove(): Promise<void>;
}

async function management(node: RabbitNode, method: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${node.managementUrl}${path}`, {
    method,
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  // 404 on DELETE: already gone, which is what was asked.
  if (!res.ok && !(method === 'DELETE' && res.status === 404)) {
    throw new Error(`${method} ${path} on ${node.name}: HTTP ${res.status} ${await res.text()}`);
  }
}

export async function createVhost(name: string, node: RabbitNode = LOCAL_RABBIT): Promise<TestVhost> {
  const path = encodeURIComponent(name);
  await management(node, 'PUT', `/vhosts/${path}`, {});
  try {
    await management(node, 'PUT', `/permissions/${path}/guest`, { configure: '.*', write: '.*', read: '.*' });
  } catch (err: unknown) {
    await management(node, 'DELETE', `/vhosts/${path}`);
    throw err;
  }
  return {
    name,
    stompUrl: `${node.stompUrl}/${path}`,
    amqpUrl: `${node.amqpUrl}/${path}`,
    remove: () => management(node, 'DELETE', `/vhosts/${path}`),
  };
}
