// A real browser for the tests of web pages: Debian's chromium, driven by playwright-core.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** Headless Chromium; the test fails (never skips) when the package is missing: .ci/run installs it. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = CANDIDATES.find((p) => existsSync(p));
  if (!executablePath) throw new Error(`no Chromium at ${CANDIDATES.join(' or ')}: apt-get install chromium`);
  // Chromium's own sandbox needs user namespaces it cannot have as root in CI; the page is ours and local.
  return chromium.launch({ executablePath, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
}
