/**
 * The cluster view's page where no dev token is to be had: NODE_ENV=production with
 * ADMIN_ENABLED=true (one instance, embedded broker, in this process). The page asks for a token,
 * says why a token without scope `admin` is refused, and shows the cluster once given a good one;
 * with the view off (production's default) there is no page at all. In development the page gets
 * its token itself: test/e2e/admin.test.ts.
 */
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { closePage, launchBrowser, openPage, pageConsole, screenshot } from '../support/browser';
import { startTestService, tokenFor, type RunningService } from '../support/service';

describe('cluster view page in production: a token is asked for', function () {
  this.timeout(60_000);
  let service: RunningService;
  let browser: Browser;
  let page: Page | undefined;

  before(async () => {
    service = await startTestService({ nodeEnv: 'production', adminEnabled: 'true' });
    browser = await launchBrowser();
  });
  after(async () => {
    if (page) await closePage(page);
    await browser?.close();
    await service?.stop();
  });

  it('asks for a token, refuses one without scope admin saying why, then shows the cluster', async () => {
    page = await openPage(browser, `${service.url}/admin/?refresh_ms=300`);
    await page.locator('[data-testid="token-form"]').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('[data-testid="view-state"]').getAttribute('data-state')).to.equal('error');

    await page.locator('[data-testid="token"]').fill(tokenFor(service, 'ops', 'push'));
    await page.locator('[data-testid="token-form"] button[type="submit"]').click();
    await page
      .locator('[data-testid="token-error"]', { hasText: "this call needs a token with scope 'admin'" })
      .waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-testid="token-form"]').isVisible()).to.equal(true);

    await page.locator('[data-testid="token"]').fill(tokenFor(service, 'ops', 'admin'));
    await page.locator('[data-testid="token-form"] button[type="submit"]').click();
    await page.locator('[data-testid="view-state"][data-state="live"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('[data-testid="token-form"]').isVisible()).to.equal(false);
    expect(await page.locator('[data-testid="total-instances"]').textContent()).to.equal('1');
    expect(await page.locator(`[data-instance="${service.settings.instanceId}"]`).count()).to.equal(1);
    const file = await screenshot(page, 'admin-production-token');
    console.log(`      screenshot: ${file}`);
    // The only errors the page met: its try for a dev token (404: none in production) and the
    // refused token's 403.
    const errors = pageConsole(page).filter((line) => line.startsWith('error:'));
    expect(errors.map((line) => /status of (\d+)/.exec(line)?.[1])).to.deep.equal(['404', '403']);
  });
});

describe('cluster view page in production by default: absent', function () {
  this.timeout(30_000);
  it('answers 404 for the page, its script and its call, token or not', async () => {
    const service = await startTestService({ nodeEnv: 'production' });
    try {
      for (const path of ['/admin', '/admin/', '/admin/admin.js', '/admin/index.html']) {
        expect((await fetch(`${service.url}${path}`, { redirect: 'manual' })).status, path).to.equal(404);
      }
      const call = await fetch(`${service.url}/api/admin/cluster`, {
        headers: { authorization: `Bearer ${tokenFor(service, 'ops', 'admin')}` },
      });
      expect(call.status).to.equal(404);
    } finally {
      await service.stop();
    }
  });
});
