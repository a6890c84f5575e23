/**
 * GET /api/admin/cluster and the /admin page on one instance (embedded broker): who may see them
 * (no token, a token without scope `admin`, production with and without ADMIN_ENABLED), and that
 * the figures are what the test did: sessions by transport, users, subscriptions, pushes taken,
 * MESSAGE frames written. Every answer is checked against the API description (harness call()).
 * The same view across three instances on RabbitMQ, in Chromium: test/e2e/admin.test.ts.
 */
import { expect } from 'chai';
import type { ClusterSnapshot } from '../../../app/admin/cluster-view';
import { call, errorOf, startRestApp, tokenFor, type RestApp } from '../rest/harness';
import { connectStomp, type ConnectedStomp } from '../../support/stomp-clients';
import { connectRaw, type RawStompClient } from '../../support/raw-stomp';
import type { RunningService } from '../../support/service';
import { startService } from '../../../app/server';
import { testSettings } from '../../support/service';
import { waitFor } from '../../support/wait';

const ANNOUNCE_MS = 100;

describe('GET /api/admin/cluster: access', () => {
  const apps: RestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  async function app(settings: Parameters<typeof startRestApp>[0] = {}): Promise<RestApp> {
    const started = await startRestApp(settings);
    apps.push(started);
    return started;
  }

  it('answers 401 without a token, saying how to send one', async () => {
    const dev = await app();
    const answer = await call(dev, 'GET', '/api/admin/cluster');
    expect(answer.status).to.equal(401);
    expect(errorOf(answer).detail).to.match(/missing bearer token/);
  });

  it("answers 403 to a token without scope 'admin', naming the scope", async () => {
    const dev = await app();
    for (const scope of ['', 'push', 'administrator']) {
      const answer = await call(dev, 'GET', '/api/admin/cluster', { token: tokenFor(dev, 'ops', scope) });
      expect(answer.status, scope).to.equal(403);
      expect(errorOf(answer).detail).to.match(/scope 'admin'/);
    }
  });

  it('answers 200 to a token with scope admin, among others', async () => {
    const dev = await app();
    const answer = await call(dev, 'GET', '/api/admin/cluster', {
      token: tokenFor(dev, 'ops', 'push admin'),
    });
    expect(answer.status).to.equal(200);
    expect(answer.headers.get('cache-control')).to.equal('no-store');
    const view = answer.body as ClusterSnapshot;
    expect(view.servedBy).to.equal(dev.settings.instanceId);
    expect(view.instances.map((i) => [i.id, i.self])).to.deep.equal([[dev.settings.instanceId, true]]);
  });

  it('is off with NODE_ENV=production: the call, the page and the API description say nothing of it', async () => {
    const prod = await app({ settings: { nodeEnv: 'production' } });
    const answer = await call(prod, 'GET', '/api/admin/cluster', { token: tokenFor(prod, 'ops', 'admin') });
    expect(answer.status).to.equal(404);
    expect(errorOf(answer).detail).to.match(/ADMIN_ENABLED=true/);
    for (const path of ['/admin', '/admin/', '/admin/admin.js']) {
      const page = await fetch(`${prod.url}${path}`, { redirect: 'manual' });
      expect(page.status, path).to.equal(404);
    }
    const document = (await call(prod, 'GET', '/api/openapi.json')).body as { paths: object };
    expect(Object.keys(document.paths)).to.not.include('/api/admin/cluster');
  });

  it('is on in production with ADMIN_ENABLED=true, still behind the admin scope', async () => {
    const prod = await app({ settings: { nodeEnv: 'production', adminEnabled: 'true' } });
    expect((await call(prod, 'GET', '/api/admin/cluster')).status).to.equal(401);
    const push = await call(prod, 'GET', '/api/admin/cluster', { token: tokenFor(prod, 'ops', 'push') });
    expect(push.status).to.equal(403);
    const admin = await call(prod, 'GET', '/api/admin/cluster', { token: tokenFor(prod, 'ops', 'admin') });
    expect(admin.status).to.equal(200);
    const page = await fetch(`${prod.url}/admin/`);
    expect(page.status).to.equal(200);
    expect(await page.text()).to.match(/<title>[^<]*cluster/i);
  });

  it('is off in development with ADMIN_ENABLED=false', async () => {
    const dev = await app({ settings: { adminEnabled: 'false' } });
    const answer = await call(dev, 'GET', '/api/admin/cluster', { token: tokenFor(dev, 'ops', 'admin') });
    expect(answer.status).to.equal(404);
    expect(errorOf(answer).detail).to.match(/ADMIN_ENABLED=false/);
    expect((await fetch(`${dev.url}/admin/`)).status).to.equal(404);
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const dev = await app();
    const answer = await call(dev, 'POST', '/api/admin/cluster', { token: tokenFor(dev, 'ops', 'admin') });
    expect(answer.status).to.equal(405);
    expect(answer.headers.get('allow')).to.match(/^GET\b/);
  });
});

describe('GET /api/admin/cluster: the figures of one instance', function () {
  this.timeout(20_000);
  let service: RunningService;
  const stomps: ConnectedStomp[] = [];
  const raws: RawStompClient[] = [];

  before(async () => {
    service = await startService({
      settings: testSettings({ directoryAnnounceMs: ANNOUNCE_MS, stompTcpPort: 0 }),
    });
  });
  after(async () => {
    await Promise.all(stomps.map((c) => c.close()));
    for (const raw of raws) raw.close();
    await service.stop();
  });

  async function view(): Promise<ClusterSnapshot> {
    const answer = await call(service, 'GET', '/api/admin/cluster', {
      token: service.verifier.issue('ops', 'admin', 60, {}),
    });
    expect(answer.status).to.equal(200);
    return answer.body as ClusterSnapshot;
  }

  it('counts sessions by transport, users, subscriptions, pushes and deliveries as they happen', async () => {
    const before = await view();
    expect(before.totals).to.include({ sessions: 0, users: 0, subscriptions: 0, pushes: 0, deliveries: 0 });

    // alice twice (WebSocket, SockJS), bob over raw TCP: 3 sessions, 2 users, 3 subscriptions.
    const aliceWs = await connectStomp(service, 'alice');
    const aliceSockJs = await connectStomp(service, 'alice', {
      transport: 'sockjs',
      sockjsTransports: ['xhr-streaming'],
    });
    stomps.push(aliceWs, aliceSockJs);
    const aliceLogs = [
      await aliceWs.subscribe('/user/queue/greetings'),
      await aliceSockJs.subscribe('/user/queue/greetings'),
    ];
    const bob = await connectRaw(service, 'bob', { transport: 'tcp' });
    raws.push(bob);
    await bob.sendWithReceipt('SUBSCRIBE', { id: 'b1', destination: '/topic/news' });

    const pushes = 4;
    const token = service.verifier.issue('backend', 'push', 60, {});
    for (let i = 0; i < pushes; i++) {
      const answer = await call(service, 'POST', '/api/users/alice/messages', {
        token,
        body: { destination: '/queue/greetings', body: `hello ${i}` },
      });
      expect(answer.status).to.equal(202);
    }
    await waitFor(() => aliceLogs.every((log) => log.messages.length === pushes), 5_000, 'pushes arrive');

    // The counters are sampled once per announce period: wait for a sample after the last delivery.
    let got: ClusterSnapshot | undefined;
    await waitFor(
      async () => {
        got = await view();
        return got.totals.deliveries === 2 * pushes;
      },
      5_000,
      'deliveries counted',
    );
    const seen = got!;
    expect(seen.totals).to.deep.include({
      instances: 1,
      sessions: 3,
      byTransport: { websocket: 1, 'sockjs/xhr-streaming': 1, tcp: 1 },
      users: 2,
      subscriptions: 3,
      brokerReady: 1,
      pushes,
      deliveries: 2 * pushes,
      slowConsumerCuts: 0,
    });
    const [self] = seen.instances;
    expect(self).to.deep.include({ sessions: 3, users: 2, subscriptions: 3, heardAgoMs: 0 });
    expect(self!.stats!.broker).to.deep.equal({ kind: 'embedded', ready: true, reconnects: 0 });
    expect(seen.history.intervalMs).to.equal(ANNOUNCE_MS);
    expect(seen.history.points.length).to.be.greaterThan(0);
    expect(seen.history.points.some((p) => p.pushRate > 0 && p.deliveryRate > 0)).to.equal(true);

    bob.close();
    await aliceSockJs.close();
    await waitFor(async () => (await view()).totals.sessions === 1, 5_000, 'closed sessions leave the view');
    const after = await view();
    expect(after.totals).to.deep.include({
      users: 1,
      subscriptions: 1,
      byTransport: { websocket: 1 },
    });
  });
  it('shows a draining instance, then the broker down with the reason once it is lost', async () => {
    service.admission.refuseNewWork();
    await waitFor(async () => (await view()).instances[0]!.stats!.draining, 5_000, 'draining in the view');
    await service.broker.stop();
    await waitFor(
      async () => (await view()).instances[0]!.stats!.broker.ready === false,
      5_000,
      'the stopped broker in the view',
    );
    const seen = await view();
    expect(seen.totals.brokerReady).to.equal(0);
    expect(seen.instances[0]!.stats!.broker).to.deep.include({
      kind: 'embedded',
      ready: false,
      reason: 'the embedded broker is stopped',
    });
  });
});
