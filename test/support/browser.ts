/**
 * Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by playwright-core (no
 * browser download). One browser per test file; each page gets its own context, so pages share no
 * cookies or storage, like separate people. Screenshots land in test/output/screenshots/.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.resolve(__dirname, '..', 'output', 'screenshots');

/** A PNG of a rendered page with text is tens of KB; a blank one is well under this. */
const MIN_SCREENSHOT_BYTES = 8 * 1024;

export interface OpenPageOptions {
  /** Removes window.WebSocket before any page script runs, as in a browser or proxy without it. */
  disableWebSocket?: boolean;
}

const problems = new WeakMap<Page, string[]>();

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Opens `url` in a fresh context; page errors and console errors are kept for pageProblems(). */
export async function openPage(browser: Browser, url: string, options: OpenPageOptions = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (options.disableWebSocket) {
    // A string, not a function: the test runner's transpiler may add helpers the page lacks.
    await context.addInitScript({ content: 'delete window.WebSocket; delete window.MozWebSocket;' });
  }
  const page = await context.newPage();
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('pageerror', (error) => seen.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  return page;
}

/** Uncaught exceptions and console errors the page has had so far. */
export function pageProblems(page: Page): string[] {
  return [...(problems.get(page) ?? [])];
}

/** Closes the page together with the context openPage made for it. */
export async function closePage(page: Page): Promise<void> {
  await page.context().close();
}

/**
 * Saves a full-page PNG as test/output/screenshots/<name>.png and checks it is not blank: the page
 * shows text and the file is bigger than an empty canvas would be. Returns the file's path.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const text = (await page.locator('body').innerText()).trim();
  if (text.length === 0) throw new Error(`screenshot ${name}: the page shows no text`);
  const bytes = statSync(file).size;
  if (bytes < MIN_SCREENSHOT_BYTES) {
    throw new Error(`screenshot ${name}: ${bytes} bytes, looks blank (expected > ${MIN_SCREENSHOT_BYTES})`);
  }
  return file;
}
