/**
 * Small helpers shared by the session tests: pushes straight to the broker. Authorization files and
 * /metrics reads are in test/support/authorization.ts and test/support/metrics.ts.
 */
import { randomUUID } from 'node:crypto';
import type { MessageTarget } from '../../../app/destinations/destination';
import type { RunningService } from '../../support/service';

/** What a backend push does, minus HTTP: straight to the broker the service uses. */
export async function publish(
  service: RunningService,
  target: MessageTarget,
  body: string | Buffer,
  headers: Record<string, string> = {},
): Promise<void> {
  await service.broker.publish(target, {
    id: randomUUID(),
    headers,
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  });
}

export function userQueue(user: string, name: string): MessageTarget {
  return { kind: 'user', user, type: 'queue', name };
}
