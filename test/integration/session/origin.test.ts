/**
 * ALLOWED_ORIGINS: WebSocket (/stomp) and SockJS (/ws, every transport's URL) handshakes from an
 * origin not listed are refused with 403; listed origins, the service's own origin and non-browser
 * clients (no Origin header) get through.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { handshakeOutcome, openWebSocket, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';

const ALLOWED = 'https://app.example.com';
const EVIL = 'https://evil.example.com';

describe('session: allowed origins', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ allowedOrigins: [ALLOWED] });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  /** Upgrade to `path` with `origin`: 'open' or how the handshake failed. */
  const upgrade = (path: string, origin?: string, protocols: string[] = []): Promise<string> =>
    handshakeOutcome(service, path, { origin, protocols });

  it('/stomp: an unlisted Origin is refused with 403', async () => {
    expect(await upgrade('/stomp', EVIL, ['v12.stomp'])).to.match(/403/);
  });

  it('/stomp: the listed Origin connects and completes CONNECT', async () => {
    const client = clients.add(await openWebSocket(service, { headers: { origin: ALLOWED } }));
    expect(header(await client.connect(tokenFor(service, 'alice')), 'user-name')).to.equal('alice');
  });

  it('/stomp: the service’s own origin and a client without Origin are let through', async () => {
    expect(await upgrade('/stomp', service.url, ['v12.stomp'])).to.equal('open');
    expect(await upgrade('/stomp', undefined, ['v12.stomp'])).to.equal('open');
  });

  it('/stomp: an Origin that merely starts like the listed one is refused', async () => {
    expect(await upgrade('/stomp', `${ALLOWED}.evil.com`, ['v12.stomp'])).to.match(/403/);
    expect(await upgrade('/stomp', 'null', ['v12.stomp'])).to.match(/403/);
  });

  it('/ws: SockJS websocket and raw websocket upgrades from an unlisted Origin are refused with 403', async () => {
    expect(await upgrade('/ws/000/abcdefgh/websocket', EVIL)).to.match(/403/);
    expect(await upgrade('/ws/websocket', EVIL)).to.match(/403/);
    expect(await upgrade('/ws/000/abcdefgh/websocket', ALLOWED)).to.equal('open');
  });

  it('/ws: info, xhr-streaming, xhr-polling and xhr_send from an unlisted Origin are refused with 403', async () => {
    const request = (path: string, method: string, origin: string) =>
      fetch(`${service.url}${path}`, { method, headers: { origin } });
    for (const [path, method] of [
      ['/ws/info', 'GET'],
      ['/ws/000/evilsess/xhr_streaming', 'POST'],
      ['/ws/000/evilsess/xhr', 'POST'],
      ['/ws/000/evilsess/xhr_send', 'POST'],
      ['/ws/000/evilsess/eventsource', 'GET'],
    ]) {
      expect((await request(path, method, EVIL)).status, `${method} ${path}`).to.equal(403);
    }
    const info = await request('/ws/info', 'GET', ALLOWED);
    expect(info.status).to.equal(200);
    expect(((await info.json()) as { websocket: unknown }).websocket).to.equal(true);
    const polling = await request('/ws/000/goodsess/xhr', 'POST', ALLOWED);
    expect(polling.status).to.equal(200);
    expect(await polling.text()).to.equal('o\n');
  });
});
