/**
 * Raw STOMP over TCP (STOMP_TCP_PORT) with a client that is not ours: stomp.py from Debian's
 * python3-stomp, run by /usr/bin/python3 (stomp_py_client.py beside this file), against the service
 * relaying to real RabbitMQ. Same auth as every transport (the JWT as `passcode`), same user
 * destinations, pushes through REST.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ChildRun } from '../backend/child-process';
import { openAuthorizationFile } from '../../support/authorization';
import { QueueReader } from '../../support/pipeline';
import { deleteQueue, STOMP_URL } from '../../support/rabbitmq';
import { startTestService, tokenFor, type RunningService } from '../../support/service';

const CLIENT = join(__dirname, 'stomp_py_client.py');

describe('raw STOMP over TCP with stomp.py (RabbitMQ)', function () {
  this.timeout(60_000);
  let service: RunningService;
  const runs: ChildRun[] = [];

  const queues: string[] = [];

  const stompPy = (user: string, destination: string, count = 1, token?: string, send = false): ChildRun => {
    const run = ChildRun.start(
      `stomp.py (${user})`,
      '/usr/bin/python3',
      [CLIENT, '127.0.0.1', String(service.tcpPort), destination, String(count), ...(send ? ['--send'] : [])],
      { STOMP_TOKEN: token ?? tokenFor(service, user) },
    );
    runs.push(run);
    return run;
  };

  const push = async (user: string, body: unknown): Promise<void> => {
    const res = await fetch(`${service.url}/api/users/${encodeURIComponent(user)}/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${tokenFor(service, 'backend', 'push')}`,
      },
      body: JSON.stringify({ destination: '/queue/greetings', body }),
    });
    expect(res.status).to.equal(202);
  };

  before(async () => {
    // Default limits, the frame rate included: what a stomp.py user meets. Rules that let it SEND to /queue.
    service = await startTestService({
      brokerUrl: STOMP_URL,
      stompTcpPort: 0,
      authorizationFile: openAuthorizationFile(),
    });
    expect(service.tcpPort).to.be.a('number');
  });
  afterEach(async () => {
    await Promise.all(runs.splice(0).map((r) => r.stop()));
  });
  after(async () => {
    await service?.stop();
    for (const q of queues) await deleteQueue(q);
  });

  it('connects with the JWT as passcode, subscribes to /user/queue/greetings and receives a REST push', async () => {
    const alice = stompPy('alice', '/user/queue/greetings', 2);
    const bob = stompPy('bob', '/user/queue/greetings');
    expect(await alice.waitForLine(/^CONNECTED/)).to.match(/user=alice server=stomp-relay\//);
    await alice.waitForLine(/^SUBSCRIBED$/);
    await bob.waitForLine(/^SUBSCRIBED$/);
    await push('alice', 'hello from REST');
    await push('alice', { n: 2 });
    await alice.waitForLine(/^MESSAGE .* \{"n":2\}$/);
    expect(await alice.waitForExit()).to.equal(0);
    expect(alice.lines.filter((l) => l.startsWith('MESSAGE'))).to.deep.equal([
      'MESSAGE /user/queue/greetings hello from REST',
      'MESSAGE /user/queue/greetings {"n":2}',
    ]);
    expect(bob.lines.filter((l) => l.startsWith('MESSAGE'))).to.deep.equal([]);
  });

  it('a bad passcode gets an ERROR saying why, and the client is refused', async () => {
    const mallory = stompPy('mallory', '/user/queue/greetings', 1, 'not-a-jwt');
    expect(await mallory.waitForLine(/^ERROR/)).to.match(/token/i);
    expect(await mallory.waitForExit()).to.equal(1);
  });

  it('sends 1,000 messages without waiting for receipts: the DISCONNECT receipt comes, no ERROR, and the queue gets all 1,000 in order', async () => {
    const name = `stomp-py-${randomBytes(4).toString('hex')}`;
    queues.push(`stomp-relay.queue.${name}`);
    const reader = await QueueReader.open(service, 'reader', `/queue/${name}`);
    try {
      const bulk = stompPy('bulk', `/queue/${name}`, 1000, undefined, true);
      expect(await bulk.waitForExit(40_000), bulk.output).to.equal(0);
      expect(bulk.lines).to.include('SENT 1000');
      expect(bulk.lines.filter((l) => l.startsWith('ERROR'))).to.deep.equal([]);
      await reader.expectExactly(1000);
    } finally {
      reader.close();
    }
  });
});
