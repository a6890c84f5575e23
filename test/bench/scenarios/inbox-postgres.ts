/**
 * The inbox store on the local PostgreSQL, as the sizing table needs it: appends (durable pushes)
 * and acks per second, single and grouped, and the replay of 1,000 pending messages. The figures are
 * test/bench/inbox-store.ts's (one engine per process, its own database, dropped after); this runs it
 * for the `postgres` engine in a child process and keeps its JSON line.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export interface InboxPostgresResult {
  engine: string;
  startupMs: number;
  appendsPerSecondOneCaller: number;
  appendsPerSecondConcurrent: number;
  appendsPerSecondBatched1000: number;
  replay1000MsMedian: number;
  replay1000MsMax: number;
  acksPerSecondConcurrentSingles: number;
  acksPerSecondBatched1000: number;
}

const TIMEOUT_MS = 300_000;

export function runInboxPostgres(root: string): Promise<InboxPostgresResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(root, 'test/bench/inbox-store.ts'), 'postgres'],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code ?? signal}`);
        resolve(JSON.parse(line) as InboxPostgresResult);
      } catch (e: unknown) {
        reject(
          new Error(
            `inbox-store.ts postgres: ${e instanceof Error ? e.message : String(e)} ${err.slice(-300)}`,
          ),
        );
      }
    });
  });
}
