import { expect } from 'chai';
import { Registry } from 'prom-client';

import { MemoryInboxStore } from '../../../app/inbox/memory-store';
import { inboxStoreMetrics } from '../../../app/inbox/metrics';

describe('inbox store metrics', () => {
  it('shows store latency by operation, expiries by reason and the backlog by state', async () => {
    const registry = new Registry();
    const metrics = inboxStoreMetrics(registry, 0);
    let now = Date.UTC(2030, 0, 1);
    const store = new MemoryInboxStore({
      limits: { maxMessages: 2, ttlS: 60 },
      observer: metrics.observer,
      clock: () => now,
    });
    metrics.watch(store);
    const body = Buffer.from('x');
    await store.append(
      ['m1', 'm2', 'm3'].map((id) => ({
        user: 'alice',
        id,
        destination: '/user/queue/inbox',
        headers: {},
        body,
      })),
    );
    metrics.observer.operation('append', 0.002, true);
    now += 60_000;
    await store.expire();
    const text = await registry.metrics();
    expect(text).to.match(/stomp_inbox_store_seconds_count\{operation="append",outcome="ok"\} 1/);
    expect(text).to.match(/stomp_inbox_expired_total\{reason="limit"\} 1/);
    expect(text).to.match(/stomp_inbox_expired_total\{reason="ttl"\} 2/);
    // m1 expired by the limit 60 s ago: its status time is over and the sweep deleted it.
    expect(text).to.match(/stomp_inbox_messages\{state="expired"\} 2/);
    expect(text).to.match(/stomp_inbox_messages\{state="pending"\} 0/);
  });
});
