/**
 * AmqpSessionDirectory against the local RabbitMQ: several directories with different instance ids
 * in this process (and one in a child process, to die by SIGKILL) must agree on who is connected.
 * Instance ids carry this process's pid, so parallel runs do not see each other, and afterEach checks
 * that no queue and no AMQP connection of ours is left behind.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { Connection } from 'rabbitmq-client';
import type { SessionInfo } from '../../../app/presence/directory';
import { AmqpSessionDirectory } from '../../../app/presence/amqp-directory';
import { MAX_ANNOUNCED_CHARS } from '../../../app/presence/directory-wire';
import { EXCHANGES, declareTopology } from '../../../app/broker/rabbitmq/topology';
import {
  AMQP_URL,
  cutConnectionsNamed,
  listBindings,
  listExchanges,
  listQueues,
  ownConnectionsTo,
} from '../../support/rabbitmq';
import { sessionInfo } from '../../support/broker-harness';
import { sleep, waitFor } from '../../support/wait';

const ANNOUNCE_MS = 200;
const EXPIRE_MS = 3 * ANNOUNCE_MS;
/** Events travel at once; locally that is milliseconds. Generous for a loaded CI machine. */
const PROPAGATION_MS = 1_000;
const ID_PREFIX = `dirtest-${process.pid}-`;
/** Other runs and other suites share the broker and the exchange: user names of our own. */
const ALICE = `alice-${process.pid}`;
const BOB = `bob-${process.pid}`;
const CAROL = `carol-${process.pid}`;
const REPO_ROOT = resolve(__dirname, '../../..');

async function ids(directory: AmqpSessionDirectory, user: string): Promise<string[]> {
  return (await directory.list(user)).map((s) => s.sessionId);
}

describe('AmqpSessionDirectory (RabbitMQ)', function () {
  this.timeout(30_000);
  let running: AmqpSessionDirectory[] = [];
  let children: ChildProcess[] = [];
  let baselineConnections = 0;

  before(() => {
    baselineConnections = ownConnectionsTo(5672);
  });

  async function startDirectory(name: string, announceMs = ANNOUNCE_MS): Promise<AmqpSessionDirectory> {
    const directory = new AmqpSessionDirectory({
      amqpUrl: AMQP_URL,
      instanceId: ID_PREFIX + name,
      announceMs,
    });
    running.push(directory);
    await directory.start();
    return directory;
  }

  /** A directory in its own process, so that it can die without a word (SIGKILL). */
  async function startChildDirectory(name: string, info: SessionInfo): Promise<ChildProcess> {
    const code = `
      const { AmqpSessionDirectory } = require('./app/presence/amqp-directory');
      const d = new AmqpSessionDirectory({ amqpUrl: ${JSON.stringify(AMQP_URL)},
        instanceId: ${JSON.stringify(ID_PREFIX + name)}, announceMs: ${ANNOUNCE_MS} });
      d.upsert(${JSON.stringify(info)});
      d.start().then(() => process.stdout.write('started\\n'), (err) => { console.error(err); process.exit(1); });
      setInterval(() => {}, 60000);
    `;
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', code], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    expect(chunk.toString()).to.equal('started\n');
    return child;
  }

  afterEach(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(running.map((d) => d.stop()));
    running = [];
    children = [];
    await waitFor(
      async () => (await listQueues()).every((q) => !q.name.startsWith(`stomp-relay.${ID_PREFIX}`)),
      10_000,
      'the test directories’ queues to be deleted',
    );
    await waitFor(() => ownConnectionsTo(5672) === baselineConnections, 5_000, 'AMQP connections to close');
  });

  it('declares an exclusive auto-delete queue per instance, bound to the fanout exchange', async () => {
    await startDirectory('q');
    const name = `stomp-relay.${ID_PREFIX}q.directory`;
    const queue = (await listQueues()).find((q) => q.name === name);
    expect(queue, name).to.include({ auto_delete: true, exclusive: true, durable: false });
    const bindings = await listBindings();
    expect(bindings.some((b) => b.source === EXCHANGES.directory && b.destination === name)).to.equal(true);
  });

  it('lists a session upserted on A on B and C, sorted by connectedAt, and removes it everywhere', async () => {
    const [a, b, c] = [await startDirectory('a'), await startDirectory('b'), await startDirectory('c')];
    a.upsert(sessionInfo('a-2', ALICE, '2024-01-01T00:00:02.000Z', ID_PREFIX + 'a'));
    b.upsert(sessionInfo('b-1', ALICE, '2024-01-01T00:00:01.000Z', ID_PREFIX + 'b'));
    c.upsert(sessionInfo('c-1', BOB, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'c'));
    for (const d of [a, b, c]) {
      // Announcements from different instances arrive in no set order: wait for both users.
      await waitFor(
        async () => (await ids(d, ALICE)).join() === 'b-1,a-2' && (await ids(d, BOB)).join() === 'c-1',
        PROPAGATION_MS,
        "alice's two sessions and bob's one on every instance",
      );
      expect(await ids(d, BOB)).to.deep.equal(['c-1']);
      expect(await ids(d, CAROL)).to.deep.equal([]);
    }
    const [onC] = (await c.list(ALICE)).filter((s) => s.sessionId === 'a-2');
    expect(onC).to.deep.equal(sessionInfo('a-2', ALICE, '2024-01-01T00:00:02.000Z', ID_PREFIX + 'a'));

    a.remove('a-2');
    for (const d of [a, b, c]) {
      await waitFor(
        async () => (await ids(d, ALICE)).join() === 'b-1',
        PROPAGATION_MS,
        'the removal everywhere',
      );
    }
    // Snapshots keep live instances listed: nobody is dropped after several expiry periods.
    await sleep(2 * EXPIRE_MS);
    for (const d of [a, b, c]) expect(await ids(d, ALICE)).to.deep.equal(['b-1']);
  });

  it('replaces an entry on a second upsert of the same session', async () => {
    const [a, b] = [await startDirectory('a'), await startDirectory('b')];
    a.upsert(sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'));
    a.upsert({
      ...sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'),
      subscriptions: [{ id: 'sub-1', destination: '/topic/prices' }],
    });
    await waitFor(
      async () => (await b.list(ALICE))[0]?.subscriptions[0]?.destination === '/topic/prices',
      PROPAGATION_MS,
      'the updated subscriptions on B',
    );
    expect(await ids(b, ALICE)).to.deep.equal(['a-1']);
  });

  it("drops A's sessions on B at once when A stops (not after the expiry)", async () => {
    // Long announce period: if B dropped A by expiry, that would take 3 x 5 s, not < 0.5 s.
    const a = await startDirectory('a', 5_000);
    const b = await startDirectory('b', 5_000);
    a.upsert(sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'));
    await waitFor(async () => (await ids(b, ALICE)).length === 1, PROPAGATION_MS, 'a-1 on B');
    await a.stop();
    const stoppedAt = Date.now();
    await waitFor(async () => (await ids(b, ALICE)).length === 0, 500, "A's sessions to leave B");
    expect(Date.now() - stoppedAt).to.be.below(500);
  });

  it('forgets an instance that dies without a goodbye within 3 x announceMs', async () => {
    const b = await startDirectory('b');
    await startDirectory('c');
    const child = await startChildDirectory(
      'k',
      sessionInfo('k-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'k'),
    );
    await waitFor(async () => (await ids(b, ALICE)).includes('k-1'), PROPAGATION_MS, 'k-1 on B');
    // Alive and announcing: still listed after more than one expiry period.
    await sleep(EXPIRE_MS + ANNOUNCE_MS);
    expect(await ids(b, ALICE)).to.deep.equal(['k-1']);

    child.kill('SIGKILL');
    const killedAt = Date.now();
    // Bound: 3 x announceMs after its last message arrived, which was at most just before the kill.
    await waitFor(async () => (await ids(b, ALICE)).length === 0, EXPIRE_MS + 300, 'k-1 to vanish from B');
    expect(Date.now() - killedAt).to.be.at.most(EXPIRE_MS + 300);
    // The broker saw the socket close: the dead instance's exclusive queue is gone too.
    await waitFor(
      async () => !(await listQueues()).some((q) => q.name === `stomp-relay.${ID_PREFIX}k.directory`),
      5_000,
      "the dead instance's queue to be deleted",
    );
  });

  it('gives a directory started later the existing sessions within 1 s (hello, not the next snapshot)', async () => {
    // A announces only every 10 s: within 1 s, D can only have learnt A's sessions by asking.
    const a = await startDirectory('a', 10_000);
    const b = await startDirectory('b', 10_000);
    a.upsert(sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'));
    b.upsert(sessionInfo('b-1', ALICE, '2024-01-01T00:00:01.000Z', ID_PREFIX + 'b'));
    await waitFor(async () => (await ids(b, ALICE)).length === 2, PROPAGATION_MS, 'both sessions on B');

    const startedAt = Date.now();
    const d = await startDirectory('d', 10_000);
    await waitFor(async () => (await ids(d, ALICE)).join() === 'a-1,b-1', 1_000, 'both sessions on D');
    expect(Date.now() - startedAt).to.be.below(1_000);
  });

  it('survives a cut AMQP connection: keeps working and catches up on what it missed', async () => {
    const a = await startDirectory('a');
    const b = await startDirectory('b');
    a.upsert(sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'));
    await waitFor(async () => (await ids(b, ALICE)).length === 1, PROPAGATION_MS, 'a-1 on B');

    expect(await cutConnectionsNamed(`stomp-relay.${ID_PREFIX}a.directory`)).to.equal(1);
    // While A is cut off: its own events must not throw, and B's events do not reach it.
    expect(() =>
      a.upsert(sessionInfo('a-2', ALICE, '2024-01-01T00:00:02.000Z', ID_PREFIX + 'a')),
    ).not.to.throw();
    expect(() => a.remove('a-1')).not.to.throw();
    b.upsert(sessionInfo('b-1', ALICE, '2024-01-01T00:00:01.000Z', ID_PREFIX + 'b'));

    // rabbitmq-client reconnects, the consumer re-declares queue and binding, A says hello again.
    await waitFor(async () => (await ids(a, ALICE)).join() === 'b-1,a-2', 10_000, 'A to catch up with B');
    await waitFor(async () => (await ids(b, ALICE)).join() === 'b-1,a-2', 10_000, 'B to catch up with A');
  });

  it('ignores malformed and foreign messages on the directory exchange', async () => {
    const b = await startDirectory('b');
    const raw = new Connection(AMQP_URL);
    const publisher = raw.createPublisher({ confirm: true });
    try {
      const bad: unknown[] = [
        Buffer.from('not json'),
        { v: 2, type: 'snapshot', from: ID_PREFIX + 'x', sessions: [] },
        { v: 1 },
      ];
      bad.push({ v: 1, type: 'upsert', from: ID_PREFIX + 'x', session: { sessionId: 'x-1', user: ALICE } });
      for (const body of bad) await publisher.send({ exchange: EXCHANGES.directory }, body);
      // A well-formed snapshot from an instance that then falls silent: listed, then expired.
      const good = sessionInfo('z-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'z');
      await publisher.send(
        { exchange: EXCHANGES.directory },
        { v: 1, type: 'snapshot', from: ID_PREFIX + 'z', sessions: [good] },
      );
      await waitFor(async () => (await ids(b, ALICE)).join() === 'z-1', PROPAGATION_MS, 'z-1 on B');
      await waitFor(async () => (await ids(b, ALICE)).length === 0, EXPIRE_MS + 300, 'silent z to expire');
    } finally {
      await publisher.close();
      await raw.close();
    }
  });

  it("carries each instance's announcement on its snapshots; instances() lists itself first, then whom it hears", async () => {
    const [a, b] = [await startDirectory('a'), await startDirectory('b')];
    let count = 0;
    a.setAnnouncement(() => ({ count: ++count }));
    a.upsert(sessionInfo('a-1', ALICE, '2024-01-01T00:00:00.000Z', ID_PREFIX + 'a'));
    const heardOnB = () => b.instances().find((i) => i.instance === ID_PREFIX + 'a');
    await waitFor(
      () => (heardOnB()?.announced as { count?: number } | undefined)?.count !== undefined,
      PROPAGATION_MS + ANNOUNCE_MS,
      "A's announcement on B",
    );
    const first = (heardOnB()!.announced as { count: number }).count;
    // Asked afresh at each snapshot, not once.
    await waitFor(
      () => (heardOnB()!.announced as { count: number }).count > first,
      PROPAGATION_MS + ANNOUNCE_MS,
      "A's next announcement on B",
    );
    expect(heardOnB()!.sessions.map((s) => s.sessionId)).to.deep.equal(['a-1']);
    expect(heardOnB()!.heardAgoMs).to.be.within(0, EXPIRE_MS);
    const [self] = b.instances();
    expect(self).to.deep.include({ instance: ID_PREFIX + 'b', heardAgoMs: 0, announced: undefined });
    expect((a.instances()[0]!.announced as { count: number }).count).to.be.greaterThan(0);

    // An announcement too large to keep is dropped alone: the sessions still count.
    a.setAnnouncement(() => ({ blob: 'x'.repeat(MAX_ANNOUNCED_CHARS) }));
    await waitFor(
      () => heardOnB()!.announced === undefined,
      PROPAGATION_MS + ANNOUNCE_MS,
      'the big one dropped',
    );
    expect(heardOnB()!.sessions.map((s) => s.sessionId)).to.deep.equal(['a-1']);

    // A provider that throws costs the announcement, not the snapshot.
    a.setAnnouncement(() => {
      throw new Error('provider broke');
    });
    a.upsert(sessionInfo('a-2', ALICE, '2024-01-01T00:00:01.000Z', ID_PREFIX + 'a'));
    await sleep(2 * ANNOUNCE_MS);
    expect(heardOnB()!.sessions.map((s) => s.sessionId)).to.deep.equal(['a-1', 'a-2']);
    await a.stop();
    await waitFor(() => heardOnB() === undefined, PROPAGATION_MS, 'A gone from B');
  });

  it('can be stopped twice, and stopped before it was started', async () => {
    const a = await startDirectory('a');
    await a.stop();
    await a.stop();
    await new AmqpSessionDirectory({
      amqpUrl: AMQP_URL,
      instanceId: ID_PREFIX + 'n',
      announceMs: 100,
    }).stop();
  });

  it('stop() while start() is still connecting leaves nothing running', async () => {
    const d = new AmqpSessionDirectory({ amqpUrl: AMQP_URL, instanceId: ID_PREFIX + 's', announceMs: 100 });
    const starting = d.start();
    await d.stop();
    await starting;
    // afterEach checks that its queue and its connection are gone.
  });
});

describe('declareTopology (RabbitMQ)', () => {
  it('declares the three exchanges, durable, and can run again (idempotent)', async () => {
    const connection = new Connection(AMQP_URL);
    try {
      await declareTopology(connection);
      await declareTopology(connection);
    } finally {
      await connection.close();
    }
    const exchanges = await listExchanges();
    const types = Object.fromEntries(
      exchanges.filter((e) => e.name.startsWith('stomp-relay.')).map((e) => [e.name, e]),
    );
    expect(types[EXCHANGES.user]).to.include({ type: 'direct', durable: true, auto_delete: false });
    expect(types[EXCHANGES.directory]).to.include({ type: 'fanout', durable: true, auto_delete: false });
    expect(types[EXCHANGES.app]).to.include({ type: 'topic', durable: true, auto_delete: false });
  });
});
