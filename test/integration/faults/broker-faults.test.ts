/**
 * Fault point 5, against the local RabbitMQ: the broker stopped under load (`rabbitmqctl stop_app`,
 * BROKER_OUTAGE_MS long: 10 s in npm test, the soak's `--outage` 30 s) and the instance's broker
 * sockets cut mid-frame (`ss -K`). Throughout, clients stay connected; a push answers 202 only for
 * a message that then arrives (every session of the user, exactly once) and 503 while the broker is
 * away; once the broker is back, pushes arrive again without any client reconnecting.
 */
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { rabbitmqctl, STOMP_URL, waitForRabbit } from '../../support/rabbitmq';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';
import { pushToUser } from './harness';

const OUTAGE_MS = Number(process.env.BROKER_OUTAGE_MS ?? 10_000);
const USERS = 4;

interface Push {
  seq: number;
  user: string;
  startedAt: number;
  endedAt: number;
  status: number;
}

/** Pushes round-robin to the users every `everyMs`, recording every answer. */
class Pusher {
  readonly pushes: Push[] = [];
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(
    service: RunningService,
    users: string[],
    everyMs: number,
    body: (seq: number) => unknown = (seq) => seq,
  ) {
    const token = tokenFor(service, 'backend', 'push', 3600);
    let seq = 0;
    // Two loops, so a push hanging on a dead broker does not stop the others from being tried.
    for (let loop = 0; loop < 2; loop++) {
      this.loops.push(
        (async () => {
          while (this.running) {
            const n = seq++;
            const push: Push = {
              seq: n,
              user: users[n % users.length]!,
              startedAt: Date.now(),
              endedAt: 0,
              status: 0,
            };
            this.pushes.push(push);
            try {
              push.status = (
                await pushToUser(service.url, token, push.user, body(n), '/queue/faults', 15_000)
              ).status;
            } catch {
              push.status = -1; // no answer at all (timeout): not a 202
            }
            push.endedAt = Date.now();
            await sleep(everyMs);
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** Seqs (the JSON body) each client received on /user/queue/faults. */
function receivedSeqs(client: RawStompClient): number[] {
  return client.all('MESSAGE').map((f) => Number(JSON.parse(f.body.toString()) as unknown));
}

function expectDelivered(clients: Map<string, RawStompClient[]>, pushes: Push[], what: string): void {
  const missing: string[] = [];
  const duplicated: string[] = [];
  for (const [user, sessions] of clients) {
    const mine = pushes.filter((p) => p.user === user && p.status === 202).map((p) => p.seq);
    for (const [i, client] of sessions.entries()) {
      const got = receivedSeqs(client);
      for (const seq of mine) if (!got.includes(seq)) missing.push(`${user}#${i}:${seq}`);
      const seen = new Set<number>();
      for (const seq of got) {
        if (seen.has(seq)) duplicated.push(`${user}#${i}:${seq}`);
        seen.add(seq);
      }
    }
  }
  expect({ missing: missing.slice(0, 20), duplicated: duplicated.slice(0, 20) }, what).to.deep.equal({
    missing: [],
    duplicated: [],
  });
}

/** Kills this process's TCP connections to `port` the way a network fault would (needs root). */
function cutOwnSockets(port: number): number {
  const lines = execFileSync('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((l) => l.includes(`pid=${process.pid},`));
  let cut = 0;
  for (const line of lines) {
    const local = /\s(\S+):(\d+)\s+\S+:\d+\s/.exec(line);
    if (!local) continue;
    execFileSync('ss', ['-K', '-tnH', `( sport = :${local[2]} and dport = :${port} )`]);
    cut++;
  }
  return cut;
}

describe('faults: broker outages (RabbitMQ relay)', function () {
  this.timeout(180_000);
  let service: RunningService;
  const raw = new RawClients();
  const byUser = new Map<string, RawStompClient[]>();
  const users = [...Array(USERS).keys()].map((i) => `bf-${process.pid}-${i}`);

  before(async () => {
    await waitForRabbit();
    service = await startTestService({ brokerUrl: STOMP_URL, stompTcpPort: 0, brokerReconnectMaxMs: 1000 });
    for (const [i, user] of users.entries()) {
      const sessions: RawStompClient[] = [];
      for (const transport of ['tcp', 'websocket'] as const) {
        const client = raw.add(
          await connectRaw(service, user, { transport, headers: { 'heart-beat': '0,0' } }),
        );
        await client.sendWithReceipt('SUBSCRIBE', { id: `s${i}`, destination: '/user/queue/faults' });
        sessions.push(client);
      }
      byUser.set(user, sessions);
    }
  });
  after(async () => {
    raw.closeAll();
    // Whatever happened, leave RabbitMQ running for whoever comes next.
    await rabbitmqctl(['start_app']).catch(() => undefined);
    await waitForRabbit().catch(() => undefined);
    await service.stop();
  });

  const allConnected = (): boolean => [...byUser.values()].flat().every((c) => !c.closed);
  const ready = async (): Promise<boolean> => (await fetch(`${service.url}/readyz`)).status === 200;

  it(`RabbitMQ stopped for ${OUTAGE_MS / 1000} s under load: 503 while away, never a 202 that is lost, clients stay, delivery resumes`, async () => {
    const pusher = new Pusher(service, users, 20);
    await sleep(1000);
    const stopIssuedAt = Date.now();
    await rabbitmqctl(['stop_app']);
    await waitFor(async () => !(await ready()), 20_000, '/readyz to say the broker is down');
    const downSeenAt = Date.now();
    await sleep(Math.max(0, OUTAGE_MS - (downSeenAt - stopIssuedAt)));
    const startIssuedAt = Date.now();
    await rabbitmqctl(['start_app']);
    await waitForRabbit();
    await waitFor(ready, 60_000, '/readyz to come back');
    const recoveredAt = Date.now();
    await sleep(2000);
    await pusher.stop();

    const during = pusher.pushes.filter((p) => p.startedAt >= downSeenAt && p.endedAt <= startIssuedAt);
    const statuses = [...new Set(during.map((p) => p.status))];
    expect(during.length, 'pushes tried during the outage').to.be.greaterThan(50);
    expect(statuses, 'answers while the broker was down').to.deep.equal([503]);
    const after = pusher.pushes.filter((p) => p.startedAt >= recoveredAt);
    expect(after.length).to.be.greaterThan(20);
    expect(
      after.every((p) => p.status === 202),
      'every push after recovery accepted',
    ).to.equal(true);
    expect(allConnected(), 'every client still connected').to.equal(true);
    // Every 202 before and after the outage arrived at every session of its user. A push that
    // RabbitMQ confirmed while stop_app was already shutting it down may go with the per-instance
    // queue it was routed to: those (flight overlapping [stop issued, down seen]) are counted apart.
    await sleep(1000);
    const atStop = (p: Push): boolean => p.endedAt >= stopIssuedAt - 1000 && p.startedAt <= downSeenAt;
    expectDelivered(
      byUser,
      pusher.pushes.filter((p) => !atStop(p)),
      'deliveries of accepted pushes',
    );
    const accepted = pusher.pushes.filter((p) => p.status === 202).length;
    const stopAccepted = pusher.pushes.filter((p) => atStop(p) && p.status === 202);
    const stopLost = stopAccepted.filter((p) =>
      byUser.get(p.user)!.some((c) => !receivedSeqs(c).includes(p.seq)),
    ).length;
    console.log(
      `      outage ${((startIssuedAt - stopIssuedAt) / 1000).toFixed(1)} s (+${((recoveredAt - startIssuedAt) / 1000).toFixed(1)} s to ready): ` +
        `${pusher.pushes.length} pushes, ${accepted} accepted, ${during.length} during the outage all 503; ` +
        `${stopAccepted.length} accepted as RabbitMQ was stopping, of which ${stopLost} lost`,
    );
  });

  it("the instance's broker sockets cut mid-frame under load: clients stay, every 202 arrives", async () => {
    for (const sessions of byUser.values()) for (const c of sessions) c.frames.length = 0;
    // 48 KiB bodies keep frames in flight on the broker connections when the cut comes.
    const big = 'x'.repeat(48 * 1024);
    const pusher = new Pusher(service, users, 5, (seq) => `${seq}|${big}`);
    await sleep(1000);
    const cut = cutOwnSockets(61613);
    expect(cut, 'STOMP connections cut').to.be.greaterThan(0);
    await sleep(500);
    const cutAgain = cutOwnSockets(61613) + cutOwnSockets(5672);
    await waitFor(ready, 30_000, '/readyz after the cut');
    const recoveredAt = Date.now();
    await sleep(2000);
    await pusher.stop();
    const seqOf = (client: RawStompClient): number[] =>
      client.all('MESSAGE').map((f) => Number(f.body.toString().replace(/^"/, '').split('|')[0]));
    const missing: string[] = [];
    const duplicated: string[] = [];
    for (const [user, sessions] of byUser) {
      const mine = pusher.pushes.filter((p) => p.user === user && p.status === 202).map((p) => p.seq);
      for (const client of sessions) {
        const got = seqOf(client);
        missing.push(...mine.filter((s) => !got.includes(s)).map((s) => `${user}:${s}`));
        duplicated.push(...got.filter((s, i) => got.indexOf(s) !== i).map((s) => `${user}:${s}`));
      }
    }
    expect(allConnected(), 'every client still connected').to.equal(true);
    expect(pusher.pushes.filter((p) => p.startedAt > recoveredAt).every((p) => p.status === 202)).to.equal(
      true,
    );
    expect({ missing, duplicated }).to.deep.equal({ missing: [], duplicated: [] });
    const statuses = pusher.pushes.reduce<Record<number, number>>(
      (acc, p) => ({ ...acc, [p.status]: (acc[p.status] ?? 0) + 1 }),
      {},
    );
    console.log(
      `      cut ${cut} + ${cutAgain} broker sockets; pushes by status ${JSON.stringify(statuses)}; every 202 delivered once`,
    );
  });
});
