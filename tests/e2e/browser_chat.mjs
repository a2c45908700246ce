// Headless Chromium opens the web chat page, sends a message, sees the answer
// stream in with its tokens/s line, and takes a screenshot.
// Usage: node browser_chat.mjs BASE_URL API_KEY SCREENSHOT_PATH
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [base, key, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  const seen = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => seen.push(String(f.payload))));
  await page.goto(`${base}/?api_key=${encodeURIComponent(key)}`);
  await page.waitForSelector('#status:has-text("connected")', { timeout: 20000 });
  await page.fill('#input', 'Hello from the browser!');
  await page.click('#send');
  await page.waitForSelector('.msg.user:has-text("Hello from the browser!")');
  await page.waitForSelector('.meta:has-text("tokens/s")', { timeout: 60000 });
  const answer = await page.textContent('.msg.assistant');
  assert.ok(answer.length > 0, 'the answer has text');
  assert.ok(seen.filter((s) => s.includes('"delta"')).length >= 2, 'the answer streamed in pieces');
  // A second turn keeps the conversation.
  await page.fill('#input', 'And again.');
  await page.press('#input', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('.meta').length === 2, null, { timeout: 60000 });
  assert.equal(await page.locator('.msg.user').count(), 2);
  await page.screenshot({ path: shot, fullPage: true });
  console.log('browser chat: all checks passed');
} finally {
  await browser.close();
}
