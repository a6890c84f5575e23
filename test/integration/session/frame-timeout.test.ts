/**
 * FRAME_TIMEOUT_MS: a frame must be complete within that long of its first byte. A client that
 * trickles bytes into one frame (which also keeps heart-beat checks satisfied) gets an ERROR and the
 * close, on /stomp and TCP; a busy stream whose chunks end mid-frame, and a quiet connection between
 * frames, are not cut.
 */
import { expect } from 'chai';
import { frame, header } from '../../../app/stomp/frame';
import { serializeFrame } from '../../../app/stomp/serializer';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { openRaw, RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';

const FRAME_TIMEOUT_MS = 800;

describe('session: a frame must complete within FRAME_TIMEOUT_MS', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      frameTimeoutMs: FRAME_TIMEOUT_MS,
      heartbeatSendMs: 0,
      heartbeatReceiveMs: 200,
      authorizationFile: openAuthorizationFile(),
    });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = async (transport: RawTransport, heartBeat: string): Promise<RawStompClient> => {
    const client = clients.add(await openRaw(service, transport));
    await client.connect(tokenFor(service, 'alice'), { 'heart-beat': heartBeat });
    return client;
  };

  for (const transport of ['websocket', 'tcp'] as const) {
    it(`${transport}: a SEND trickled in a byte at a time, heart-beats kept alive, is cut with an ERROR`, async () => {
      const before = await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'frame_time' });
      // The client promises a heart-beat every 200 ms: each trickled byte counts as one.
      const client = await connect(transport, '200,0');
      const started = Date.now();
      client.sendRaw('SEND\ndestination:/topic/slow\ncontent-length:60000\n\nabc');
      const trickle = setInterval(() => client.sendRaw('x'), 100);
      try {
        const error = await client.expectErrorAndClose(FRAME_TIMEOUT_MS + 3000);
        expect(header(error, 'message')).to.equal(
          `frame not completed within ${FRAME_TIMEOUT_MS} ms of its first byte`,
        );
        expect(Date.now() - started, 'not cut before the bound').to.be.at.least(FRAME_TIMEOUT_MS - 20);
      } finally {
        clearInterval(trickle);
      }
      const after = await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'frame_time' });
      expect(after - before).to.equal(1);
    });
  }

  it('tcp: a stream whose every write ends mid-frame, for longer than the bound in all, is not cut', async () => {
    const client = await connect('tcp', '0,0');
    const frames = Array.from({ length: 17 }, (_, i) =>
      serializeFrame(frame('SEND', { destination: '/topic/stream', receipt: `r-${i}` }, `body ${i}`), '1.2'),
    );
    // Each write: the second half of one frame and the first half of the next.
    let carry = frames[0].subarray(0, 20);
    client.sendRaw(carry);
    for (let i = 0; i < frames.length; i++) {
      await sleep(100);
      const next = frames[i + 1];
      carry = next === undefined ? Buffer.alloc(0) : next.subarray(0, 20);
      client.sendRaw(Buffer.concat([frames[i].subarray(20), carry]));
    }
    for (let i = 0; i < frames.length; i++) {
      await client.waitForFrame('RECEIPT', (f) => header(f, 'receipt-id') === `r-${i}`);
    }
    expect(client.all('ERROR')).to.deep.equal([]);
    expect(client.closed).to.equal(false);
  });

  it('websocket: a connection quiet between frames for longer than the bound is not cut', async () => {
    const client = await connect('websocket', '0,0');
    await sleep(FRAME_TIMEOUT_MS + 400);
    await client.sendWithReceipt('SEND', { destination: '/topic/quiet' }, 'after a pause');
    expect(client.all('ERROR')).to.deep.equal([]);
  });
});
