/** Small helpers shared by the session tests: authorization files, /metrics reads, pushes. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthorizationRules } from '../../../app/destinations/authorization';
import type { MessageTarget } from '../../../app/destinations/destination';
import type { RunningService } from '../../support/service';

const dirs: string[] = [];

/** Writes rules to a temporary file for the `authorizationFile` setting. */
export function authorizationFile(rules: AuthorizationRules): string {
  const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-auth-'));
  dirs.push(dir);
  const file = join(dir, 'authorization.json');
  writeFileSync(file, JSON.stringify(rules));
  return file;
}

/** Default rules plus subscribe and send on every /topic and /queue: for queue, ack and transaction tests. */
export function openAuthorizationFile(): string {
  return authorizationFile({
    subscribe: [
      { destination: '/topic/**', users: '*' },
      { destination: '/queue/**', users: '*' },
      { destination: '/user/**', users: '*' },
    ],
    send: [
      { destination: '/topic/**', users: '*' },
      { destination: '/queue/**', users: '*' },
      { destination: '/app/**', users: '*' },
    ],
  });
}

after(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The value of one sample in the service's /metrics text, 0 when absent. */
export async function metricValue(
  service: RunningService,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const wanted = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (wanted) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

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
