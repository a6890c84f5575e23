/**
 * Fault point 3: every configured limit refuses with an error that names it, counts the hit in
 * /metrics as stomp_limits_hit_total{limit=...}, and costs nobody else anything: sessions per user,
 * subscriptions per session, frames per second per session, REST body size.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawTransport } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { Bystander } from './harness';

describe('faults: limits', function () {
  this.timeout(60_000);
  let service: RunningService;
  let bystander: Bystander;
  const clients = new RawClients();
  const hits = (limit: string): Promise<number> =>
    metricValue(service.url, 'stomp_limits_hit_total', { limit });

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      maxSessionsPerUser: 3,
      maxSubscriptionsPerSession: 5,
      maxFramesPerSecond: 50,
      restBodyLimitBytes: 2048,
      authorizationFile: openAuthorizationFile(),
    });
    bystander = await Bystander.start(service, 'websocket');
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    bystander.stop();
    await service.stop();
  });

  for (const transport of ['tcp', 'websocket'] as RawTransport[]) {
    describe(`over ${transport}`, () => {
      it('sessions per user: the one over the limit is refused, the others keep going, a freed slot is usable', async () => {
        const before = await hits('sessions_per_user');
        const user = `many-${transport}`;
        const open = [];
        for (let i = 0; i < 3; i++) open.push(clients.add(await connectRaw(service, user, { transport })));
        let refusal = '';
        await connectRaw(service, user, { transport }).then(
          (c) => clients.add(c),
          (err: unknown) => (refusal = err instanceof Error ? err.message : String(err)),
        );
        expect(refusal).to.match(/user already has 3 sessions on this instance/);
        expect(await hits('sessions_per_user')).to.equal(before + 1);
        for (const c of open) await c.sendWithReceipt('SUBSCRIBE', { id: 'still', destination: '/topic/x' });
        open[0]!.send('DISCONNECT', {});
        await open[0]!.waitForClose();
        await sleep(50);
        clients.add(await connectRaw(service, user, { transport }));
      });

      it('subscriptions per session: the sixth SUBSCRIBE is refused; UNSUBSCRIBE frees a slot', async () => {
        const before = await hits('subscriptions_per_session');
        const client = clients.add(await connectRaw(service, `subs-${transport}`, { transport }));
        for (let i = 0; i < 5; i++)
          await client.sendWithReceipt('SUBSCRIBE', { id: `s${i}`, destination: `/topic/t${i}` });
        await client.sendWithReceipt('UNSUBSCRIBE', { id: 's0' });
        await client.sendWithReceipt('SUBSCRIBE', { id: 's5', destination: '/topic/t5' });
        client.send('SUBSCRIBE', { id: 's6', destination: '/topic/t6', receipt: 'over' });
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.equal('at most 5 subscriptions per session');
        expect(header(error, 'receipt-id')).to.equal('over');
        expect(await hits('subscriptions_per_session')).to.equal(before + 1);
      });

      it('frames per second: a steady rate under the limit passes, a flood is refused', async () => {
        const before = await hits('frames_per_second');
        const steady = clients.add(await connectRaw(service, `steady-${transport}`, { transport }));
        // 40 frames/s for 1.5 s: under 50/s, so never refused.
        for (let i = 0; i < 60; i++) {
          steady.send('SEND', { destination: '/topic/steady' }, String(i));
          await sleep(25);
        }
        await steady.sendWithReceipt('SEND', { destination: '/topic/steady' }, 'last');
        const flood = clients.add(await connectRaw(service, `flood-${transport}`, { transport }));
        for (let i = 0; i < 500; i++) flood.send('SEND', { destination: '/topic/flood' }, String(i));
        const error = await flood.expectErrorAndClose();
        expect(header(error, 'message')).to.equal('more than 50 frames per second');
        expect(await hits('frames_per_second')).to.equal(before + 1);
        expect(steady.closed).to.equal(false);
      });
    });
  }

  describe('over REST', () => {
    it('REST body size: over the limit is 413 with a reason, counted; at the limit it is taken', async () => {
      const token = tokenFor(service, 'backend', 'push');
      const post = (body: string): Promise<Response> =>
        fetch(`${service.url}/api/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
        });
      const before = await hits('rest_body');
      const envelope = (n: number): string =>
        JSON.stringify({ destination: '/topic/rest', body: 'x'.repeat(n) });
      const fits = envelope(2048 - envelope(0).length);
      expect(Buffer.byteLength(fits)).to.equal(2048);
      expect((await post(fits)).status).to.equal(202);
      const res = await post(envelope(4096));
      expect(res.status).to.equal(413);
      expect(await res.json()).to.deep.equal({
        error: 'payload_too_large',
        detail: 'request body is larger than the limit of 2048 bytes',
      });
      // 10 MB is refused from its Content-Length, without being read.
      const huge = await post(envelope(10 * 1024 * 1024));
      expect(huge.status).to.equal(413);
      expect(await hits('rest_body')).to.equal(before + 2);
    });
  });

  describe('afterwards', () => {
    it('the bystander received every push while the limits were hit around it', async () => {
      await bystander.stopAndCheck(10);
    });
  });
});
