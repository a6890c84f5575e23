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
/** Distinct colours (quantised to 5 bits a channel) a rendered page has at least. */
const MIN_SCREENSHOT_COLOURS = 16;
/** Share of pixels that differ from the most common colour (the background) on a rendered page. */
const MIN_SCREENSHOT_FOREGROUND = 0.02;

export interface OpenPageOptions {
  /** Removes window.WebSocket before any page script runs, as in a browser or proxy without it. */
  disableWebSocket?: boolean;
}

const problems = new WeakMap<Page, string[]>();
const consoleLines = new WeakMap<Page, string[]>();

export interface LaunchOptions {
  /**
   * base64 SHA-256 fingerprints of public keys (test/support/nginx.ts spkiFingerprint) whose
   * certificates Chromium accepts: a test's own development certificate, and nothing else.
   */
  trustedKeys?: string[];
}

export async function launchBrowser(options: LaunchOptions = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`);
  }
  const trust = options.trustedKeys?.length
    ? [`--ignore-certificate-errors-spki-list=${options.trustedKeys.join(',')}`]
    : [];
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      ...trust,
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

/**
 * Opens `url` in a fresh context; page errors and console errors are kept for pageProblems(), every
 * console line and page error for pageConsole().
 */
export async function openPage(browser: Browser, url: string, options: OpenPageOptions = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (options.disableWebSocket) {
    // A string, not a function: the test runner's transpiler may add helpers the page lacks.
    await context.addInitScript({ content: 'delete window.WebSocket; delete window.MozWebSocket;' });
  }
  const page = await context.newPage();
  const seen: string[] = [];
  const lines: string[] = [];
  problems.set(page, seen);
  consoleLines.set(page, lines);
  page.on('pageerror', (error) => {
    seen.push(`pageerror: ${error.message}`);
    lines.push(`pageerror: ${error.message}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(`console: ${message.text()}`);
    lines.push(`${message.type()}: ${message.text()}`);
  });
  await page.goto(url);
  return page;
}

/** Uncaught exceptions and console errors the page has had so far. */
export function pageProblems(page: Page): string[] {
  return [...(problems.get(page) ?? [])];
}

/** Everything the page has written to its console so far, and its uncaught exceptions. */
export function pageConsole(page: Page): string[] {
  return [...(consoleLines.get(page) ?? [])];
}

/** Closes the page together with the context openPage made for it. */
export async function closePage(page: Page): Promise<void> {
  await page.context().close();
}

/**
 * Saves a full-page PNG as test/output/screenshots/<name>.png and checks it is not blank: the page
 * shows text, the file is bigger than an empty canvas would be, and the image has enough distinct
 * colours and enough pixels off the background colour. Returns the file's path.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  const png = await page.screenshot({ path: file, fullPage: true });
  const text = (await page.locator('body').innerText()).trim();
  if (text.length === 0) throw new Error(`screenshot ${name}: the page shows no text`);
  const bytes = statSync(file).size;
  if (bytes < MIN_SCREENSHOT_BYTES) {
    throw new Error(`screenshot ${name}: ${bytes} bytes, looks blank (expected > ${MIN_SCREENSHOT_BYTES})`);
  }
  // Decoded in a blank page of the same context: the page under test may forbid data: images.
  const probe = await page.context().newPage();
  try {
    const { colours, foreground } = await imageStats(probe, png);
    if (colours < MIN_SCREENSHOT_COLOURS) {
      throw new Error(
        `screenshot ${name}: ${colours} distinct colours, looks blank (expected >= ${MIN_SCREENSHOT_COLOURS})`,
      );
    }
    if (foreground <= MIN_SCREENSHOT_FOREGROUND) {
      throw new Error(
        `screenshot ${name}: ${foreground} of pixels not background, looks blank (expected > ${MIN_SCREENSHOT_FOREGROUND})`,
      );
    }
  } finally {
    await probe.close();
  }
  return file;
}

/**
 * How much is on an image: distinct colours (quantised) and the share of pixels that differ from
 * the most common colour. Decoded by the browser itself (no image library needed).
 */
async function imageStats(probe: Page, png: Buffer): Promise<{ colours: number; foreground: number }> {
  return probe.evaluate(
    async (dataUrl: string) => {
      const img = new Image();
      img.src = dataUrl;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext('2d');
      if (!ctx) throw new Error('no 2d context');
      ctx.drawImage(img, 0, 0);
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const counts = new Map<number, number>();
      for (let i = 0; i < data.length; i += 4) {
        const key = ((data[i]! >> 3) << 10) | ((data[i + 1]! >> 3) << 5) | (data[i + 2]! >> 3);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      const pixels = data.length / 4;
      const background = Math.max(...counts.values());
      return { colours: counts.size, foreground: (pixels - background) / pixels };
    },
    `data:image/png;base64,${png.toString('base64')}`,
  );
}
