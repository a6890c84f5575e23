/**
 * `/user/queue/...` and `/user/topic/...`: private to the session's user. A push to alice reaches
 * every live session of alice and nobody else; no spelling lets bob in; clients cannot SEND there.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { publishDirect, startTestService, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';
import { userTarget } from '../../support/broker-harness';

describe('session: user destinations', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const subscribed = (user: string, destination: string, transport: RawTransport = 'websocket') =>
    clients.subscribed(service, user, destination, { transport });
  const bodies = (c: RawStompClient): string[] => c.all('MESSAGE').map((f) => f.body.toString());

  it("a push to alice reaches both of alice's sessions, once each, and never bob's", async () => {
    const alice1 = await subscribed('alice', '/user/queue/mail');
    const alice2 = await subscribed('alice', '/user/queue/mail', 'tcp');
    const bob = await subscribed('bob', '/user/queue/mail');
    await publishDirect(service, userTarget('alice', 'mail'), 'for alice');
    for (const a of [alice1, alice2]) {
      const m = await a.waitForFrame('MESSAGE');
      expect(header(m, 'destination')).to.equal('/user/queue/mail');
    }
    await sleep(150);
    expect(bodies(alice1)).to.deep.equal(['for alice']);
    expect(bodies(alice2)).to.deep.equal(['for alice']);
    expect(bodies(bob)).to.deep.equal([]);
  });

  it('/user/topic/<name> is private the same way', async () => {
    const alice = await subscribed('alice', '/user/topic/news');
    const bob = await subscribed('bob', '/user/topic/news');
    await publishDirect(service, { kind: 'user', user: 'bob', type: 'topic', name: 'news' }, 'for bob');
    expect((await bob.waitForFrame('MESSAGE')).body.toString()).to.equal('for bob');
    await sleep(100);
    expect(bodies(alice)).to.deep.equal([]);
  });

  it('a push to a user destination does not leak into the shared /queue or /topic of that name', async () => {
    const alice = await subscribed('alice', '/topic/inbox');
    await publishDirect(service, userTarget('alice', 'inbox'), 'private');
    await sleep(100);
    expect(bodies(alice)).to.deep.equal([]);
  });

  it('a session that subscribed after the push does not get it; one that unsubscribed stops getting them', async () => {
    const alice1 = await subscribed('alice', '/user/queue/later');
    await publishDirect(service, userTarget('alice', 'later'), 'first');
    await alice1.waitForFrame('MESSAGE');
    const alice2 = await subscribed('alice', '/user/queue/later');
    await alice1.sendWithReceipt('UNSUBSCRIBE', { id: 'sub' });
    await publishDirect(service, userTarget('alice', 'later'), 'second');
    await alice2.waitForFrame('MESSAGE');
    await sleep(100);
    expect(bodies(alice1)).to.deep.equal(['first']);
    expect(bodies(alice2)).to.deep.equal(['second']);
  });

  for (const destination of ['/user/queue/x', '/user/topic/x', '/user/alice/queue/x']) {
    it(`SEND to ${destination} is refused with an ERROR naming it`, async () => {
      const listener = await subscribed('alice', '/user/queue/x');
      const sender = clients.add(await connectRaw(service, 'alice'));
      sender.send('SEND', { destination }, 'self-push');
      expect(header(await sender.expectErrorAndClose(), 'message')).to.include(`'${destination}'`);
      await sleep(100);
      expect(bodies(listener)).to.deep.equal([]);
    });
  }

  for (const destination of [
    '/user/alice/queue/x',
    '/user//queue/x',
    '/user/queue/../alice/x',
    '/user/queue/x/../y',
  ]) {
    it(`bob cannot reach alice's queue by spelling it ${destination}`, async () => {
      const bob = clients.add(await connectRaw(service, 'bob'));
      bob.send('SUBSCRIBE', { id: 's', destination });
      expect(header(await bob.expectErrorAndClose(), 'message')).to.include('is not allowed');
    });
  }
});
