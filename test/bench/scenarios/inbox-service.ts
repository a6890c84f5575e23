/**
 * The inbox through the service (issue 13's figures): test/bench/inbox-service.ts in a child
 * process (one service relaying to the local RabbitMQ with the local PostgreSQL, a database of its
 * own, dropped after). Durable and non-durable REST pushes are measured in the same run, one after
 * the other on the same service, so their ratio is not skewed by a change of load between runs.
 */
import { runJsonChild } from './json-child';

export interface InboxServiceResult {
  /** Single REST pushes/s, 64 in flight, to a non-durable user destination (/queue/bench). */
  nonDurablePerS: number;
  /** The same, to the durable /queue/inbox: each answered only once committed. */
  durablePerS: number;
  /** Durable pushes/s in POST /api/messages/batch calls of 1,000 items, 2 calls in flight. */
  durableBatchPerS: number;
  /** Live delivery latency of durable pushes at 500/s to one subscribed device. */
  liveP50Ms: number;
  liveP99Ms: number;
  liveMessages: number;
  /** 1 when every live message came in inbox-seq order. */
  liveInOrder: number;
  /** From SUBSCRIBE to the 1,000th of 1,000 pending messages (ack auto). */
  replay1000Ms: number;
}

const TIMEOUT_MS = 300_000;

export function runInboxService(root: string, smoke: boolean): Promise<InboxServiceResult> {
  return runJsonChild<InboxServiceResult>(root, 'inbox-service.ts', smoke ? ['--smoke'] : [], TIMEOUT_MS);
}
