/**
 * The inbox around its dependencies (RabbitMQ and PostgreSQL; run under `testlock -s`):
 * - off (BROKER_URL without INBOX_DATABASE_URL): said in the first log lines, a durable SUBSCRIBE
 *   gets an ERROR, a durable push 503 `inbox_unavailable`, never best effort; the rest works.
 * - PostgreSQL out (a proxy in front of it refuses): durable pushes 503, non-durable ones 202,
 *   /readyz stays ready and names the store; once it answers again, pushes are stored and delivered.
 * - /metrics counts what was stored, delivered and acknowledged, and the backlog by state.
 * - PostgreSQL out for the instance of a subscribed device only (another instance still stores
 *   and publishes): what that instance cannot record as delivered is held back, not written, and
 *   comes once the store answers; the device's next session gets it with `redelivered: true`.
 */
import { expect } from 'chai';

import { header } from '../../../app/stomp/frame';
import { LogCapture, startLoggedService } from '../../support/logs';
import { metricSum, metricValue } from '../../support/metrics';
import {
  bodies,
  connectDevice,
  messages,
  pushDurable,
  pushStored,
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../../support/postgres-databases';
import { STOMP_URL } from '../../support/rabbitmq';
import { RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { TcpProxy } from '../../support/tcp-proxy';
import { sleep, waitFor } from '../../support/wait';
import { call, errorOf } from '../rest/harness';

/** A service on RabbitMQ whose inbox reaches `database` through `proxy` (brought up here), with short store bounds. */
async function serviceBehind(proxy: TcpProxy, database: string): Promise<RunningService> {
  await proxy.up();
  const url = new URL(testDatabaseUrl(database));
  url.port = String(proxy.port);
  return startTestService({
    brokerUrl: STOMP_URL,
    inboxDatabaseUrl: url.toString(),
    inboxConnectTimeoutMs: 500,
    inboxStatementTimeoutMs: 1000,
  });
}

const user = (): string => `inbox-out-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

describe('inbox off: RabbitMQ without INBOX_DATABASE_URL', function () {
  this.timeout(20_000);
  let service: RunningService;
  const logs = new LogCapture();
  const clients = new RawClients();

  before(async () => {
    service = await startLoggedService(logs, { brokerUrl: STOMP_URL });
  });
  after(async () => {
    clients.closeAll();
    await service?.stop();
  });

  it('says so at start, refuses durable SUBSCRIBE and push, and serves everything else', async () => {
    const startLines = logs.entries().slice(0, 6);
    expect(
      startLines.some((e) => e.inbox === 'off' && /INBOX_DATABASE_URL/.test(e.msg ?? '')),
      'logged',
    ).to.equal(true);
    const alice = user();
    const push = await pushDurable(service, alice, 'kept?');
    expect(push.status).to.equal(503);
    expect(errorOf(push).error).to.equal('inbox_unavailable');
    const best = await pushDurable(service, alice, 'best effort', { destination: '/queue/greetings' });
    expect(best.status).to.equal(202);
    const ready = await call(service, 'GET', '/readyz');
    expect(ready.status).to.equal(200);
    expect(ready.body).to.include({ status: 'ready', inbox: 'off' });
    const device = clients.add(await connectDevice(service, alice));
    device.send('SUBSCRIBE', { id: 'i', destination: '/user/queue/inbox' });
    const error = await device.expectErrorAndClose();
    expect(header(error, 'message')).to.contain('INBOX_DATABASE_URL');
  });
});

describe('inbox with PostgreSQL out and back', function () {
  this.timeout(30_000);
  let database = '';
  let service: RunningService;
  const proxy = new TcpProxy('127.0.0.1', 5432);
  const clients = new RawClients();

  before(async () => {
    database = await createTestDatabase();
    service = await serviceBehind(proxy, database);
  });
  after(async () => {
    clients.closeAll();
    await service?.stop();
    await proxy.down();
    if (database) await dropTestDatabase(database);
  });

  it('answers 503 for durable pushes only, names the store in /readyz, and recovers', async () => {
    const alice = user();
    await pushStored(service, alice, 'before');
    await proxy.down();
    const refused = await pushDurable(service, alice, 'during');
    expect(refused.status).to.equal(503);
    expect(errorOf(refused).error).to.equal('inbox_unavailable');
    const best = await pushDurable(service, alice, 'best effort', { destination: '/queue/greetings' });
    expect(best.status, 'non-durable traffic goes on').to.equal(202);
    const ready = await call(service, 'GET', '/readyz');
    expect(ready.status).to.equal(200);
    expect(ready.body).to.include({ inbox: 'unavailable' });
    expect((ready.body as { inboxReason: string }).inboxReason).to.contain('inbox store');

    await proxy.up();
    await waitFor(
      async () => (await pushDurable(service, alice, 'after')).status === 202,
      10_000,
      'store back',
    );
    const device = clients.add(await connectDevice(service, alice));
    await subscribeInbox(device, { ack: 'auto' });
    const got = await waitForMessages(device, 2);
    expect(got.map((f) => f.body.toString())).to.deep.equal(['before', 'after']);
    expect((await call(service, 'GET', '/readyz')).body).to.include({ inbox: 'ready' });

    // /metrics: stored, delivered, acked, latency per operation, and the backlog.
    const url = service.url;
    expect(await metricSum(url, 'stomp_inbox_stored_total')).to.equal(2);
    expect(await metricSum(url, 'stomp_inbox_delivered_total', { source: 'replay' })).to.equal(2);
    await waitFor(async () => (await metricSum(url, 'stomp_inbox_acked_total')) === 2, 3000, 'acks counted');
    expect(
      await metricSum(url, 'stomp_inbox_store_seconds_count', { operation: 'append', outcome: 'error' }),
    ).to.be.at.least(1);
    expect(await metricValue(url, 'stomp_inbox_messages', { state: 'acked' })).to.equal(2);
    expect(messages(device)).to.have.length(2);
  });

  it('refuses a durable SUBSCRIBE with an ERROR while the store is out', async () => {
    const alice = user();
    await proxy.down();
    try {
      const device = clients.add(await connectDevice(service, alice));
      device.send('SUBSCRIBE', { id: 'i', destination: '/user/queue/inbox' });
      const error = await device.expectErrorAndClose(5000);
      expect(header(error, 'message')).to.contain('inbox store');
      const other = clients.add(await connectDevice(service, alice));
      await other.sendWithReceipt('SUBSCRIBE', { id: 'g', destination: '/user/queue/greetings' });
      const push = await call(service, 'POST', `/api/users/${alice}/messages`, {
        token: tokenFor(service, 'backend', 'push'),
        body: { destination: '/queue/greetings', body: 'hi' },
      });
      expect(push.status).to.equal(202);
      await other.waitForFrame('MESSAGE');
    } finally {
      await proxy.up();
    }
  });
});

describe('inbox with PostgreSQL out for the instance of a subscribed device', function () {
  this.timeout(40_000);
  let database = '';
  let behindProxy: RunningService | undefined;
  let direct: RunningService | undefined;
  const proxy = new TcpProxy('127.0.0.1', 5432);
  const clients = new RawClients();

  before(async () => {
    database = await createTestDatabase();
    behindProxy = await serviceBehind(proxy, database);
    direct = await startTestService({ brokerUrl: STOMP_URL, inboxDatabaseUrl: testDatabaseUrl(database) });
  });
  after(async () => {
    clients.closeAll();
    await behindProxy?.stop();
    await direct?.stop();
    await proxy.down();
    if (database) await dropTestDatabase(database);
  });

  it('holds back what it cannot record as delivered, sends it once the store answers, and flags it at the next session', async () => {
    const [a, b] = [behindProxy!, direct!];
    const alice = user();
    const phone = clients.add(await connectDevice(a, alice, 'phone'));
    await subscribeInbox(phone);
    await pushStored(b, alice, 'before');
    const [first] = await waitForMessages(phone, 1);
    await phone.sendWithReceipt('ACK', { id: header(first, 'ack') ?? '' });

    await proxy.down();
    // Stored through the other instance, and live to the phone's, which cannot record them.
    await pushStored(b, alice, 'during 1');
    await pushStored(b, alice, 'during 2');
    await sleep(1500);
    await proxy.up();
    await waitForMessages(phone, 3, 15_000);
    await sleep(500);
    expect(bodies(messages(phone)), 'each once in the session, in order').to.deep.equal([
      'before',
      'during 1',
      'during 2',
    ]);
    expect(messages(phone).map((f) => header(f, 'redelivered'))).to.deep.equal([
      undefined,
      undefined,
      undefined,
    ]);

    // Not acknowledged: the device's next session (on the other instance) gets both, flagged.
    phone.close();
    const again = clients.add(await connectDevice(b, alice, 'phone'));
    await subscribeInbox(again);
    const redelivered = await waitForMessages(again, 2);
    await sleep(200);
    expect(bodies(messages(again))).to.deep.equal(['during 1', 'during 2']);
    expect(redelivered.map((f) => header(f, 'redelivered'))).to.deep.equal(['true', 'true']);
  });
});
