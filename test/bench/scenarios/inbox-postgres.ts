/**
 * The inbox store on the local PostgreSQL, as the sizing table needs it: appends (durable pushes)
 * and acks per second, single and grouped, and the replay of 1,000 pending messages. The figures are
 * test/bench/inbox-store.ts's (one engine per process, its own database, dropped after); this runs it
 * for the `postgres` engine in a child process and keeps its JSON line.
 */
import { runJsonChild } from './json-child';

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
  return runJsonChild<InboxPostgresResult>(root, 'inbox-store.ts', ['postgres'], TIMEOUT_MS);
}
