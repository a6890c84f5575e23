/**
 * The inbox across real restarts of what it depends on (run under `testlock -s`): each test counts
 * what was owed (every push answered 202) and what arrived.
 * - RabbitMQ restarted (`rabbitmqctl stop_app` / `start_app`) with messages pending: pushes while
 *   it is down are stored and answered 202; each device gets every message once it is back, the
 *   unacknowledged ones again with `redelivered: true`.
 * - PostgreSQL restarted (stopped as a crash, `pg_ctl -m immediate`, then started) during a stream
 *   of pushes: pushes meeting the outage answer 503, and every push answered 202 is delivered, once,
 *   in order.
 * Neither restarts a server other tests share: RabbitMQ is the 4.x test node
 * (test/support/ensure-rabbitmq4.cjs; nothing else in the suite uses it at the same time), and
 * PostgreSQL is a server of this test's own (test/support/private-postgres.ts), removed after.
 */
import { expect } from 'chai';
import pg from 'pg';

import { header, type Frame } from '../../../app/stomp/frame';
import {
  bodies,
  connectDevice,
  messages,
  pushDurable,
  pushStored,
  seqs,
  subscribeInbox,
  waitForMessages,
} from '../../support/inbox';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../../support/postgres-databases';
import { PrivatePostgres } from '../../support/private-postgres';
import { RABBIT4 } from '../../support/rabbit-nodes';
import { rabbitmqctl, STOMP_URL, waitForRabbit } from '../../support/rabbitmq';
import { RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

let counter = 0;
const freshUser = (): string => `inbox-r-${process.pid}-${Date.now().toString(36)}-${++counter}`;

/** Bodies of what a device got over all its sessions, in arrival order. */
function gotOver(sessions: RawStompClient[]): string[] {
  return sessions.flatMap((s) => bodies(messages(s)));
}

/**
 * `rabbitmqctl start_app` on the 4.x node until it answers: a start_app right after a stop_app can
 * return 0 and not start the app (see test/integration/cluster/cluster.test.ts), so check and retry.
 */
async function startRabbit4(attempts = 3): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await rabbitmqctl(['start_app'], 60_000, RABBIT4);
    try {
      await waitForRabbit(30_000, RABBIT4);
      return;
    } catch (err: unknown) {
      if (attempt >= attempts) throw err;
    }
  }
}

describe('inbox across a real RabbitMQ restart (the 4.x test node)', function () {
  this.timeout(180_000);
  const clients = new RawClients();
  let database = '';
  let service: RunningService | undefined;

  before(async () => {
    await waitForRabbit(30_000, RABBIT4);
    database = await createTestDatabase();
  });
  after(async () => {
    clients.closeAll();
    await service?.stop();
    if (database) await dropTestDatabase(database);
  });

  it('stores what is pushed while it is down, and delivers all of it, the unacknowledged again', async () => {
    service = await startTestService({
      brokerUrl: RABBIT4.stompUrl,
      brokerReconnectMaxMs: 500,
      inboxDatabaseUrl: testDatabaseUrl(database),
      inboxCatchUpMs: 500,
    });
    const s = service;
    const user = freshUser();
    // phone acknowledges nothing (client-individual): a and b stay pending for it through the
    // restart. tablet takes everything as written (auto).
    const phone = [clients.add(await connectDevice(s, user, 'phone'))];
    await subscribeInbox(phone[0]!);
    const tablet = [clients.add(await connectDevice(s, user, 'tablet'))];
    await subscribeInbox(tablet[0]!, { ack: 'auto' });
    const owed = ['a', 'b'];
    for (const body of owed) await pushStored(s, user, body);
    await waitForMessages(phone[0]!, 2);
    await waitForMessages(tablet[0]!, 2);

    await rabbitmqctl(['stop_app'], 60_000, RABBIT4);
    try {
      await waitFor(() => !s.broker.readiness().ready, 15_000, 'the broker to be down');
      for (const body of ['c', 'd', 'e']) {
        await pushStored(s, user, body); // SPEC: stored and 202 while RabbitMQ is down
        owed.push(body);
      }
    } finally {
      await startRabbit4();
    }
    await waitFor(() => s.broker.readiness().ready, 30_000, 'the broker back');
    await pushStored(s, user, 'f');
    owed.push('f');

    // tablet: a session that outlived the restart gets c..f live (the catch-up); one that was
    // closed is replaced, and its replacement gets what was never written to the old one.
    if (tablet[0]!.closed) {
      tablet.push(clients.add(await connectDevice(s, user, 'tablet')));
      await subscribeInbox(tablet[1]!, { ack: 'auto' });
    }
    await waitFor(() => gotOver(tablet).length >= owed.length, 15_000, 'tablet to have every push');
    // phone: its next session gets all six, the unacknowledged a and b again.
    phone[0]!.close();
    const again = clients.add(await connectDevice(s, user, 'phone'));
    await subscribeInbox(again);
    const redelivered = await waitForMessages(again, owed.length, 15_000);
    await sleep(600); // past another catch-up round: nothing more may come

    expect(gotOver(tablet), 'tablet: every 202 once, in order').to.deep.equal(owed);
    expect(bodies(messages(again)), 'phone: every 202 once, in order').to.deep.equal(owed);
    const flags = (frames: Frame[]): (string | undefined)[] => frames.map((f) => header(f, 'redelivered'));
    expect(flags(redelivered.slice(0, 2)), 'a and b were sent to phone before').to.deep.equal([
      'true',
      'true',
    ]);
    expect(seqs(redelivered)).to.deep.equal(owed.map((_, i) => i + 1));
  });
});

describe('inbox across a real PostgreSQL restart (a server of its own)', function () {
  this.timeout(120_000);
  const clients = new RawClients();
  let server: PrivatePostgres | undefined;
  let service: RunningService | undefined;

  before(async () => {
    server = await PrivatePostgres.start();
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query('CREATE DATABASE inbox');
    await admin.end();
  });
  after(async () => {
    clients.closeAll();
    await service?.stop();
    await server?.remove();
  });

  it('answers 503 while it is down and loses no push answered 202', async () => {
    const db = server!;
    service = await startTestService({
      brokerUrl: STOMP_URL,
      inboxDatabaseUrl: db.url('inbox'),
      inboxConnectTimeoutMs: 300,
      inboxStatementTimeoutMs: 1000,
    });
    const s = service;
    const user = freshUser();
    // A device subscribed throughout, beside the one that subscribes after.
    const live = clients.add(await connectDevice(s, user, 'live'));
    await subscribeInbox(live, { ack: 'auto' });
    const accepted: number[] = [];
    const refused: number[] = [];
    let pushed = 0;
    let stop = false;
    const pushing = (async () => {
      // Bounded: at most 2,000 pushes, and it stops once the restart is over and 20 more are in.
      for (let i = 1; i <= 2000 && !stop; i++) {
        const answer = await pushDurable(s, user, `p${i}`);
        pushed = i;
        if (answer.status === 202) accepted.push(i);
        else if (answer.status === 503) refused.push(i);
        else throw new Error(`push ${i}: unexpected ${answer.status} ${JSON.stringify(answer.body)}`);
        await sleep(5);
      }
    })();
    await waitFor(() => accepted.length >= 20, 10_000, 'pushes before the restart');
    await db.stopServer('immediate');
    // Down until the pushes have met it; started again, until 20 more are stored.
    await waitFor(() => refused.length >= 3, 15_000, 'pushes answered 503 while PostgreSQL is down');
    await db.startServer();
    const before = accepted.length;
    await waitFor(() => accepted.length >= before + 20, 30_000, 'pushes stored after the restart');
    stop = true;
    await pushing;

    const device = clients.add(await connectDevice(s, user, 'after'));
    await subscribeInbox(device, { ack: 'auto' });
    await waitForMessages(device, accepted.length, 15_000);
    await waitFor(
      () => accepted.every((i) => bodies(messages(live)).includes(`p${i}`)),
      15_000,
      'the live device to have every 202',
    );
    await sleep(200);
    // A 503 whose COMMIT reached PostgreSQL as the server went is ambiguous (the caller was told
    // to retry; the row may be kept): such a push may be delivered too, but nothing that was never
    // pushed, and nothing twice.
    for (const [name, client] of [
      ['after', device],
      ['live', live],
    ] as const) {
      const delivered = bodies(messages(client)).map((b) => Number(b.slice(1)));
      expect(
        accepted.filter((i) => !delivered.includes(i)),
        `${name}: accepted and not delivered`,
      ).to.deep.equal([]);
      expect(
        delivered.filter((i) => !accepted.includes(i) && !refused.includes(i)),
        `${name}: delivered and never answered`,
      ).to.deep.equal([]);
      expect(delivered, `${name}: in push order, once each`).to.deep.equal(
        [...new Set(delivered)].sort((a, b) => a - b),
      );
    }
    expect(seqs(messages(device))).to.deep.equal(messages(device).map((_, i) => i + 1));
    expect(refused.length + accepted.length).to.equal(pushed);
  });
});
