/**
 * Authorization files for the `authorizationFile` setting, written to temporary directories that
 * a root-level after() hook removes once the run is over.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthorizationRules } from '../../app/destinations/authorization';

const dirs: string[] = [];

/** Writes rules to a temporary file for the `authorizationFile` setting. */
export function authorizationFile(rules: AuthorizationRules): string {
  const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-auth-'));
  dirs.push(dir);
  const file = join(dir, 'authorization.json');
  writeFileSync(file, JSON.stringify(rules));
  return file;
}

/**
 * Subscribe and send on every /topic and /queue, subscribe on /user, send on /app: for tests of
 * queues, acks, transactions and faults rather than of the rules themselves.
 */
export function openAuthorizationFile(): string {
  return authorizationFile({
    subscribe: [
      { destination: '/topic/**', users: '*' },
      { destination: '/queue/**', users: '*' },
      { destination: '/user/**', users: '*' },
      { destination: '/temp-queue/**', users: '*' },
    ],
    send: [
      { destination: '/topic/**', users: '*' },
      { destination: '/queue/**', users: '*' },
      { destination: '/app/**', users: '*' },
      { destination: '/reply-queue/**', users: '*' },
    ],
  });
}

after(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
