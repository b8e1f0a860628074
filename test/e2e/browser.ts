import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

/** Debian's chromium (apt-get install chromium); .ci/run installs it when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

const SCREENSHOTS = path.resolve(import.meta.dirname, "../../docs/screenshots");

/**
 * Saves a screenshot for the README when PORTCULLIS_SCREENSHOTS=1 (`npm run screenshots`), so
 * ordinary test runs leave the working tree clean.
 */
export async function screenshot(page: Page, name: string) {
  if (process.env.PORTCULLIS_SCREENSHOTS !== "1") return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
