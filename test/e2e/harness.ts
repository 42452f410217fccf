// The e2e harness: builds the renderer into a temp dir, starts browser mode in this process on
// 127.0.0.1 with a temp library folder, and drives Debian's chromium through playwright-core with a
// fresh profile. Tests skip, saying why, when chromium or a needed format driver is missing.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildApp } from '../../scripts/build-app.mjs';
import { serve } from '../../electron/serve.ts';
import { createPlatterService } from '../../core/api/service.ts';
import { REPO_ROOT, HAVE_QEMU } from '../helpers/qemu.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const SCREENSHOTS = join(REPO_ROOT, 'docs/screenshots');

/** Chromium flags: headless, no sandbox (containers), nothing that phones home. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** A skip reason when the e2e tests cannot run here (no chromium or QEMU tools). A format the
 *  tests need that is not registered fails them: a registry regression must not pass as a skip. */
export async function skipReason(formats: string[]): Promise<string | false> {
  if (!HAVE_CHROMIUM) return `chromium not found at ${CHROMIUM} (apt-get install chromium)`;
  if (!HAVE_QEMU) return 'qemu-img/qemu-io not installed (apt-get install qemu-utils)';
  const service = createPlatterService({ warn: () => {} });
  try {
    const have = new Set((await service.listFormats()).map((f) => f.name));
    const missing = formats.filter((f) => !have.has(f));
    if (missing.length) throw new Error(`format driver(s) the desktop app needs are not registered: ${missing.join(', ')}`);
    return false;
  } finally {
    await service.close();
  }
}

export interface E2E {
  page: Page;
  context: BrowserContext;
  /** The library folder the server was started with. */
  library: string;
  url: string;
  /** Page errors and console errors seen so far (a test asserts there are none). */
  errors: string[];
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
}

/** The page's uncaught errors and console errors (favicon misses aside), collected as they come. */
export function watchPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/favicon/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** A work folder (under the system's temporary folder) with an empty library and the renderer
 *  built into it, as every e2e page starts. */
export async function prepareWork(prefix: string): Promise<{ work: string; library: string; renderer: string }> {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const library = join(work, 'library');
  mkdirSync(library);
  const { renderer } = await buildApp({ only: 'renderer', outDir: join(work, 'dist'), minify: true });
  return { work, library, renderer };
}

/** Debian's chromium on a profile in `work`, at the screenshots' size. */
export function launchChromium(work: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 820 },
    deviceScaleFactor: 1,
  });
}

/** Saves the page as docs/screenshots/NAME.png. */
export function screenshotter(page: Page): (name: string) => Promise<void> {
  return async (name) => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
  };
}

export async function startE2E(): Promise<E2E> {
  const { work, library, renderer } = await prepareWork('platter-e2e-');
  const server = await serve({ library: [library], rendererDir: renderer });
  const context = await launchChromium(work);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = watchPageErrors(page);
  await page.goto(server.url);
  return {
    page,
    context,
    library,
    url: server.url,
    errors,
    screenshot: screenshotter(page),
    async close() {
      await context.close().catch(() => {});
      await server.shutdown().catch(() => {});
      rmSync(work, { recursive: true, force: true });
    },
  };
}
