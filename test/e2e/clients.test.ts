/**
 * The client libraries a browser page uses, against a whole running service: @stomp/stompjs over
 * the plain WebSocket endpoint and over sockjs-client with each SockJS transport forced in turn.
 * A push through the REST API must reach every one of the user's sessions exactly once, and a chat
 * message sent through /app must reach every topic subscriber exactly once, whatever the transport.
 */
import { expect } from 'chai';
import { startTestService, tokenFor, type RunningService } from '../support/service';
import {
  StompClients,
  type ConnectOptions,
  type ConnectedStomp,
  type MessageLog,
} from '../support/stomp-clients';
import { sleep } from '../support/wait';

/** `server` is how the service names the transport in its session list. */
const TRANSPORTS: { name: string; server: string; options: ConnectOptions }[] = [
  { name: 'stompjs over /stomp', server: 'websocket', options: { transport: 'websocket' } },
  {
    name: 'sockjs websocket',
    server: 'sockjs/websocket',
    options: { transport: 'sockjs', sockjsTransports: ['websocket'] },
  },
  {
    name: 'sockjs xhr-streaming',
    server: 'sockjs/xhr-streaming',
    options: { transport: 'sockjs', sockjsTransports: ['xhr-streaming'] },
  },
  {
    name: 'sockjs xhr-polling',
    server: 'sockjs/xhr-polling',
    options: { transport: 'sockjs', sockjsTransports: ['xhr-polling'] },
  },
];

async function pushToUser(service: RunningService, user: string, body: unknown): Promise<Response> {
  return fetch(`${service.url}/api/users/${user}/messages`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokenFor(service, 'backend', 'push')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
}

describe('e2e: stompjs and sockjs-client', function () {
  this.timeout(20000);
  let service: RunningService;
  const clients = new StompClients();

  before(async () => {
    service = await startTestService();
  });
  afterEach(async () => {
    await clients.closeAll();
  });
  after(async () => {
    await service.stop();
  });

  for (const { name, server, options } of TRANSPORTS) {
    it(`${name}: connects, and a REST push reaches the user's subscription`, async () => {
      const alice = await clients.connect(service, 'alice', options);
      expect(alice.connected.headers['user-name']).to.equal('alice');
      // The transport really was the one forced, not a silent fallback.
      const listed = await service.presence.list('alice');
      const mine = listed.find((s) => s.sessionId === alice.connected.headers.session);
      expect(mine?.transport).to.equal(server);
      const greetings = await alice.subscribe('/user/queue/greetings');
      const res = await pushToUser(service, 'alice', { destination: '/queue/greetings', body: 'hi' });
      expect(res.status).to.equal(202);
      await greetings.waitForCount(1);
      expect(greetings.bodies()).to.deep.equal(['hi']);
      expect(greetings.messages[0].headers.destination).to.equal('/user/queue/greetings');
    });
  }

  it('a REST push reaches all of alice’s sessions on every transport exactly once, and not bob', async () => {
    const sessions: ConnectedStomp[] = [];
    for (const { options } of TRANSPORTS) sessions.push(await clients.connect(service, 'alice', options));
    const logs = await Promise.all(sessions.map((s) => s.subscribe('/user/queue/greetings')));
    const bob = await clients.connect(service, 'bob', {
      transport: 'sockjs',
      sockjsTransports: ['xhr-streaming'],
    });
    const bobLog = await bob.subscribe('/user/queue/greetings');

    const res = await pushToUser(service, 'alice', { destination: '/queue/greetings', body: 'hi' });
    expect(res.status).to.equal(202);
    expect(((await res.json()) as { id: unknown }).id).to.be.a('string');

    await Promise.all(logs.map((l) => l.waitForCount(1)));
    await sleep(300); // long enough for a duplicate or a misrouted copy to show up
    for (const [i, log] of logs.entries()) {
      expect(log.bodies(), sessions[i].transport).to.deep.equal(['hi']);
    }
    expect(bobLog.messages).to.have.length(0);
  });

  it('/app/chat/x reaches the topic subscribers on every transport exactly once, with the sender', async () => {
    const users = ['alice', 'bob', 'carol', 'dave'];
    const sessions: ConnectedStomp[] = [];
    for (const [i, { options }] of TRANSPORTS.entries())
      sessions.push(await clients.connect(service, users[i], options));
    const logs: MessageLog[] = await Promise.all(sessions.map((s) => s.subscribe('/topic/chat.x')));

    // Sent from the xhr-polling client: the slowest way in still fans out to everyone.
    await sessions[3].publishWithReceipt('/app/chat/x', 'hello room', { 'content-type': 'text/plain' });

    await Promise.all(logs.map((l) => l.waitForCount(1)));
    await sleep(300);
    for (const [i, log] of logs.entries()) {
      expect(log.bodies(), sessions[i].transport).to.deep.equal(['hello room']);
      expect(log.messages[0].headers.sender).to.equal('dave');
      expect(log.messages[0].headers.destination).to.equal('/topic/chat.x');
    }
  });
});
