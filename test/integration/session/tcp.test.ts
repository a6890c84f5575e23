/**
 * The raw STOMP TCP endpoint (STOMP_TCP_PORT) has the semantics of /stomp: same CONNECT, same
 * destinations and pushes, same errors. (Frames, heart-beats and bodies over TCP are also covered
 * by the per-feature files, which run over both.)
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, openTcp, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';

describe('session: raw TCP endpoint', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  it('is off unless STOMP_TCP_PORT is set', async () => {
    const plain = await startTestService();
    try {
      expect(plain.tcpPort).to.equal(undefined);
    } finally {
      await plain.stop();
    }
    expect(service.tcpPort).to.be.a('number').greaterThan(0);
  });

  it('a STOMP 1.0 client (no accept-version, login/passcode) connects', async () => {
    const client = clients.add(await openTcp(service));
    client.send('CONNECT', { login: 'alice', passcode: tokenFor(service, 'alice') });
    const connected = await client.waitForFrame('CONNECTED');
    expect(header(connected, 'version')).to.equal('1.0');
    expect(header(connected, 'user-name')).to.equal('alice');
    // 1.0: SUBSCRIBE without id, the destination names the subscription.
    await client.sendWithReceipt('SUBSCRIBE', { destination: '/user/queue/greetings' });
    const res = await fetch(`${service.url}/api/users/alice/messages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokenFor(service, 'backend', 'push')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ destination: '/queue/greetings', body: 'hi over tcp' }),
    });
    expect(res.status).to.equal(202);
    const m = await client.waitForFrame('MESSAGE');
    expect(m.body.toString()).to.equal('hi over tcp');
    expect(header(m, 'subscription')).to.equal('/user/queue/greetings');
  });

  it('a TCP session and a WebSocket session chat through /app on one topic', async () => {
    const tcp = clients.add(await connectRaw(service, 'alice', { transport: 'tcp' }));
    const ws = clients.add(await connectRaw(service, 'bob'));
    for (const c of [tcp, ws])
      await c.sendWithReceipt('SUBSCRIBE', { id: 'c', destination: '/topic/chat.mixed' });
    await tcp.sendWithReceipt('SEND', { destination: '/app/chat/mixed' }, 'from tcp');
    await ws.sendWithReceipt('SEND', { destination: '/app/chat/mixed' }, 'from ws');
    for (const c of [tcp, ws]) {
      const got = [await c.waitForFrame('MESSAGE'), await c.waitForFrame('MESSAGE')].map(
        (f) => `${header(f, 'sender')}:${f.body.toString()}`,
      );
      expect(got.sort()).to.deep.equal(['alice:from tcp', 'bob:from ws']);
    }
    await sleep(50);
    expect(tcp.all('MESSAGE')).to.have.length(2);
  });

  it('several frames in one TCP write are all handled, in order', async () => {
    const client = clients.add(await connectRaw(service, 'alice', { transport: 'tcp' }));
    client.sendRaw(
      'SUBSCRIBE\nid:a\ndestination:/user/queue/echo\n\n\0' +
        'SEND\ndestination:/app/echo\n\none\0\n' +
        'SEND\ndestination:/app/echo\n\ntwo\0\r\n' +
        'SEND\ndestination:/app/echo\nreceipt:done\n\nthree\0',
    );
    await client.waitForFrame('RECEIPT');
    const bodies = [];
    for (let i = 0; i < 3; i++) bodies.push((await client.waitForFrame('MESSAGE')).body.toString());
    expect(bodies).to.deep.equal(['one', 'two', 'three']);
  });

  it('a refused frame over TCP ends in ERROR then the socket closes', async () => {
    const client = clients.add(await connectRaw(service, 'alice', { transport: 'tcp' }));
    client.send('SUBSCRIBE', { id: 's', destination: '/amq/queue/secret' });
    const error = await client.expectErrorAndClose();
    expect(header(error, 'message')).to.include("'/amq/queue/secret'");
  });

  it('a client that closes the socket mid-frame leaves no session behind', async () => {
    const client = clients.add(await connectRaw(service, 'zed', { transport: 'tcp' }));
    expect(service.registry.countForUser('zed')).to.equal(1);
    client.sendRaw('SEND\ndestination:/topic/a\ncontent-length:100\n\nonly part');
    client.close();
    await sleep(100);
    expect(service.registry.countForUser('zed')).to.equal(0);
  });
  it('reads frames sent in the same write as CONNECT in the negotiated version (1.0: no escapes)', async () => {
    const client = clients.add(await openTcp(service));
    // One write: CONNECT, SUBSCRIBE and a SEND whose header holds a backslash, which STOMP 1.0 does
    // not escape. Read with 1.2 rules, `\\d` would be an undefined escape and end the session.
    client.sendRaw(
      'CONNECT\naccept-version:1.0\npasscode:' +
        tokenFor(service, 'alice') +
        '\n\n\u0000' +
        'SUBSCRIBE\ndestination:/user/queue/echo\n\n\u0000' +
        'SEND\ndestination:/app/echo\nx-path:C:\\dir\nreceipt:r1\n\nping\u0000',
    );
    const connected = await client.waitForFrame('CONNECTED');
    expect(header(connected, 'version')).to.equal('1.0');
    const receipt = await client.waitForFrame('RECEIPT');
    expect(header(receipt, 'receipt-id')).to.equal('r1');
    const echoed = await client.waitForFrame('MESSAGE');
    expect(echoed.body.toString()).to.equal('ping');
    expect(client.frames.filter((f) => f.command === 'ERROR')).to.deep.equal([]);
  });
});
