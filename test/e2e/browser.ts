import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";

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
 * ordinary test runs leave the working tree clean. A page is taken whole; a locator (one section
 * of a long page) is taken alone.
 */
export async function screenshot(target: Page | Locator, name: string) {
  if (process.env.PORTCULLIS_SCREENSHOTS !== "1") return;
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  if ("goto" in target) await target.screenshot({ path: file, fullPage: true });
  else await target.screenshot({ path: file });
}
