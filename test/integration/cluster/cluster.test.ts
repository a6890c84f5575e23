/**
 * Three instances as child processes on the local RabbitMQ behave as one service (issue 3, item 7):
 * user pushes and topics cross instances exactly once, every instance answers the same session list,
 * an instance holds its broker pool and no more, queues say what they are and go with their owners
 * (graceful stop and kill -9), and connected clients survive a broker restart.
 *
 * One cluster (A, B, C) is shared by the tests; tests that stop or kill instances start their own.
 * The broker restart runs last: it takes RabbitMQ away from everything for ~10 s.
 */
import { expect } from 'chai';
import type { SessionInfo } from '../../../app/presence/directory';
import { startInstances, stopInstances, type Instance, type InstanceOptions } from '../../support/instances';
import { connectionsTo, listBindings, queueNames, rabbitmqctl, waitForRabbit } from '../../support/rabbitmq';
import { sleep, waitFor } from '../../support/wait';
import { connectStomp, StompClients, type ConnectedStomp } from '../../support/stomp-clients';
import { api, publish, pushToUser, readyStatus } from './api';

const ANNOUNCE_MS = 500;
const POOL_SIZE = 2;
const STOMP_PORT = 61613;
/** Time after a delivery in which a duplicate would have shown up. */
const QUIET_MS = 500;

const run = Math.random().toString(16).slice(2, 8);
const options: InstanceOptions = { prefix: `cl${run}-`, announceMs: ANNOUNCE_MS };

/**
 * `rabbitmqctl start_app`, until RabbitMQ answers. A start_app right after a stop_app can return 0
 * and yet not start the app (RabbitMQ 3.10 logs an application_master crasher), so check and retry.
 */
async function startRabbitApp(attempts = 3): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await rabbitmqctl(['start_app']);
    try {
      await waitForRabbit(20_000);
      return;
    } catch (err: unknown) {
      if (attempt >= attempts) throw err;
    }
  }
}

function queuesOf(instance: Instance): Promise<string[]> {
  return queueNames(`stomp-relay.${instance.id}.`).then((names) => names.sort());
}

async function sessionsOn(instance: Instance, user: string): Promise<SessionInfo[]> {
  const answer = await api(instance, 'GET', `/api/users/${user}/sessions`);
  expect(answer.status, JSON.stringify(answer.body)).to.equal(200);
  return (answer.body as { sessions: SessionInfo[] }).sessions;
}

/** The three queues of an instance, whatever the number of its users and topics. */
function expectedQueues(instance: Instance): string[] {
  const prefix = `stomp-relay.${instance.id}`;
  return [`${prefix}.directory`, `${prefix}.topics`, `${prefix}.users`];
}

/** `<exchange> <routing key>` of each binding of the instance's users and topics queues. */
async function bindingsOf(instance: Instance): Promise<string[]> {
  const queues = [`stomp-relay.${instance.id}.users`, `stomp-relay.${instance.id}.topics`];
  return (await listBindings())
    .filter((b) => queues.includes(b.destination) && b.source !== '')
    .map((b) => `${b.source} ${b.routing_key}`)
    .sort();
}

describe('cluster: three instances on RabbitMQ', function () {
  this.timeout(60_000);

  const started: Instance[] = [];
  let A: Instance;
  let B: Instance;
  let C: Instance;
  const clients = new StompClients({ waitMs: 5000 });

  async function more(count: number, prefix: string): Promise<Instance[]> {
    const made = await startInstances(count, { ...options, prefix: `cl${run}-${prefix}`, secret: A.secret });
    started.push(...made);
    return made;
  }

  before(async () => {
    await waitForRabbit(30_000);
    const made = await startInstances(3, options);
    started.push(...made);
    [A, B, C] = made;
  });

  afterEach(async function () {
    await clients.closeAll();
    if (this.currentTest?.state === 'failed') {
      for (const instance of started)
        console.log(`--- ${instance.id}\n${instance.logs().slice(-15).join('\n')}`);
    }
  });

  after(async () => {
    await Promise.allSettled(started.map((instance) => instance.stop()));
    await waitFor(
      async () => (await Promise.all(started.map(queuesOf))).every((names) => names.length === 0),
      15_000,
      'the test instances’ queues to be gone',
    );
  });

  it('pushes made on a third instance reach every session of alice (/stomp and SockJS) once, bob none', async () => {
    const aliceWs = await clients.connect(A, 'alice', { transport: 'websocket' });
    const aliceSockJs = await clients.connect(B, 'alice', { transport: 'sockjs' });
    expect([aliceWs.connectedTo, aliceSockJs.connectedTo]).to.deep.equal([A.id, B.id]);
    const bobs = await Promise.all([A, B, C].map((i) => clients.connect(i, 'bob')));
    const aliceSubs = await Promise.all(
      [aliceWs, aliceSockJs].map((c) => c.subscribe('/user/queue/greetings')),
    );
    const bobSubs = await Promise.all(bobs.map((c) => c.subscribe('/user/queue/greetings')));

    const answer = await pushToUser(C, 'alice', '/queue/greetings', 'hello alice');
    expect(answer.status, JSON.stringify(answer.body)).to.equal(202);

    await Promise.all(aliceSubs.map((s) => s.waitForCount(1)));
    await sleep(QUIET_MS);
    for (const sub of aliceSubs) expect(sub.bodies()).to.deep.equal(['hello alice']);
    for (const sub of bobSubs) expect(sub.bodies()).to.deep.equal([]);
  });

  it('a topic reaches its subscribers on all three instances exactly once (REST and STOMP /app)', async () => {
    const room = `room-${run}`;
    const subscribers = await Promise.all([A, B, C].map((i, n) => clients.connect(i, `reader${n}`)));
    const subs = await Promise.all(subscribers.map((c) => c.subscribe(`/topic/chat.${room}`)));

    const answer = await publish(A, `/topic/chat.${room}`, 'from REST');
    expect(answer.status, JSON.stringify(answer.body)).to.equal(202);
    await Promise.all(subs.map((s) => s.waitForCount(1)));

    const carol = await clients.connect(B, 'carol');
    await carol.publishWithReceipt(`/app/chat/${room}`, 'from STOMP');
    await Promise.all(subs.map((s) => s.waitForCount(2)));

    await sleep(QUIET_MS);
    for (const sub of subs) {
      expect(sub.bodies()).to.deep.equal(['from REST', 'from STOMP']);
      expect(sub.messages[1].headers.sender).to.equal('carol');
    }
  });

  it('GET /api/users/alice/sessions answers the same list on every instance', async () => {
    const onA = await clients.connect(A, 'alice', { transport: 'websocket' });
    const onB = await clients.connect(B, 'alice', { transport: 'sockjs' });
    await onA.subscribe('/user/queue/greetings');
    await onB.subscribe('/user/queue/greetings');
    await onB.subscribe(`/topic/news-${run}`);
    const ids = [onA.sessionId, onB.sessionId].sort();

    // Each instance hears of the others' sessions through the directory exchange: poll until all agree.
    let lists: SessionInfo[][] = [];
    await waitFor(
      async () => {
        lists = await Promise.all([A, B, C].map((i) => sessionsOn(i, 'alice')));
        return lists.every(
          (list) =>
            JSON.stringify(list.map((s) => s.sessionId).sort()) === JSON.stringify(ids) &&
            list.every((s) => s.subscriptions.length === (s.sessionId === onB.sessionId ? 2 : 1)),
        );
      },
      3 * ANNOUNCE_MS + 2000,
      'every instance to list both sessions of alice',
    );
    expect(lists[1]).to.deep.equal(lists[0]);
    expect(lists[2]).to.deep.equal(lists[0]);

    const byId = new Map(lists[0].map((s) => [s.sessionId, s]));
    const a = byId.get(onA.sessionId)!;
    const b = byId.get(onB.sessionId)!;
    expect(a).to.include({ user: 'alice', instance: A.id, transport: 'websocket' });
    expect(b).to.include({ user: 'alice', instance: B.id });
    expect(b.transport).to.match(/^sockjs/);
    for (const s of [a, b]) expect(Number.isNaN(Date.parse(s.connectedAt)), s.connectedAt).to.equal(false);
    expect(a.subscriptions.map((s) => s.destination)).to.deep.equal(['/user/queue/greetings']);
    expect(b.subscriptions.map((s) => s.destination).sort()).to.deep.equal(
      ['/user/queue/greetings', `/topic/news-${run}`].sort(),
    );
  });

  it(`holds ${POOL_SIZE} TCP connections to ${STOMP_PORT} per instance with 1 and with 100 sessions`, async () => {
    for (const instance of [A, B, C])
      expect(connectionsTo(STOMP_PORT, instance.pid), instance.id).to.equal(POOL_SIZE);

    const first = await clients.connect(C, 'load0');
    await first.subscribe('/user/queue/greetings');
    expect(connectionsTo(STOMP_PORT, C.pid)).to.equal(POOL_SIZE);

    const topic = `/topic/load-${run}`;
    // 10 users x 10 sessions (under MAX_SESSIONS_PER_USER), each with a user and a topic subscription.
    const rest = await clients.connectMany(
      99,
      C,
      (i) => `load${(i + 1) % 10}`,
      async (client) => {
        await client.subscribe('/user/queue/greetings');
      },
    );
    const all: ConnectedStomp[] = [first, ...rest];
    const subs = await Promise.all(all.map((c) => c.subscribe(topic)));
    expect(connectionsTo(C.port, process.pid), 'client connections to C').to.be.at.least(100);
    for (const instance of [A, B, C])
      expect(connectionsTo(STOMP_PORT, instance.pid), instance.id).to.equal(POOL_SIZE);

    // ... and all 100 are live through those two connections.
    expect((await publish(A, topic, 'to all')).status).to.equal(202);
    await Promise.all(subs.map((s) => s.waitForCount(1)));
  });

  it('holds three queues per instance, a binding per user and topic; none of them outlive their instances', async () => {
    const trio = await more(3, 'q');
    const topic = `prices-${run}`;
    for (const instance of trio) {
      for (const user of ['alice', 'bob']) {
        const client = await clients.connect(instance, user);
        await client.subscribe('/user/queue/greetings');
        await client.subscribe(`/topic/${topic}`);
      }
    }
    await waitFor(
      async () => {
        for (const instance of trio) {
          expect(await queuesOf(instance)).to.deep.equal(expectedQueues(instance));
          expect(await bindingsOf(instance)).to.deep.equal([
            `amq.topic ${topic}`,
            'stomp-relay.user alice',
            'stomp-relay.user bob',
          ]);
        }
        return true;
      },
      5000,
      'each instance’s three queues and its bindings',
    );

    const statuses = await stopInstances(trio);
    expect(statuses.map((s) => s.code)).to.deep.equal([0, 0, 0]);
    await waitFor(
      async () => (await Promise.all(trio.map(queuesOf))).every((names) => names.length === 0),
      5000,
      'no stomp-relay.<stopped instance>.* queue left',
    );
    for (const instance of trio) expect(connectionsTo(STOMP_PORT, instance.pid)).to.equal(0);
  });

  it(`kill -9: the instance's queues go at once, its sessions leave every list within 3 x ${ANNOUNCE_MS} ms`, async () => {
    const [D] = await more(1, 'k');
    const victim = await clients.connect(D, 'alice');
    await victim.subscribe('/user/queue/greetings');
    await victim.subscribe(`/topic/doomed-${run}`);
    await waitFor(
      async () => {
        for (const instance of [A, B, C]) {
          const ids = (await sessionsOn(instance, 'alice')).map((s) => s.sessionId);
          if (!ids.includes(victim.sessionId)) return false;
        }
        return (await queuesOf(D)).length === 3;
      },
      5000,
      'the session on the doomed instance to be listed everywhere and its queues to exist',
    );

    await D.kill9();
    const killedAt = Date.now();
    await waitFor(async () => (await queuesOf(D)).length === 0, 5000, `no stomp-relay.${D.id}.* queue`);
    const queuesGoneMs = Date.now() - killedAt;
    const bound = 3 * ANNOUNCE_MS + 1000;
    await waitFor(
      async () => {
        for (const instance of [A, B, C]) {
          const ids = (await sessionsOn(instance, 'alice')).map((s) => s.sessionId);
          if (ids.includes(victim.sessionId)) return false;
        }
        return true;
      },
      Math.max(0, bound - (Date.now() - killedAt)),
      `the killed instance's session to leave every list within ${bound} ms`,
    );
    console.log(
      `      kill -9: queues gone after ${queuesGoneMs} ms, sessions unlisted after ${Date.now() - killedAt} ms`,
    );
  });

  // Last: stops RabbitMQ's app for everyone for ~10 s.
  it('survives a broker restart: clients stay connected, /readyz and pushes are 503 meanwhile', async function () {
    this.timeout(90_000);
    const onA = await clients.connect(A, 'alice', { transport: 'websocket' });
    const onB = await clients.connect(B, 'alice', { transport: 'sockjs' });
    const subs = await Promise.all([onA, onB].map((c) => c.subscribe('/user/queue/greetings')));
    expect((await pushToUser(C, 'alice', '/queue/greetings', 'before')).status).to.equal(202);
    await Promise.all(subs.map((s) => s.waitForCount(1)));

    await rabbitmqctl(['stop_app']);
    try {
      await waitFor(
        async () => (await Promise.all([A, B, C].map(readyStatus))).every((s) => s === 503),
        10_000,
        '/readyz 503 on every instance',
      );
      const during: number[] = [];
      for (let i = 0; i < 5; i++) {
        during.push((await pushToUser(C, 'alice', '/queue/greetings', `during ${i}`)).status);
        during.push((await publish(A, `/topic/down-${run}`, 'during')).status);
      }
      expect(during).to.deep.equal(during.map(() => 503));
      let refused = '';
      await connectStomp(A, 'dave').then(
        (c) => c.close(),
        (err: unknown) => {
          refused = err instanceof Error ? err.message : String(err);
        },
      );
      expect(refused).to.match(/ERROR .*broker/i);
    } finally {
      await startRabbitApp();
    }
    await waitFor(
      async () => (await Promise.all([A, B, C].map(readyStatus))).every((s) => s === 200),
      30_000,
      '/readyz 200 on every instance after the restart',
    );

    expect((await pushToUser(C, 'alice', '/queue/greetings', 'after')).status).to.equal(202);
    await Promise.all(subs.map((s) => s.waitForCount(2, 10_000)));
    await sleep(QUIET_MS);
    for (const sub of subs) expect(sub.bodies()).to.deep.equal(['before', 'after']);
    // The same sessions, never closed: nothing reconnected on the client side.
    expect([onA.closes, onB.closes]).to.deep.equal([0, 0]);
    const ids = [onA.sessionId, onB.sessionId].sort();
    await waitFor(
      async () =>
        JSON.stringify((await sessionsOn(C, 'alice')).map((s) => s.sessionId).sort()) === JSON.stringify(ids),
      3 * ANNOUNCE_MS + 5000,
      'the directory to list the same two sessions again',
    );
  });
});
