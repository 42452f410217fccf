#!/usr/bin/env node
// Renders assets/icon.svg to assets/icon.png (512x512, transparent) with the system chromium
// through playwright-core, for electron-builder and the renderer's favicon. Run after editing the
// SVG: `node scripts/build-icon.mjs`.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Icon edge in px: electron-builder wants at least 512 for macOS and Linux. */
const SIZE = 512;
const svg = readFileSync(join(ROOT, 'assets/icon.svg'), 'utf8');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: SIZE, height: SIZE } });
  await page.setContent(`<html><body style="margin:0;background:transparent">${svg}</body></html>`);
  await page.locator('svg').screenshot({ path: join(ROOT, 'assets/icon.png'), omitBackground: true });
  console.log('wrote assets/icon.png');
} finally {
  await browser.close();
}
