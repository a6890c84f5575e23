/**
 * CONNECT: version negotiation (header and WebSocket subprotocol), the CONNECTED headers, session
 * ids, the CONNECT deadline and a second CONNECT. Spec 1.2 §Connecting, §Protocol Negotiation.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import {
  openTcp,
  openWebSocket,
  openWebSocketRaw,
  RawClients,
  wrapWebSocket,
  type RawStompClient,
} from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';

describe('session: CONNECT', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, connectTimeoutMs: 300 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const open = async (): Promise<RawStompClient> => clients.add(await openWebSocket(service));
  const bearer = (): string => `Bearer ${tokenFor(service, 'alice')}`;

  const negotiations: [string | undefined, string][] = [
    ['1.2', '1.2'],
    ['1.0,1.1,1.2', '1.2'],
    ['1.1,1.2', '1.2'],
    ['1.0,1.1', '1.1'],
    ['1.1', '1.1'],
    ['1.0', '1.0'],
    [undefined, '1.0'],
    ['1.0, 1.1, 2.0', '1.1'],
  ];
  for (const [offered, agreed] of negotiations) {
    it(`accept-version ${offered ?? '(absent)'} → version ${agreed}`, async () => {
      const client = await open();
      client.send('CONNECT', { 'accept-version': offered, host: 'h', Authorization: bearer() });
      const connected = await client.waitForFrame('CONNECTED');
      expect(header(connected, 'version')).to.equal(agreed);
    });
  }

  it('the STOMP command works as CONNECT', async () => {
    const client = await open();
    client.send('STOMP', { 'accept-version': '1.2', host: 'h', Authorization: bearer() });
    expect(header(await client.waitForFrame('CONNECTED'), 'user-name')).to.equal('alice');
  });

  it('no common version → ERROR naming the versions in a version header, then close', async () => {
    const client = await open();
    client.send('CONNECT', { 'accept-version': '2.0,3.1', host: 'h', Authorization: bearer() });
    const error = await client.expectErrorAndClose();
    expect(header(error, 'version')).to.equal('1.0,1.1,1.2');
    expect(header(error, 'message')).to.match(/no common STOMP version/);
    expect(client.all('CONNECTED')).to.have.length(0);
  });

  it('the WebSocket subprotocol limits the versions: v11.stomp gets 1.1, v10.stomp refuses 1.2 only', async () => {
    const v11 = clients.add(await openWebSocket(service, { protocols: ['v11.stomp'] }));
    v11.send('CONNECT', { 'accept-version': '1.0,1.1,1.2', host: 'h', Authorization: bearer() });
    expect(header(await v11.waitForFrame('CONNECTED'), 'version')).to.equal('1.1');

    const v10 = clients.add(await openWebSocket(service, { protocols: ['v10.stomp'] }));
    v10.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: bearer() });
    const error = await v10.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/no common STOMP version/);
  });

  it('the chosen subprotocol does not narrow the versions a client offered more of', async () => {
    const ws = await openWebSocketRaw(service, { protocols: ['v12.stomp', 'v11.stomp', 'v10.stomp'] });
    expect(ws.protocol).to.equal('v12.stomp');
    const client = clients.add(wrapWebSocket(ws));
    client.send('CONNECT', { 'accept-version': '1.0', host: 'h', Authorization: bearer() });
    expect(header(await client.waitForFrame('CONNECTED'), 'version')).to.equal('1.0');
  });

  it('a WebSocket without subprotocol speaks every version; names like "constructor" are no subprotocol', async () => {
    const plain = clients.add(wrapWebSocket(await openWebSocketRaw(service, { protocols: [] })));
    plain.send('CONNECT', { 'accept-version': '1.1', host: 'h', Authorization: bearer() });
    expect(header(await plain.waitForFrame('CONNECTED'), 'version')).to.equal('1.1');

    const ws = await openWebSocketRaw(service, { protocols: ['constructor', 'toString', 'v11.stomp'] });
    expect(ws.protocol).to.equal('v11.stomp');
    const client = clients.add(wrapWebSocket(ws));
    client.send('CONNECT', { 'accept-version': '1.1,1.2', host: 'h', Authorization: bearer() });
    expect(header(await client.waitForFrame('CONNECTED'), 'version')).to.equal('1.1');
  });

  it('CONNECTED carries version, heart-beat, server, session, user-name and instance', async () => {
    const client = await open();
    const connected = await client.connect(tokenFor(service, 'alice'));
    expect(header(connected, 'version')).to.equal('1.2');
    expect(header(connected, 'heart-beat')).to.equal(
      `${service.settings.heartbeatSendMs},${service.settings.heartbeatReceiveMs}`,
    );
    expect(header(connected, 'server')).to.match(/^stomp-relay\/\d+\.\d+\.\d+$/);
    expect(header(connected, 'session')).to.be.a('string').with.length.greaterThan(0);
    expect(header(connected, 'user-name')).to.equal('alice');
    expect(header(connected, 'instance')).to.equal(service.settings.instanceId);
  });

  it('session ids are distinct and unguessable-looking (long, random, not sequential)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const client = await open();
      ids.push(header(await client.connect(tokenFor(service, `user${i}`)), 'session')!);
    }
    expect(new Set(ids).size).to.equal(ids.length);
    for (const id of ids) {
      expect(id).to.match(/^[A-Za-z0-9_-]{16,}$/);
      expect(id).to.not.match(/^\d+$/);
    }
    // Random ids share no long common prefix, unlike counters or timestamps.
    const prefix = (a: string, b: string): number => [...a].findIndex((c, i) => c !== b[i]);
    for (let i = 1; i < ids.length; i++) expect(prefix(ids[i - 1], ids[i])).to.be.lessThan(6);
  });

  it('a connection that sends no CONNECT within CONNECT_TIMEOUT_MS gets an ERROR and is closed', async () => {
    const client = await open();
    const started = Date.now();
    const error = await client.expectErrorAndClose(2000);
    expect(header(error, 'message')).to.match(/no CONNECT frame within 300 ms/);
    expect(Date.now() - started).to.be.within(200, 1500);
  });

  it('the CONNECT deadline applies over TCP too, and does not touch a connected session', async () => {
    const idle = clients.add(await openTcp(service));
    const connected = await open();
    await connected.connect(tokenFor(service, 'alice'));
    await idle.expectErrorAndClose(2000);
    await sleep(200);
    expect(connected.closed).to.equal(false);
    await connected.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/a' });
  });

  it('a second CONNECT on a connected session is a protocol error', async () => {
    const client = await open();
    await client.connect(tokenFor(service, 'alice'));
    client.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: bearer() });
    const error = await client.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/already connected/);
  });
});
