/**
 * The inbox's figures (issue 13), one service in this process relaying to the local RabbitMQ with
 * the local PostgreSQL (a fresh database, dropped after):
 * - REST pushes/s, durable beside non-durable, single calls (64 in flight) and durable batches;
 * - p50/p99 live delivery latency of durable pushes at 500/s to one subscribed device;
 * - time to replay 1,000 pending messages on SUBSCRIBE.
 *
 *   testlock -x npx tsx test/bench/inbox-service.ts [--smoke]
 *   testlock -x npm run bench -- --only inbox     (this and the store's figures, into RESULTS.md)
 *
 * The last line printed is the figures as one JSON object (scenarios/inbox-service.ts reads it).
 * Every loop is bounded in count. Latency: the pusher writes performance.now() into the body; the
 * device (same process, same clock) subtracts it on arrival.
 */
import { header } from '../../app/stomp/frame';
import { connectDevice, subscribeInbox, waitForMessages } from '../support/inbox';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../support/postgres-databases';
import { STOMP_URL } from '../support/rabbitmq';
import { startTestService, tokenFor, type RunningService } from '../support/service';

const smoke = process.argv.includes('--smoke');
const SINGLE = smoke ? 300 : 4000;
const IN_FLIGHT = 64;
const BATCHES = smoke ? 2 : 10;
const BATCH_SIZE = 1000;
const RATE = 500;
const LATENCY_S = smoke ? 1 : 6;
const REPLAY = 1000;

async function post(service: RunningService, token: string, path: string, body: unknown): Promise<number> {
  const res = await fetch(`${service.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `count` calls of `call(i)`, `inFlight` at a time; calls per second. */
async function rate(count: number, inFlight: number, call: (i: number) => Promise<number>): Promise<number> {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const status = await call(next++);
        if (status !== 202 && status !== 200) failed++;
      }
    }),
  );
  if (failed > 0) throw new Error(`${failed} of ${count} calls failed`);
  return count / ((performance.now() - started) / 1000);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const database = await createTestDatabase();
  const service = await startTestService({
    brokerUrl: STOMP_URL,
    inboxDatabaseUrl: testDatabaseUrl(database),
    restMaxPushesInFlight: 1000,
  });
  const token = tokenFor(service, 'bench', 'push');
  const run = `b${Date.now().toString(36)}`;
  const figures: Record<string, number> = new Proxy({} as Record<string, number>, {
    // Each figure is written as it is measured: a later part failing keeps the earlier ones.
    set(target, name, value: number) {
      target[String(name)] = value;
      process.stdout.write(`${String(name)}: ${Math.round(value * 10) / 10}\n`);
      return true;
    },
  });
  try {
    const user = (i: number): string => `${run}-u${i % 200}`;
    // Warm-up: connections, JIT, the schema.
    await rate(200, IN_FLIGHT, (i) =>
      post(service, token, `/api/users/${user(i)}/messages`, { destination: '/queue/inbox', body: 'w' }),
    );
    figures.nonDurablePerS = await rate(SINGLE, IN_FLIGHT, (i) =>
      post(service, token, `/api/users/${user(i)}/messages`, { destination: '/queue/bench', body: 'x' }),
    );
    figures.durablePerS = await rate(SINGLE, IN_FLIGHT, (i) =>
      post(service, token, `/api/users/${user(i)}/messages`, { destination: '/queue/inbox', body: 'x' }),
    );
    const batch = Array.from({ length: BATCH_SIZE }, (_, i) => ({
      user: user(i),
      destination: '/queue/inbox',
      body: 'x',
    }));
    const batchCalls = await rate(BATCHES, 2, () =>
      post(service, token, '/api/messages/batch', { messages: batch }),
    );
    figures.durableBatchPerS = batchCalls * BATCH_SIZE;

    // Live latency at RATE/s to one subscribed device.
    const live = `${run}-live`;
    const latencies: number[] = [];
    const device = await connectDevice(service, live, 'bench', {
      onFrame: (f) => {
        if (f.command === 'MESSAGE') latencies.push(performance.now() - Number(f.body.toString()));
      },
    });
    await subscribeInbox(device, { ack: 'auto' });
    const total = RATE * LATENCY_S;
    const sends: Promise<number>[] = [];
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sends.push(
        post(service, token, `/api/users/${live}/messages`, {
          destination: '/queue/inbox',
          body: String(performance.now()),
        }),
      );
    }
    await Promise.all(sends);
    const got = await waitForMessages(device, total, 30_000);
    device.close();
    const sorted = [...latencies].sort((a, b) => a - b);
    figures.liveP50Ms = percentile(sorted, 50);
    figures.liveP99Ms = percentile(sorted, 99);
    figures.liveMessages = got.length;
    const seqs = got.map((f) => Number(header(f, 'inbox-seq')));
    figures.liveInOrder = seqs.every((s, i) => i === 0 || s > seqs[i - 1]) ? 1 : 0;

    // Replay: 1,000 pending, then SUBSCRIBE.
    const replayUser = `${run}-replay`;
    const items = Array.from({ length: REPLAY }, (_, i) => ({
      user: replayUser,
      destination: '/queue/inbox',
      body: `r${i}`,
    }));
    await post(service, token, '/api/messages/batch', { messages: items });
    const reader = await connectDevice(service, replayUser, 'bench');
    const t0 = performance.now();
    reader.send('SUBSCRIBE', { id: 'r', destination: '/user/queue/inbox', ack: 'auto' });
    await waitForMessages(reader, REPLAY, 30_000);
    figures.replay1000Ms = performance.now() - t0;
    reader.close();
    const rounded = Object.fromEntries(
      Object.entries(figures).map(([name, value]) => [name, Math.round(value * 10) / 10]),
    );
    process.stdout.write(`${JSON.stringify(rounded)}\n`);
  } finally {
    await service.stop();
    await dropTestDatabase(database);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `inbox bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
