/**
 * The demo page in headless Chromium against one real instance (embedded broker): connect as alice
 * over SockJS and over plain WebSocket, see REST pushes, echo and chat arrive, force SockJS down to
 * xhr-streaming, use the curl line the page shows, and check that what arrives is shown as text.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { closePage, launchBrowser, openPage, pageProblems, screenshot } from '../support/browser';
import { startTestService, tokenFor, type RunningService } from '../support/service';

const UI_TIMEOUT_MS = 15_000;
const SOCKJS_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'iframe-eventsource'];

function unique(label: string): string {
  return `${label} ${randomBytes(4).toString('hex')}`;
}

async function waitForState(page: Page, state: string | RegExp): Promise<void> {
  await page.getByTestId('state').filter({ hasText: state }).waitFor({ timeout: UI_TIMEOUT_MS });
}

/** Waits for a received message (data-testid="message") containing `text`; returns that item. */
async function waitForMessage(page: Page, text: string) {
  const item = page.getByTestId('messages').getByTestId('message').filter({ hasText: text }).first();
  await item.waitFor({ timeout: UI_TIMEOUT_MS });
  return item;
}

async function testIdText(page: Page, testId: string): Promise<string> {
  return ((await page.getByTestId(testId).textContent()) ?? '').trim();
}

function uncaughtErrors(page: Page): string[] {
  return pageProblems(page).filter((p) => p.startsWith('pageerror'));
}

describe('demo page in headless Chromium', function () {
  this.timeout(60_000);

  let service: RunningService;
  let browser: Browser;
  let sockjsPage: Page;
  let wsPage: Page;

  async function push(
    user: string,
    body: string,
    token = tokenFor(service, 'backend', 'push'),
  ): Promise<void> {
    const res = await fetch(`${service.url}/api/users/${encodeURIComponent(user)}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ destination: '/queue/greetings', body }),
    });
    expect(res.status, await res.text()).to.equal(202);
  }

  before(async () => {
    service = await startTestService();
    browser = await launchBrowser();
    sockjsPage = await openPage(browser, `${service.url}/?user=alice&autoconnect=1`);
    wsPage = await openPage(browser, `${service.url}/?user=alice&transport=websocket&autoconnect=1`);
    await Promise.all([waitForState(sockjsPage, /^connected$/), waitForState(wsPage, /^connected$/)]);
  });

  after(async () => {
    await browser?.close();
    await service?.stop();
  });

  it('shows state, instance, session, user and transport from the CONNECTED frame', async () => {
    for (const page of [sockjsPage, wsPage]) {
      expect(await testIdText(page, 'state')).to.equal('connected');
      expect(await testIdText(page, 'instance')).to.equal(service.settings.instanceId);
      expect(await testIdText(page, 'user-name')).to.equal('alice');
      expect(await testIdText(page, 'session')).to.match(/^\S{8,}$/);
    }
    expect(await testIdText(sockjsPage, 'session')).not.to.equal(await testIdText(wsPage, 'session'));
    expect(await testIdText(wsPage, 'transport')).to.equal('websocket');
    expect(SOCKJS_TRANSPORTS).to.include(await testIdText(sockjsPage, 'transport'));
    expect(await testIdText(sockjsPage, 'subscriptions')).to.include('/topic/chat.lobby');
  });

  it('shows a REST push to alice on both of her pages', async () => {
    const text = unique('hello from REST');
    await push('alice', text);
    for (const page of [sockjsPage, wsPage]) {
      const item = await waitForMessage(page, text);
      expect(await item.getByTestId('message-destination').textContent()).to.equal('/user/queue/greetings');
      expect(await item.getByTestId('message-body').textContent()).to.equal(text);
    }
    await screenshot(sockjsPage, 'page-alice-sockjs');
    await screenshot(wsPage, 'page-alice-websocket');
  });

  it("round-trips an echo through /app/echo, marked on alice's other tab as sent from elsewhere", async () => {
    const text = unique('echo me');
    await wsPage.getByTestId('echo-text').fill(text);
    await wsPage.getByTestId('send-echo').click();
    const item = await waitForMessage(wsPage, text);
    expect(await item.getByTestId('message-destination').textContent()).to.equal('/user/queue/echo');
    expect(await item.getByTestId('message-sender').textContent()).to.equal('from this tab');
    // /user/queue/echo reaches every session of alice: her other tab shows it, not as its own.
    const elsewhere = await waitForMessage(sockjsPage, text);
    expect(await elsewhere.getByTestId('message-sender').textContent()).to.equal(
      'from another tab or device of alice',
    );
    await screenshot(sockjsPage, 'page-alice-echo-from-other-tab');
  });

  it('delivers chat from one page to the room on every page, with the sender shown', async () => {
    const bobPage = await openPage(browser, `${service.url}/?user=bob&autoconnect=1`);
    try {
      await waitForState(bobPage, /^connected$/);
      const text = unique('hi room');
      await bobPage.getByTestId('chat-text').fill(text);
      await bobPage.getByTestId('send-chat').click();
      for (const page of [bobPage, sockjsPage, wsPage]) {
        const item = await waitForMessage(page, text);
        expect(await item.getByTestId('message-destination').textContent()).to.equal('/topic/chat.lobby');
        expect(await item.getByTestId('message-sender').textContent()).to.equal('from bob');
      }

      // ...while a push to alice stays hers.
      const privateText = unique('for alice only');
      await push('alice', privateText);
      await waitForMessage(wsPage, privateText);
      expect(await bobPage.getByTestId('messages').textContent()).not.to.include(privateText);
      await screenshot(bobPage, 'page-bob-chat');
      expect(uncaughtErrors(bobPage)).to.deep.equal([]);
    } finally {
      await closePage(bobPage);
    }
  });

  it('falls back to xhr-streaming when SockJS is limited to it, and still receives pushes', async () => {
    const page = await openPage(
      browser,
      `${service.url}/?user=alice&autoconnect=1&sockjs_transports=xhr-streaming`,
    );
    try {
      await waitForState(page, /^connected$/);
      expect(await testIdText(page, 'transport')).to.equal('xhr-streaming');
      const text = unique('pushed over xhr-streaming');
      await push('alice', text);
      await waitForMessage(page, text);
      await screenshot(page, 'page-alice-xhr-streaming');
      expect(uncaughtErrors(page)).to.deep.equal([]);
    } finally {
      await closePage(page);
    }
  });

  it('uses a SockJS fallback on its own in a browser without WebSocket', async () => {
    const page = await openPage(browser, `${service.url}/?user=alice&autoconnect=1`, {
      disableWebSocket: true,
    });
    try {
      await waitForState(page, /^connected$/);
      const transport = await testIdText(page, 'transport');
      expect(transport).not.to.equal('websocket');
      expect(SOCKJS_TRANSPORTS).to.include(transport);
    } finally {
      await closePage(page);
    }
  });

  it('shows a curl line, with the real origin and a push token, that pushes to this user', async () => {
    const curl = await testIdText(sockjsPage, 'curl');
    const match =
      /^curl -X POST (\S+) -H 'Authorization: Bearer ([\w-]+\.[\w-]+\.[\w-]+)' -H 'Content-Type: application\/json' -d '(.+)'$/.exec(
        curl,
      );
    expect(match, curl).to.not.equal(null);
    const [, url, token, data] = match!;
    expect(url).to.equal(`${service.url}/api/users/alice/messages`);
    expect(JSON.parse(data)).to.deep.equal({ destination: '/queue/greetings', body: 'hello' });

    // Run what the line says, with a body of our own to recognise it.
    const text = unique('via the curl line');
    const res = await fetch(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ destination: '/queue/greetings', body: text }),
    });
    expect(res.status, await res.text()).to.equal(202);
    await waitForMessage(sockjsPage, text);
    expect(await sockjsPage.getByTestId('copy-curl').isEnabled()).to.equal(true);
  });

  it('connects and disconnects by hand, and follows a change of chat room', async () => {
    const page = await openPage(browser, `${service.url}/?user=carol`);
    try {
      expect(await testIdText(page, 'state')).to.equal('disconnected');
      expect(await page.getByTestId('user').inputValue()).to.equal('carol');
      await page.getByTestId('connect').click();
      await waitForState(page, /^connected$/);

      await page.getByTestId('room').fill('dev');
      await page.getByTestId('room').press('Enter');
      await page
        .getByTestId('subscriptions')
        .filter({ hasText: '/topic/chat.dev' })
        .waitFor({ timeout: UI_TIMEOUT_MS });
      const text = unique('in the dev room');
      await page.getByTestId('chat-text').fill(text);
      await page.getByTestId('chat-text').press('Enter');
      const item = await waitForMessage(page, text);
      expect(await item.getByTestId('message-destination').textContent()).to.equal('/topic/chat.dev');
      expect(await sockjsPage.getByTestId('messages').textContent()).not.to.include(text);

      await page.getByTestId('disconnect').click();
      await waitForState(page, /^disconnected$/);
      expect(await testIdText(page, 'instance')).to.equal('–');
      expect(await page.getByTestId('send-chat').isDisabled()).to.equal(true);
      await page.getByTestId('connect').click();
      await waitForState(page, /^connected$/);
      expect(uncaughtErrors(page)).to.deep.equal([]);
    } finally {
      await closePage(page);
    }
  });

  it('shows message bodies as text, never as markup', async () => {
    const text = `<img src=x onerror="window.__injected=1"><b>${unique('bold?')}</b>`;
    await push('alice', text);
    const item = await waitForMessage(wsPage, text);
    expect(await item.getByTestId('message-body').textContent()).to.equal(text);
    expect(await wsPage.locator('[data-testid="messages"] img, [data-testid="messages"] b').count()).to.equal(
      0,
    );
    expect(await wsPage.evaluate('window.__injected')).to.equal(undefined);
  });

  it('shows a STOMP ERROR frame readably in the state and the list', async () => {
    const page = await openPage(browser, 'about:blank');
    try {
      await page.route('**/api/dev/token', (route) => route.fulfill({ json: { token: 'not-a-jwt' } }));
      await page.goto(`${service.url}/?user=mallory&transport=websocket&autoconnect=1`);
      await waitForState(page, /^error: \S/);
      const errorItem = page.getByTestId('messages').getByTestId('error-message').first();
      await errorItem.waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await errorItem.getByTestId('message-destination').textContent()).to.equal('ERROR');
      expect(((await errorItem.getByTestId('message-body').textContent()) ?? '').length).to.be.greaterThan(0);
      expect(await testIdText(page, 'last-error')).to.match(/^Last error/);
      await screenshot(page, 'page-stomp-error');
    } finally {
      await closePage(page);
    }
  });

  it('says it is disconnected, without the old instance and session, once the server is gone', async () => {
    const own = await startTestService();
    const page = await openPage(browser, `${own.url}/?user=alice&transport=websocket&autoconnect=1`);
    try {
      await waitForState(page, /^connected$/);
      expect(await testIdText(page, 'instance')).to.equal(own.settings.instanceId);
      await own.stop();
      await page
        .locator('[data-testid="state"][data-state="disconnected"]')
        .waitFor({ timeout: UI_TIMEOUT_MS });
      // Then the reconnect's token request finds nothing there: said in words, not "Failed to fetch".
      await page
        .getByTestId('state-detail')
        .filter({ hasText: 'cannot reach the server' })
        .waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await testIdText(page, 'state')).to.equal('disconnected');
      expect(await testIdText(page, 'instance')).to.equal('–');
      expect(await testIdText(page, 'session')).to.equal('–');
      expect(await page.locator('body').textContent()).to.not.include('Failed to fetch');
      expect(await page.getByTestId('send-chat').isDisabled()).to.equal(true);
      await screenshot(page, 'page-server-gone');
      expect(uncaughtErrors(page)).to.deep.equal([]);
    } finally {
      await closePage(page);
      await own.stop();
    }
  });

  it('had no uncaught errors on the long-lived pages', () => {
    expect(uncaughtErrors(sockjsPage)).to.deep.equal([]);
    expect(uncaughtErrors(wsPage)).to.deep.equal([]);
  });
});
