/**
 * Heart-beating both ways (spec 1.2 §Heart-beating) with small intervals: the server sends EOLs at
 * the negotiated interval, and closes a client that promised heart-beats and went silent.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { openRaw, RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';

describe('session: heart-beating', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, heartbeatSendMs: 100, heartbeatReceiveMs: 100 });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = async (
    heartBeat: string | undefined,
    transport: RawTransport = 'websocket',
  ): Promise<RawStompClient> => {
    const client = clients.add(await openRaw(service, transport));
    const connected = await client.connect(tokenFor(service, 'alice'), { 'heart-beat': heartBeat });
    expect(header(connected, 'heart-beat')).to.equal('100,100');
    return client;
  };

  for (const transport of ['websocket', 'tcp'] as const) {
    it(`${transport}: the server sends EOLs every negotiated interval when the client asks for them`, async () => {
      const client = await connect('0,100', transport);
      const from = Date.now();
      await sleep(650);
      const beats = client.heartbeats.filter((t) => t >= from);
      expect(beats.length).to.be.within(4, 8);
      expect(client.closed).to.equal(false);
    });
  }

  it('the interval is the larger of the server offer and the client wish', async () => {
    const client = await connect('0,300');
    const from = Date.now();
    await sleep(1000);
    const beats = client.heartbeats.filter((t) => t >= from);
    expect(beats.length).to.be.within(2, 4);
    for (let i = 1; i < beats.length; i++) expect(beats[i] - beats[i - 1]).to.be.at.least(200);
  });

  it('no heart-beats are sent to a client that asks for none', async () => {
    const client = await connect('0,0');
    await sleep(400);
    expect(client.heartbeats).to.have.length(0);
  });

  it('a silent client that promised heart-beats gets an ERROR and is closed', async () => {
    const client = await connect('100,0');
    const from = Date.now();
    const error = await client.expectErrorAndClose(2000);
    expect(header(error, 'message')).to.match(/no heart-beat from the client/);
    // Closed after about two intervals (grace), not at once and not much later.
    expect(Date.now() - from).to.be.within(150, 800);
  });

  it('a client that keeps sending EOLs stays connected', async () => {
    const client = await connect('100,0', 'tcp');
    const beat = setInterval(() => client.sendRaw('\n'), 50);
    try {
      await sleep(700);
      expect(client.closed).to.equal(false);
      await client.sendWithReceipt('SUBSCRIBE', { id: 's', destination: '/topic/a' });
    } finally {
      clearInterval(beat);
    }
  });

  it('frames count as heart-beats too, and CRLF EOLs are accepted', async () => {
    const client = await connect('100,0');
    for (let i = 0; i < 6; i++) {
      await sleep(80);
      if (i % 2 === 0) client.sendRaw('\r\n');
      else client.send('SUBSCRIBE', { id: `s${i}`, destination: '/topic/a' });
    }
    expect(client.closed).to.equal(false);
    expect(client.all('ERROR')).to.have.length(0);
  });

  it('a client that asks for no heart-beats is not closed for being silent', async () => {
    const client = await connect(undefined);
    await sleep(500);
    expect(client.closed).to.equal(false);
  });

  it('a malformed heart-beat header is a protocol error', async () => {
    const client = clients.add(await openRaw(service, 'websocket'));
    client.send('CONNECT', {
      'accept-version': '1.2',
      host: 'h',
      'heart-beat': 'soon,never',
      Authorization: `Bearer ${tokenFor(service, 'alice')}`,
    });
    const error = await client.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/heart-beat header/);
  });
});
