/**
 * The demo page's inbox panel in headless Chromium (embedded broker, in-memory store): this browser
 * is one device (its device-id kept in localStorage). A push while the page is open is shown and
 * acknowledged; then the page is closed, three are pushed, and the page opened again shows those
 * three, in order, once each, acknowledged, and not the one it had acknowledged before.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { launchBrowser, pageProblems } from '../support/browser';
import { pushStored, statusOf } from '../support/inbox';
import { startTestService, type RunningService } from '../support/service';
import { sleep, waitFor } from '../support/wait';

const UI_TIMEOUT_MS = 15_000;

describe('demo page: the inbox panel in headless Chromium', function () {
  this.timeout(60_000);
  let service: RunningService;
  let browser: Browser;
  let context: BrowserContext;
  const user = `inbox-page-${randomBytes(3).toString('hex')}`;

  before(async () => {
    service = await startTestService();
    browser = await launchBrowser();
    // One context: its localStorage (the device id) outlives the page, as a browser's does.
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await service?.stop();
  });

  async function open(): Promise<Page> {
    const page = await context.newPage();
    await page.goto(`${service.url}/?user=${user}&autoconnect=1`);
    await page
      .getByTestId('state')
      .filter({ hasText: /^connected$/ })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    return page;
  }

  async function inboxBodies(page: Page): Promise<string[]> {
    return page.getByTestId('inbox-messages').getByTestId('inbox-body').allTextContents();
  }

  async function allAcked(page: Page, count: number): Promise<void> {
    await waitFor(
      async () => {
        const states = await page.getByTestId('inbox-messages').getByTestId('inbox-state').allTextContents();
        return states.length === count && states.every((s) => s === 'acked');
      },
      UI_TIMEOUT_MS,
      `${count} inbox messages acknowledged`,
    );
  }

  it('shows what was pushed while the page was closed when it opens: in order, once, each acknowledged', async () => {
    const first = await open();
    const device = ((await first.getByTestId('device-id').textContent()) ?? '').trim();
    expect(device).to.match(/^browser-[0-9a-f]{18}$/);
    const curl = (await first.getByTestId('inbox-curl').textContent()) ?? '';
    expect(curl)
      .to.contain(`/api/users/${user}/messages`)
      .and.contain('/user/queue/inbox')
      .and.contain('Idempotency-Key');
    const seen = await pushStored(service, user, 'while open');
    await allAcked(first, 1);
    expect((await statusOf(service, user, seen.id)).devices[device]).to.equal('acked');
    await first.close();

    const pushed = [];
    for (const body of ['first while closed', 'second while closed', 'third while closed']) {
      pushed.push(await pushStored(service, user, body));
    }
    const again = await open();
    expect(((await again.getByTestId('device-id').textContent()) ?? '').trim(), 'the same device').to.equal(
      device,
    );
    await allAcked(again, 3);
    await sleep(300);
    expect(await inboxBodies(again)).to.deep.equal([
      'first while closed',
      'second while closed',
      'third while closed',
    ]);
    const seqs = await again.getByTestId('inbox-messages').getByTestId('inbox-seq').allTextContents();
    expect(seqs).to.deep.equal(pushed.map((p) => `#${p.seq}`));
    for (const p of pushed) expect((await statusOf(service, user, p.id)).devices[device]).to.equal('acked');
    expect(pageProblems(again)).to.deep.equal([]);
  });
});
