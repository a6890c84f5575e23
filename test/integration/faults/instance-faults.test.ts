/**
 * Fault point 6: three instances as child processes on the local RabbitMQ, stompjs clients that
 * reconnect by rotating through the instance URLs, pushes over REST to random instances. kill -9
 * of one instance: its clients reconnect elsewhere and every push accepted after they have is
 * delivered. SIGTERM of another: each of its clients gets an ERROR saying the instance is draining,
 * the process exits 0, and the clients carry on elsewhere with nothing lost.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { cleanUp } from '../../support/cleanup';
import { startCluster, type Cluster } from '../../support/cluster';
import { waitForRabbit } from '../../support/rabbitmq';
import { sleep, waitFor } from '../../support/wait';
import { signToken } from '../../support/instances';
import { ReconnectingStomp } from '../../support/stomp-clients';
import { account, pushTo, type PushRecord } from './push-accounting';

const USERS = 12;

describe('faults: instance failures (three instances)', function () {
  this.timeout(180_000);
  let cluster: Cluster;
  const exits: { source: string; code: number | null; signal: NodeJS.Signals | null }[] = [];
  const clients: ReconnectingStomp[] = [];
  const pushes: PushRecord[] = [];
  let pushing = false;
  let pushLoop: Promise<void> | undefined;

  before(async () => {
    await waitForRabbit();
    cluster = await startCluster({
      instances: 3,
      basePort: 0,
      lbPort: 0,
      instancePrefix: `faults-${randomBytes(2).toString('hex')}-`,
      logLevel: 'warn',
      env: { DIRECTORY_ANNOUNCE_MS: '1000', SHUTDOWN_TIMEOUT_MS: '5000' },
      onExit: (source, code, signal) => exits.push({ source, code, signal }),
    });
    for (let i = 0; i < USERS; i++) {
      const client = new ReconnectingStomp({
        user: `if-${i}`,
        urls: cluster.instanceUrls,
        token: signToken(cluster.secret, `if-${i}`, '', 3600),
        destination: '/user/queue/faults',
        reconnectDelay: 200,
        connectionTimeout: 3000,
      });
      clients.push(client);
      client.start();
    }
    await waitFor(() => clients.every((c) => c.live), 20_000, 'every client to connect and subscribe');
    const token = signToken(cluster.secret, 'backend', 'push', 3600);
    let id = 0;
    pushing = true;
    pushLoop = (async () => {
      while (pushing) {
        const batch = [];
        for (let k = 0; k < 4; k++) {
          const record: PushRecord = {
            id: id++,
            user: `if-${id % USERS}`,
            instanceUrl: cluster.instanceUrls[Math.floor(Math.random() * 3)]!,
            startedAt: Date.now(),
            endedAt: 0,
            status: 0,
          };
          pushes.push(record);
          batch.push(
            pushTo(record.instanceUrl, token, record.user, record.id, 5000).then((status) => {
              record.status = status;
              record.endedAt = Date.now();
            }),
          );
        }
        await Promise.all(batch);
        await sleep(20);
      }
    })();
  });
  // The instances (child processes, each with its queues on RabbitMQ) stop even when the push loop
  // or a client failed.
  after(() =>
    cleanUp(
      async () => {
        pushing = false;
        await pushLoop;
      },
      () => Promise.all(clients.map((c) => c.stop())),
      () => cluster?.stop(),
    ),
  );

  const onInstance = (id: string): ReconnectingStomp[] => clients.filter((c) => c.live?.instance === id);
  /** Every client subscribed again after `since`, on an instance other than `gone`. */
  const resettled = (since: number, gone: string[]): boolean =>
    clients.every((c) => c.live !== undefined && !gone.includes(c.live.instance)) &&
    clients
      .filter((c) => c.connections.some((k) => gone.includes(k.instance)))
      .every((c) => c.live!.subscribedAt > since);

  /**
   * After a grace for the last deliveries: more than 50 pushes were accepted since `settledAt`, each
   * reached every session of its user that was subscribed by then, none twice and none elsewhere.
   */
  async function expectEveryPushSince(settledAt: number, story: string): Promise<void> {
    await sleep(3000);
    // Pushes go on meanwhile: one answered in the last second may not have reached its sessions yet.
    const result = account(pushes, clients, 1000, settledAt, Date.now() - 1000);
    const all = account(pushes, clients, 1000);
    console.log(
      `      ${story}; then ${result.accepted} pushes accepted, ${result.owed} deliveries owed, ` +
        `lost ${result.lost.length}, duplicated ${all.duplicated.length}`,
    );
    expect(result.accepted).to.be.greaterThan(50);
    expect({
      lost: result.lost.slice(0, 10),
      duplicated: all.duplicated,
      misrouted: all.misrouted,
    }).to.deep.equal({ lost: [], duplicated: [], misrouted: [] });
  }

  it('kill -9 of one instance: its clients reconnect elsewhere, every push accepted after that arrives', async () => {
    await sleep(1500);
    const victim = cluster.instances[0]!;
    const moved = onInstance(victim.id);
    expect(moved.length, `clients on ${victim.id}`).to.be.greaterThan(0);
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    await waitFor(
      () => resettled(killedAt, [victim.id]),
      20_000,
      "the killed instance's clients to resubscribe elsewhere",
    );
    const settledAt = Math.max(...clients.map((c) => c.live!.subscribedAt));
    expect(exits.find((e) => e.source === victim.id)?.signal).to.equal('SIGKILL');
    await expectEveryPushSince(
      settledAt,
      `${moved.length} clients moved off ${victim.id} within ${settledAt - killedAt} ms`,
    );
  });

  it('SIGTERM: ERROR "draining" to each client, exit 0, clients carry on elsewhere without loss', async () => {
    const victim = cluster.instances[1]!;
    const moved = onInstance(victim.id);
    expect(moved.length, `clients on ${victim.id}`).to.be.greaterThan(0);
    const errorsBefore = new Map(moved.map((c) => [c, c.errors.length]));
    const termAt = Date.now();
    process.kill(victim.pid, 'SIGTERM');
    await waitFor(() => exits.some((e) => e.source === victim.id), 20_000, `${victim.id} to exit`);
    expect(exits.find((e) => e.source === victim.id)).to.deep.include({ code: 0, signal: null });
    for (const c of moved) {
      const told = c.errors.slice(errorsBefore.get(c));
      expect(
        told.some((m) => /draining/.test(m)),
        `${c.user} was told: ${JSON.stringify(told)}`,
      ).to.equal(true);
    }
    await waitFor(
      () => resettled(termAt, [cluster.instances[0]!.id, victim.id]),
      20_000,
      'the drained clients to resubscribe',
    );
    const settledAt = Math.max(...clients.map((c) => c.live!.subscribedAt));
    await expectEveryPushSince(
      settledAt,
      `${moved.length} clients drained off ${victim.id}, resubscribed within ${settledAt - termAt} ms`,
    );
  });
});
