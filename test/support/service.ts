/** Starts real service instances in this process for tests: port 0, silent logs, a known secret. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Settings } from '../../config/settings';
import type { MessageTarget } from '../../app/destinations/destination';
import { loadConfig } from '../../app/config';
import { startService, type RunningService } from '../../app/server';

export type { RunningService };

export const TEST_SECRET = randomBytes(32).toString('base64url');

export function testSettings(overrides: Partial<Settings> = {}): Settings {
  return loadConfig(
    {},
    {
      port: 0,
      host: '127.0.0.1',
      nodeEnv: 'development',
      logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
      jwtSecret: TEST_SECRET,
      instanceId: `test-${randomBytes(3).toString('hex')}`,
      ...overrides,
    },
  );
}

export async function startTestService(overrides: Partial<Settings> = {}): Promise<RunningService> {
  return startService({ settings: testSettings(overrides) });
}

/** A token the service accepts, for `user`, with `scope` (space-separated) when given. */
export function tokenFor(service: RunningService, user: string, scope = '', ttlSeconds = 600): string {
  return service.verifier.issue(user, scope, ttlSeconds, {
    issuer: service.settings.jwtIssuer,
    audience: service.settings.jwtAudience,
  });
}

/** What a backend push does, minus HTTP: straight to the broker the service uses. */
export async function publishDirect(
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
