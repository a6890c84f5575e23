/**
 * The inbox store's part of /metrics, on the service's registry (Metrics.registry): store latency
 * per operation, expiries by reason, and the backlog by state. The backlog is a full count over
 * the inbox, so it is taken at most once per `backlogEveryMs` however often Prometheus scrapes;
 * a failed count leaves the last one standing (the latency histogram shows the failure).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

import type { Backlog, InboxStore, MessageState, StoreObserver } from './store';

export interface InboxStoreMetrics {
  /** Pass to the store (SqlStoreOptions.observer). */
  readonly observer: StoreObserver;
  /** Once the store exists: the backlog gauge counts from it. */
  watch(store: InboxStore): void;
}

const STATES: readonly MessageState[] = ['pending', 'acked', 'expired'];

export function inboxStoreMetrics(registry: Registry, backlogEveryMs = 15_000): InboxStoreMetrics {
  const latency = new Histogram({
    name: 'stomp_inbox_store_seconds',
    help: 'Inbox store database rounds by operation and outcome (ok, error)',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const expired = new Counter({
    name: 'stomp_inbox_expired_total',
    help: 'Inbox messages expired, by reason (ttl: INBOX_TTL_S, limit: INBOX_MAX_MESSAGES)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  let store: InboxStore | undefined;
  let last: { at: number; backlog: Backlog } | undefined;
  new Gauge({
    name: 'stomp_inbox_messages',
    help: 'Inbox messages kept, by state (pending, acked, expired: still answering the status call)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      if (!store) return;
      if (!last || Date.now() - last.at >= backlogEveryMs) {
        const backlog = await store.backlog().catch(() => undefined);
        if (backlog) last = { at: Date.now(), backlog };
      }
      if (last) for (const state of STATES) this.set({ state }, last.backlog[state]);
    },
  });
  return {
    observer: {
      operation: (operation, seconds, ok) =>
        latency.observe({ operation, outcome: ok ? 'ok' : 'error' }, seconds),
      expired: (reason, count) => expired.inc({ reason }, count),
    },
    watch(next) {
      store = next;
    },
  };
}
