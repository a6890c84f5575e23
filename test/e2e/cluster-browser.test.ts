/**
 * The product as users run it: three instances on RabbitMQ behind nginx (docker/nginx/nginx.conf,
 * started by test/support/cluster.ts exactly as `npm run cluster` does), and the demo page in
 * headless Chromium through nginx over TLS (https:// and wss://, the cluster's development
 * certificate; Chromium trusts that certificate's key and no other). Alice opens it twice (plain WebSocket; SockJS limited to
 * xhr-streaming, whose every request nginx must keep on one instance) on two different instances,
 * Bob once. A push to Alice made directly on the third instance reaches both of her pages and not
 * Bob's; a chat message sent from the SockJS page (through xhr_send) reaches every page.
 *
 * Screenshots of the pages go to test/output/screenshots/, and test/output/cluster-browser.json
 * records which instance each page landed on.
 *
 * User names and the chat room carry a per-run suffix, instance ids too: RabbitMQ is shared with
 * whatever else runs on this machine (other tests, a developer's `npm run cluster`).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  EXCHANGES,
  QUEUE_ROLES,
  instanceQueueName,
  userRoutingKey,
} from '../../app/broker/rabbitmq/topology';
import {
  CHROMIUM_PATH,
  closePage,
  launchBrowser,
  openPage as openBrowserPage,
  pageConsole,
  screenshot,
} from '../support/browser';
import { PROJECT_ROOT, startCluster, type Cluster } from '../support/cluster';
import { findNginx, spkiFingerprint } from '../support/nginx';
import { listBindings, waitForRabbit } from '../support/rabbitmq';
import { sleep, waitFor } from '../support/wait';

const OUTPUT = join(PROJECT_ROOT, 'test/output');
/** New SockJS sessions opened at most to get Alice's second page onto another instance. */
const PLACEMENT_ATTEMPTS = 12;

interface OpenedPage {
  label: string;
  user: string;
  page: Page;
  instance: string;
  transport: string;
  session: string;
  screenshot?: string;
}

interface SessionsAnswer {
  sessions: {
    sessionId: string;
    instance: string;
    transport: string;
    subscriptions: { destination: string }[];
  }[];
}

describe('cluster in Chromium: three instances behind nginx, pages as users open them', function () {
  this.timeout(180_000);
  const run = randomBytes(3).toString('hex');
  const alice = `alice-${run}`;
  const bob = `bob-${run}`;
  const room = `e2e-${run}`;
  let cluster: Cluster | undefined;
  let browser: Browser | undefined;
  const pages: OpenedPage[] = [];

  before(async function () {
    const missing = [findNginx() ? '' : 'nginx', existsSync(CHROMIUM_PATH) ? '' : CHROMIUM_PATH].filter(
      Boolean,
    );
    if (missing.length > 0) {
      // CI installs both (.ci/run); elsewhere say what is missing rather than fail.
      if (process.env.CI) throw new Error(`missing ${missing.join(' and ')}`);
      console.warn(`      skipped: ${missing.join(' and ')} not installed`);
      this.skip();
    }
    await waitForRabbit();
    cluster = await startCluster({
      instances: 3,
      basePort: 0,
      lbPort: 0,
      instancePrefix: `e2e-${run}-`,
      logLevel: process.env.TEST_LOG_LEVEL ?? 'warn',
      // A quicker session directory and drain than production defaults; nothing else differs.
      env: { DIRECTORY_ANNOUNCE_MS: '1000', SHUTDOWN_TIMEOUT_MS: '2000' },
      tlsPort: 0,
    });
    browser = await launchBrowser({ trustedKeys: [spkiFingerprint(cluster.tls!.cert)] });
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const opened of pages)
      console.log(
        `      console of ${opened.label}:\n        ${pageConsole(opened.page).slice(-15).join('\n        ')}`,
      );
    if (cluster)
      console.log(`      cluster logs:\n        ${cluster.recentLogs().slice(-40).join('\n        ')}`);
  });

  after(async () => {
    const placement = pages.map(({ label, user, instance, transport, session, screenshot }) => ({
      label,
      user,
      instance,
      transport,
      session,
      screenshot,
    }));
    if (placement.length > 0) {
      mkdirSync(OUTPUT, { recursive: true });
      writeFileSync(join(OUTPUT, 'cluster-browser.json'), `${JSON.stringify(placement, null, 2)}\n`);
      for (const p of placement) console.log(`      ${p.label}: instance ${p.instance}, ${p.transport}`);
    }
    await browser?.close();
    await cluster?.stop();
  });

  function instanceUrl(id: string): string {
    const found = cluster!.instances.find((instance) => instance.id === id);
    if (!found) throw new Error(`no instance ${id} in this cluster (the page shows another cluster's?)`);
    return found.url;
  }

  /** Opens the demo page through nginx over TLS in a fresh browser context and waits for CONNECTED. */
  async function openPage(label: string, user: string, query: Record<string, string>): Promise<OpenedPage> {
    const params = new URLSearchParams({ user, room, autoconnect: '1', ...query });
    const page = await openBrowserPage(browser!, `${cluster!.lbTlsUrl!}/?${params.toString()}`);
    expect(new URL(page.url()).protocol, 'the page over TLS').to.equal('https:');
    await page.locator('[data-testid="state"][data-state="connected"]').waitFor({ timeout: 30_000 });
    const text = async (testId: string): Promise<string> =>
      ((await page.locator(`[data-testid="${testId}"]`).textContent()) ?? '').trim();
    return {
      label,
      user,
      page,
      instance: await text('instance'),
      transport: await text('transport'),
      session: await text('session'),
    };
  }

  async function pushToken(instance: string): Promise<string> {
    const res = await fetch(`${instanceUrl(instance)}/api/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: `e2e-backend-${run}`, scope: 'push' }),
    });
    expect(res.status, 'dev token').to.equal(200);
    return ((await res.json()) as { token: string }).token;
  }

  /** Waits until `instance` lists `count` sessions of `user`, each subscribed to `destination`. */
  async function waitForSessions(
    instance: string,
    user: string,
    count: number,
    destination: string,
  ): Promise<void> {
    const token = await pushToken(instance);
    await waitFor(
      async () => {
        const res = await fetch(`${instanceUrl(instance)}/api/users/${user}/sessions`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const { sessions } = (await res.json()) as SessionsAnswer;
        const subscribed = sessions.filter((s) =>
          s.subscriptions.some((sub) => sub.destination === destination),
        );
        return subscribed.length === count;
      },
      20_000,
      `${instance} to list ${count} session(s) of ${user} subscribed to ${destination}`,
    );
  }

  function messages(opened: OpenedPage, text: string): ReturnType<Page['locator']> {
    return opened.page.locator('[data-testid="message"]', { hasText: text });
  }

  it('opens Alice over WebSocket and over SockJS xhr-streaming on two instances, and Bob', async () => {
    pages.push(await openPage('alice (websocket)', alice, { transport: 'websocket' }));
    expect(pages[0]!.transport).to.equal('websocket');

    // nginx hashes each SockJS session id: a new session (a new page) lands anywhere. Retry,
    // bounded, until it lands elsewhere than Alice's first page.
    let second: OpenedPage | undefined;
    for (let attempt = 1; attempt <= PLACEMENT_ATTEMPTS && !second; attempt++) {
      const candidate = await openPage('alice (sockjs xhr-streaming)', alice, {
        transport: 'sockjs',
        sockjs_transports: 'xhr-streaming',
      });
      if (candidate.instance !== pages[0]!.instance) second = candidate;
      else await closePage(candidate.page);
    }
    expect(second, `a SockJS page on another instance than ${pages[0]!.instance}`).to.not.equal(undefined);
    expect(second!.transport).to.equal('xhr-streaming');
    pages.push(second!);

    pages.push(await openPage('bob (sockjs)', bob, { transport: 'sockjs' }));
    for (const opened of pages) expect(cluster!.instances.map((i) => i.id)).to.include(opened.instance);
  });

  it('delivers a push made on the third instance to both Alice pages and not to Bob', async () => {
    const [wsPage, sockjsPage, bobPage] = pages as [OpenedPage, OpenedPage, OpenedPage];
    const third = cluster!.instances.find((i) => i.id !== wsPage.instance && i.id !== sockjsPage.instance)!;

    // Where Alice is, as any instance tells it; then RabbitMQ binds her key to both of hers.
    await waitForSessions(third.id, alice, 2, '/user/queue/greetings');
    await waitFor(
      async () => {
        const bound = new Set(
          (await listBindings())
            .filter((b) => b.source === EXCHANGES.user && b.routing_key === userRoutingKey(alice))
            .map((b) => b.destination),
        );
        return [wsPage, sockjsPage].every((p) => bound.has(instanceQueueName(p.instance, QUEUE_ROLES.users)));
      },
      10_000,
      `RabbitMQ bindings of ${alice}'s queues on ${wsPage.instance} and ${sockjsPage.instance}`,
    );

    const text = `push-${run}-${Date.now()}`;
    const res = await fetch(`${third.url}/api/users/${alice}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await pushToken(third.id)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ destination: '/queue/greetings', body: { text } }),
    });
    expect(res.status, await res.clone().text()).to.equal(202);

    for (const opened of [wsPage, sockjsPage]) {
      await messages(opened, text).first().waitFor({ timeout: 15_000 });
      const entry = messages(opened, text).first();
      const destination = await entry.locator('[data-testid="message-destination"]').textContent();
      expect(destination, opened.label).to.equal('/user/queue/greetings');
    }
    // Both of Alice's pages have it; Bob's had the same time and then some to (wrongly) get it.
    await sleep(1_500);
    expect(await messages(bobPage, text).count(), "the push on Bob's page").to.equal(0);
    for (const opened of [wsPage, sockjsPage])
      expect(await messages(opened, text).count(), opened.label).to.equal(1);
  });

  it('carries a chat message sent from the SockJS page to every page', async () => {
    const [wsPage, sockjsPage, bobPage] = pages as [OpenedPage, OpenedPage, OpenedPage];
    await waitForSessions(bobPage.instance, bob, 1, `/topic/chat.${room}`);
    await waitForSessions(bobPage.instance, alice, 2, `/topic/chat.${room}`);

    // Sent over SockJS xhr_send: it only works if nginx sends it to the instance holding the session.
    const text = `chat-${run}-${Date.now()}`;
    await sockjsPage.page.locator('[data-testid="chat-text"]').fill(text);
    await sockjsPage.page.locator('[data-testid="send-chat"]').click();

    for (const opened of [wsPage, sockjsPage, bobPage]) {
      await messages(opened, text).first().waitFor({ timeout: 15_000 });
      const entry = messages(opened, text).first();
      expect(await entry.locator('[data-testid="message-destination"]').textContent(), opened.label).to.equal(
        `/topic/chat.${room}`,
      );
      expect(await entry.locator('[data-testid="message-sender"]').textContent(), opened.label).to.include(
        alice,
      );
    }
    await sleep(500);
    for (const opened of pages)
      expect(await messages(opened, text).count(), `${opened.label}: exactly once`).to.equal(1);

    // nginx's own account: every request of each SockJS session went to one instance, and the
    // xhr_send carrying the chat went to the instance the SockJS page shows.
    const upstreams = new Map<string, Set<string>>();
    const sends: string[] = [];
    for (const line of cluster!.accessLog()) {
      const match = /"\w+ \/ws\/[^/]+\/([^/]+)\/(\w+)[^"]*" .* upstream=([^\s,]+) key=(\S+)$/.exec(line);
      if (!match) continue;
      const [, session, transport, upstream, key] = match as unknown as [
        string,
        string,
        string,
        string,
        string,
      ];
      expect(key, line).to.equal(session);
      upstreams.set(session, (upstreams.get(session) ?? new Set<string>()).add(upstream));
      if (transport === 'xhr_send') sends.push(upstream);
    }
    for (const [session, seen] of upstreams) expect([...seen], `SockJS session ${session}`).to.have.length(1);
    const sockjsPort = cluster!.instances.find((i) => i.id === sockjsPage.instance)!.port;
    expect(sends, 'xhr_send requests').to.include(`127.0.0.1:${sockjsPort}`);
  });

  it('saves a screenshot of each page, none of them blank', async () => {
    for (const opened of pages) {
      const name = `cluster-${opened.label.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '')}`;
      opened.screenshot = (await screenshot(opened.page, name)).slice(PROJECT_ROOT.length + 1);
    }
  });
});
