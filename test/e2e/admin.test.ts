/**
 * The cluster view (/admin) in headless Chromium across three instances on RabbitMQ (child
 * processes, test/support/instances.ts). The page is opened on the first instance only; what it
 * shows of all three must be what the test did: sessions by instance and transport (Node clients
 * and a demo page in Chromium), users online, subscriptions, pushes taken and MESSAGE frames
 * written, a slow consumer cut, then an instance killed with SIGKILL leaving the view. It must stay
 * readable at 390 px wide (no sideways scrolling). Screenshots go to test/output/screenshots/
 * (admin-*.png) and are checked non-blank.
 *
 * User names, topics and instance ids carry a per-run suffix: RabbitMQ is shared with other runs.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import type { ClusterSnapshot, InstanceRow } from '../../app/admin/cluster-view';
import {
  closePage,
  launchBrowser,
  openPage,
  pageConsole,
  pageProblems,
  screenshot,
} from '../support/browser';
import { startInstances, stopInstances, type Instance } from '../support/instances';
import { metricSum } from '../support/metrics';
import { waitForRabbit } from '../support/rabbitmq';
import { createVhost, type TestVhost } from '../support/rabbit-vhost';
import { createTestDatabase, dropTestDatabase, testDatabaseUrl } from '../support/postgres-databases';
import { waitFor } from '../support/wait';
import { api, publish, pushToUser } from '../integration/cluster/api';
import { StompClients, type MessageLog } from '../support/stomp-clients';
import { stalledWebSocket, type Stalled } from '../integration/faults/consumers';

const ANNOUNCE_MS = 500;
/** Most pushes sent to the stalled client before its cut must have shown. */
const FLOOD_PUSHES_MAX = 400;
/** A body near REST_BODY_LIMIT_BYTES (64 KiB), so the stalled client's backlog grows quickly. */
const FLOOD_BODY = 'x'.repeat(60 * 1024);

describe('cluster view (/admin) in Chromium across three instances', function () {
  this.timeout(180_000);
  const run = randomBytes(3).toString('hex');
  const alice = `alice-${run}`;
  const bob = `bob-${run}`;
  const carol = `carol-${run}`;
  const dave = `dave-${run}`;
  const topic = `/topic/admin-${run}`;
  const clients = new StompClients();
  let vhost: TestVhost | undefined;
  let database: string | undefined;
  let instances: Instance[] = [];
  let browser: Browser | undefined;
  let admin: Page | undefined;
  let demo: Page | undefined;
  let stalled: Stalled | undefined;
  const shots: string[] = [];

  before(async () => {
    await waitForRabbit();
    // A vhost of its own: the cluster view shows every instance on the vhost, and other runs share
    // the node (their directories would be listed too).
    vhost = await createVhost(`stomp-relay-admin-${run}`);
    // The demo page subscribes to its inbox: a cluster as deployed has a store for it.
    database = await createTestDatabase();
    instances = await startInstances(3, {
      prefix: `adm-${run}-`,
      announceMs: ANNOUNCE_MS,
      env: {
        BROKER_URL: vhost.stompUrl,
        AMQP_URL: vhost.amqpUrl,
        INBOX_DATABASE_URL: testDatabaseUrl(database),
        // A stalled client is cut after 64 KiB waiting in the instance (kernel buffers come first).
        SEND_BUFFER_LIMIT_BYTES: String(64 * 1024),
        SHUTDOWN_TIMEOUT_MS: '2000',
      },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    stalled?.close();
    await clients.closeAll();
    await browser?.close();
    await stopInstances(instances.filter((i) => !i.exited));
    await vhost?.remove();
    if (database) await dropTestDatabase(database);
    if (shots.length > 0) console.log(`      screenshots:\n        ${shots.join('\n        ')}`);
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const [label, page] of [
      ['admin page', admin],
      ['demo page', demo],
    ] as const) {
      if (page)
        console.log(
          `      console of the ${label}:\n        ${pageConsole(page).slice(-15).join('\n        ')}`,
        );
    }
    for (const instance of instances) {
      console.log(`      logs of ${instance.id}:\n        ${instance.logs().slice(-15).join('\n        ')}`);
    }
  });

  async function view(instance: Instance): Promise<ClusterSnapshot> {
    const res = await fetch(`${instance.url}/api/admin/cluster`, {
      headers: { authorization: `Bearer ${instance.token('ops', 'admin')}` },
    });
    expect(res.status).to.equal(200);
    return (await res.json()) as ClusterSnapshot;
  }

  function row(snapshot: ClusterSnapshot, instance: Instance): InstanceRow {
    const found = snapshot.instances.find((r) => r.id === instance.id);
    if (!found) throw new Error(`${instance.id} is not in the view of ${snapshot.servedBy}`);
    return found;
  }

  async function text(page: Page, testId: string): Promise<string> {
    return ((await page.locator(`[data-testid="${testId}"]`).first().textContent()) ?? '').trim();
  }

  async function cardText(page: Page, instance: Instance, testId: string): Promise<string> {
    const card = page.locator(`[data-instance="${instance.id}"]`);
    return ((await card.locator(`[data-testid="${testId}"]`).textContent()) ?? '').trim();
  }

  /** Waits until every figure the page shows equals the expected one (it refreshes every 500 ms). */
  async function pageShows(page: Page, expected: Record<string, string>, what: string): Promise<void> {
    await waitFor(
      async () => {
        for (const [id, value] of Object.entries(expected)) {
          const got = await text(page, id);
          if (got !== value) throw new Error(`${id} shows '${got}', expected '${value}'`);
        }
        return true;
      },
      15_000,
      what,
    );
  }

  it('shows every instance, its sessions by transport, users and subscriptions, as the test made them', async () => {
    const [one, two, three] = instances as [Instance, Instance, Instance];
    admin = await openPage(browser!, `${one.url}/admin/?refresh_ms=500`);
    await admin.locator('[data-testid="view-state"][data-state="live"]').waitFor({ timeout: 15_000 });

    // One: alice over /stomp (1 subscription), carol over /stomp (2). Two: alice over SockJS (1),
    // bob's demo page in Chromium (greetings, echo, its chat room and its inbox: the page's own
    // business, so the count is read from the service, below).
    const aliceWs = await clients.connect(one, alice);
    const carolWs = await clients.connect(one, carol);
    const aliceSockJs = await clients.connect(two, alice, { transport: 'sockjs' });
    const subs: MessageLog[] = [
      await aliceWs.subscribe('/user/queue/greetings'),
      await carolWs.subscribe('/user/queue/greetings'),
      await carolWs.subscribe(topic),
      await aliceSockJs.subscribe('/user/queue/greetings'),
    ];
    demo = await openPage(browser!, `${two.url}/?user=${bob}&transport=sockjs&room=r${run}&autoconnect=1`);
    await demo.locator('[data-testid="state"][data-state="connected"]').waitFor({ timeout: 30_000 });
    // The page's subscriptions, as the service lists them: greetings, echo and the room, made one
    // after another after CONNECTED, and the inbox where the instance has one: the page asks /readyz
    // first, so that SUBSCRIBE comes at no fixed time. Wait for all of them, reading on every check.
    const readiness = await api(two, 'GET', '/readyz');
    const pageSubsExpected = 3 + ((readiness.body as { inbox?: string }).inbox === 'off' ? 0 : 1);
    let pageSubs = 0;
    const readPageSubs = async (): Promise<number> => {
      const answer = await api(two, 'GET', `/api/users/${bob}/sessions`);
      const sessions = (answer.body as { sessions: { instance: string; subscriptions: unknown[] }[] })
        .sessions;
      expect(sessions.map((x) => x.instance)).to.deep.equal([two.id]);
      expect(sessions[0]!.subscriptions.length).to.equal(pageSubsExpected);
      pageSubs = sessions[0]!.subscriptions.length;
      return 4 + pageSubs;
    };

    await waitFor(
      async () => {
        const allSubs = await readPageSubs();
        const seen = await view(one);
        expect(seen.totals).to.deep.include({ instances: 3, sessions: 4, users: 3, subscriptions: allSubs });
        expect(row(seen, one)).to.deep.include({ sessions: 2, users: 2, subscriptions: 3 });
        expect(row(seen, one).byTransport).to.deep.equal({ websocket: 2 });
        expect(row(seen, two)).to.deep.include({ sessions: 2, users: 2, subscriptions: 1 + pageSubs });
        expect(row(seen, three)).to.deep.include({ sessions: 0, users: 0, subscriptions: 0 });
        for (const r of seen.instances) {
          expect(r.stats?.broker, r.id).to.deep.include({ kind: 'rabbitmq', ready: true });
          // BROKER_POOL_SIZE is 2 by default: both STOMP connections up.
          expect(r.stats?.broker.connections, r.id).to.deep.equal({ up: 2, total: 2 });
        }
        return true;
      },
      10_000,
      'the view of instance one to hold every session of the cluster',
    );
    const allSubs = 4 + pageSubs;
    const seen = await view(one);
    // Both SockJS sessions report their sub-transport; the page's and the Node client's may differ.
    const twoTransports = row(seen, two).byTransport;
    expect(
      Object.keys(twoTransports).every((t) => t.startsWith('sockjs/')),
      JSON.stringify(twoTransports),
    ).to.equal(true);
    expect(Object.values(twoTransports).reduce((a, b) => a + b, 0)).to.equal(2);
    expect(seen.totals.byTransport.websocket).to.equal(2);
    // Any instance answers for all: instance three sees the same sessions.
    expect((await view(three)).totals).to.deep.include({
      instances: 3,
      sessions: 4,
      users: 3,
      subscriptions: allSubs,
    });

    await pageShows(
      admin,
      {
        'total-instances': '3',
        'total-sessions': '4',
        'total-users': '3',
        'total-subscriptions': String(allSubs),
        'total-broker-ready': '3 of 3',
      },
      'the page to show the cluster',
    );
    expect(await admin.locator('[data-instance]').count()).to.equal(3);
    expect(await cardText(admin, one, 'sessions')).to.equal('2');
    expect(await cardText(admin, one, 'by-transport')).to.equal('websocket 2');
    expect(await cardText(admin, two, 'sessions')).to.equal('2');
    expect(await cardText(admin, two, 'subscriptions')).to.equal(String(1 + pageSubs));
    expect(await cardText(admin, three, 'sessions')).to.equal('0');
    expect(await cardText(admin, one, 'broker-state')).to.equal('rabbitmq ready');
    expect(await cardText(admin, two, 'connections')).to.equal('2 of 2 up');

    // Pushes, all taken by instance three: 5 to alice (2 sessions), 2 to bob's page, 1 to the topic.
    for (let i = 0; i < 5; i++) {
      expect((await pushToUser(three, alice, '/queue/greetings', `a${i}`)).status).to.equal(202);
    }
    for (let i = 0; i < 2; i++) {
      expect((await pushToUser(three, bob, '/queue/greetings', `hello bob ${i}`)).status).to.equal(202);
    }
    expect((await publish(three, topic, 'news')).status).to.equal(202);
    await Promise.all([subs[0]!.waitForCount(5), subs[3]!.waitForCount(5), subs[2]!.waitForCount(1)]);
    await demo.locator('[data-testid="message"]', { hasText: 'hello bob 1' }).waitFor({ timeout: 10_000 });
    expect(subs[1]!.messages).to.have.length(0);

    await waitFor(
      async () => {
        const after = await view(one);
        expect(after.totals).to.deep.include({ pushes: 8, deliveries: 13, slowConsumerCuts: 0 });
        expect(row(after, three).stats).to.deep.include({ pushes: 8, deliveries: 0 });
        expect(row(after, one).stats).to.deep.include({ pushes: 0, deliveries: 6 });
        expect(row(after, two).stats).to.deep.include({ pushes: 0, deliveries: 7 });
        return true;
      },
      10_000,
      'pushes and deliveries in the view',
    );
    await pageShows(
      admin,
      { 'total-pushes': '8 in all', 'total-deliveries': '13 in all', 'total-cuts': '0' },
      'the page to count pushes and deliveries',
    );
    // The rates were above zero for a while, and the chart drew them. A history point is sampled on
    // its own period, after the announcements the totals above come from: wait for the one that
    // holds the pushes (CI read the history one sample too early).
    await waitFor(
      async () => {
        const points = (await view(one)).history.points;
        return points.some((p) => p.pushRate > 0) && points.some((p) => p.deliveryRate > 0);
      },
      10_000,
      'a history point with the pushes and deliveries',
    );
    const history = (await view(one)).history;
    expect(history.intervalMs).to.equal(ANNOUNCE_MS);
    expect(history.points.some((p) => p.pushRate > 0)).to.equal(true);
    expect(history.points.some((p) => p.deliveryRate > 0)).to.equal(true);
    const drawn = await admin
      .locator('[data-testid="chart"] polyline[data-series="deliveryRate"]')
      .getAttribute('points');
    const heights = (drawn ?? '').split(' ').map((xy) => Number(xy.split(',')[1]));
    expect(heights.length).to.be.greaterThan(1);
    expect(Math.min(...heights), 'a point above the baseline').to.be.lessThan(190);

    shots.push(await screenshot(admin, 'admin-cluster'));
    expect(pageProblems(admin)).to.deep.equal([]);
  });

  it('counts a slow consumer cut on the instance that cut it', async () => {
    const [one, , three] = instances as [Instance, Instance, Instance];
    stalled = await stalledWebSocket({ url: three.url }, three.token(dave), ['/user/queue/flood']);
    const pushesBefore = (await view(one)).totals.pushes;
    let sent = 0;
    while (
      sent < FLOOD_PUSHES_MAX &&
      (await metricSum(three.url, 'stomp_limits_hit_total', { limit: 'send_buffer' })) === 0
    ) {
      const answer = await pushToUser(one, dave, '/queue/flood', FLOOD_BODY);
      expect(answer.status).to.equal(202);
      sent++;
    }
    expect(sent, 'pushes until the cut').to.be.below(FLOOD_PUSHES_MAX);
    await waitFor(
      async () => {
        const seen = await view(one);
        expect(row(seen, three).stats?.slowConsumerCuts).to.equal(1);
        expect(seen.totals.slowConsumerCuts).to.equal(1);
        expect(seen.totals.pushes).to.equal(pushesBefore + sent);
        // What was written to dave before the cut is counted where it was written.
        const written = await Promise.all(
          instances.map((i) =>
            metricSum(i.url, 'stomp_frames_total', { direction: 'out', command: 'MESSAGE' }),
          ),
        );
        expect(seen.totals.deliveries).to.equal(written.reduce((a, b) => a + b, 0));
        expect(row(seen, three).sessions).to.equal(0);
        return true;
      },
      10_000,
      'the cut in the view',
    );
    await pageShows(admin!, { 'total-cuts': '1', 'total-sessions': '4' }, 'the page to show the cut');
    expect(await cardText(admin!, three, 'cuts')).to.equal('1');
  });

  it('stays readable at 390 px wide: no sideways scrolling, every figure on screen', async () => {
    const page = admin!;
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    // Measured in one go: the page redraws its cards on every refresh. (No named functions inside:
    // the test runner's transpiler would add a helper the page lacks.)
    const layout = await page.evaluate(() => {
      const boxes = ['total-sessions', 'total-users', 'chart', 'instances']
        .map((id) => document.querySelector(`[data-testid="${id}"]`))
        .concat([...document.querySelectorAll('[data-instance]')]);
      return {
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
        found: boxes.filter((el) => el !== null).length,
        cards: document.querySelectorAll('[data-instance]').length,
        widest: Math.max(...boxes.map((el) => (el ? el.getBoundingClientRect().right : Infinity))),
        leftmost: Math.min(...boxes.map((el) => (el ? el.getBoundingClientRect().left : -Infinity))),
      };
    });
    expect(layout.scroll, 'page width at 390 px').to.be.at.most(layout.client);
    expect(layout.cards).to.equal(3);
    expect(layout.found).to.equal(4 + layout.cards);
    expect(layout.leftmost).to.be.at.least(0);
    expect(layout.widest).to.be.at.most(layout.client);
    shots.push(await screenshot(page, 'admin-cluster-390px'));
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('drops an instance killed with SIGKILL within 3 announce periods, live', async () => {
    const [one, two, three] = instances as [Instance, Instance, Instance];
    await closePage(demo!);
    demo = undefined;
    await three.kill9();
    await waitFor(
      async () => {
        const seen = await view(one);
        expect(seen.instances.map((r) => r.id).sort()).to.deep.equal([one.id, two.id].sort());
        return true;
      },
      3 * ANNOUNCE_MS + 5_000,
      'instance three to leave the view',
    );
    await pageShows(
      admin!,
      { 'total-instances': '2', 'total-sessions': '3', 'total-users': '2' },
      'the page without three',
    );
    expect(await admin!.locator('[data-instance]').count()).to.equal(2);
    shots.push(await screenshot(admin!, 'admin-cluster-after-kill'));
    expect(pageProblems(admin!)).to.deep.equal([]);
  });
});
