/**
 * `/app/...` messages reach the handlers registered in code: `/app/echo` replies to every session of
 * the sender on `/user/queue/echo`, `/app/chat/{room}` republishes to `/topic/chat.{room}` with the
 * verified user as `sender`, whatever the client wrote there.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';

describe('session: /app handlers', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = (user: string, transport: RawTransport = 'websocket'): Promise<RawStompClient> =>
    clients.connect(service, user, { transport });
  const subscribed = (user: string, destination: string, transport: RawTransport = 'websocket') =>
    clients.subscribed(service, user, destination, { transport });

  it("/app/echo replies on /user/queue/echo to every one of the sender's sessions, and only to them", async () => {
    const alice1 = await subscribed('alice', '/user/queue/echo');
    const alice2 = await subscribed('alice', '/user/queue/echo', 'tcp');
    const bob = await subscribed('bob', '/user/queue/echo');
    await alice1.sendWithReceipt(
      'SEND',
      { destination: '/app/echo', 'content-type': 'application/json' },
      '{"ping":1}',
    );
    for (const a of [alice1, alice2]) {
      const m = await a.waitForFrame('MESSAGE');
      expect(m.body.toString()).to.equal('{"ping":1}');
      expect(header(m, 'content-type')).to.equal('application/json');
      expect(header(m, 'destination')).to.equal('/user/queue/echo');
    }
    await sleep(100);
    expect(bob.all('MESSAGE')).to.have.length(0);
  });

  it('/app/chat/room1 reaches /topic/chat.room1 with the verified sender, even when the client forges one', async () => {
    const listener = await subscribed('carol', '/topic/chat.room1');
    const other = await subscribed('dave', '/topic/chat.room2');
    const alice = await connect('alice');
    await alice.sendWithReceipt(
      'SEND',
      { destination: '/app/chat/room1', sender: 'mallory', 'content-type': 'text/plain' },
      'hello',
    );
    const m = await listener.waitForFrame('MESSAGE');
    expect(m.body.toString()).to.equal('hello');
    expect(header(m, 'sender')).to.equal('alice');
    expect(m.headers.filter(([k]) => k === 'sender')).to.have.length(1);
    expect(header(m, 'destination')).to.equal('/topic/chat.room1');
    await sleep(100);
    expect(other.all('MESSAGE')).to.have.length(0);
  });

  it('a route no handler claims → ERROR naming it', async () => {
    const alice = await connect('alice');
    alice.send('SEND', { destination: '/app/nothing/here' }, 'x');
    expect(header(await alice.expectErrorAndClose(), 'message')).to.match(
      /no handler for '\/app\/nothing\/here'/,
    );
  });

  it('an /app SEND inside a transaction → ERROR', async () => {
    const alice = await connect('alice');
    await alice.sendWithReceipt('BEGIN', { transaction: 't' });
    alice.send('SEND', { destination: '/app/echo', transaction: 't' }, 'x');
    expect(header(await alice.expectErrorAndClose(), 'message')).to.match(/cannot be part of a transaction/);
  });
});
