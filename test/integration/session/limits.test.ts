/**
 * Per-session and per-user limits end the offending session with an ERROR that says which limit,
 * count the hit in /metrics (`stomp_limits_hit_total{limit=...}`), and leave everyone else alone:
 * frames per second, sessions per user, and a consumer that stops reading (send buffer).
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, openTcp, RawClients } from '../../support/raw-stomp';
import { publishDirect, startTestService, tokenFor, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { metricValue } from '../../support/metrics';
import { userTarget } from '../../support/broker-harness';

describe('session: limits', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      maxFramesPerSecond: 10,
      maxSessionsPerUser: 2,
      sendBufferLimitBytes: 64 * 1024,
      sendTimeLimitMs: 2000,
    });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const limitHits = (limit: string): Promise<number> =>
    metricValue(service.url, 'stomp_limits_hit_total', { limit });

  it('more frames per second than allowed → ERROR naming the rate, counted in /metrics', async () => {
    const before = await limitHits('frames_per_second');
    const witness = clients.add(await connectRaw(service, 'bob'));
    const client = clients.add(await connectRaw(service, 'alice'));
    // The bucket holds two seconds' worth (20); CONNECT took one.
    for (let i = 0; i < 30; i++) client.send('SUBSCRIBE', { id: `s${i}`, destination: '/topic/a' });
    const error = await client.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/more than 10 frames per second/);
    expect(client.all('ERROR')).to.have.length(1);
    expect(await limitHits('frames_per_second')).to.equal(before + 1);
    await witness.sendWithReceipt('SUBSCRIBE', { id: 'w', destination: '/topic/a' });
  });

  it('a client within the rate is never cut off', async () => {
    const client = clients.add(await connectRaw(service, 'carol'));
    for (let i = 0; i < 8; i++)
      await client.sendWithReceipt('SUBSCRIBE', { id: `s${i}`, destination: '/topic/a' });
    for (let i = 0; i < 8; i++) await client.sendWithReceipt('UNSUBSCRIBE', { id: `s${i}` });
    expect(client.all('ERROR')).to.have.length(0);
  });

  it('one session more than MAX_SESSIONS_PER_USER → ERROR, counted; other users unaffected; room again after a close', async () => {
    const before = await limitHits('sessions_per_user');
    const first = clients.add(await connectRaw(service, 'dave'));
    clients.add(await connectRaw(service, 'dave', { transport: 'tcp' }));
    const third = clients.add(await openTcp(service));
    third.send('CONNECT', { 'accept-version': '1.2', host: 'h', passcode: tokenFor(service, 'dave') });
    const error = await third.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/already has 2 sessions/);
    expect(await limitHits('sessions_per_user')).to.equal(before + 1);

    clients.add(await connectRaw(service, 'erin'));
    first.close();
    await waitFor(() => service.registry.countForUser('dave') === 1, 2000, 'dave to have one session left');
    clients.add(await connectRaw(service, 'dave'));
  });

  it('a consumer that stops reading is dropped with an ERROR once its send buffer passes the limit; others keep receiving', async () => {
    const before = await limitHits('send_buffer');
    const slow = clients.add(await connectRaw(service, 'slowpoke', { transport: 'tcp' }));
    const fast = clients.add(await connectRaw(service, 'speedy', { transport: 'tcp' }));
    for (const c of [slow, fast])
      await c.sendWithReceipt('SUBSCRIBE', { id: 'feed', destination: '/user/queue/feed' });
    slow.pause();
    const chunk = Buffer.alloc(32 * 1024, 0x78);
    let sent = 0;
    // Enough to fill loopback socket buffers several times over; stop as soon as it is dropped.
    while (sent < 1000 && service.registry.countForUser('slowpoke') > 0) {
      await publishDirect(service, userTarget('slowpoke', 'feed'), chunk);
      await publishDirect(service, userTarget('speedy', 'feed'), `m${sent}`);
      sent++;
      if (sent % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor(
      () => service.registry.countForUser('slowpoke') === 0,
      3000,
      'the slow consumer to be dropped',
    );
    expect(await limitHits('send_buffer')).to.equal(before + 1);
    await waitFor(() => fast.all('MESSAGE').length === sent, 3000, `the fast consumer to get all ${sent}`);

    slow.resume();
    const error = await slow.waitForFrame('ERROR', 5000);
    expect(header(error, 'message')).to.match(/client too slow/);
  });
});
