// tests/e2e-console.test.mjs — the operator console in headless Chromium against the real
// `edgedesk up`: log in with the operator key, see the default session, create one through the
// form (it runs, its thumbnail loads), mint a view link that plays in another tab and whose
// input the host ignores (counted, none injected), end the session.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, startProcess, openConnected, clientPoint, EDGEDESK_BIN } from './lib.mjs';

const KEY = 'console-e2e-operator-key-0123';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => browser?.close());

test('the console lists, creates, thumbnails, links and ends sessions', async (t) => {
  const server = startProcess(EDGEDESK_BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '640x360', '--fps', '30', '--app', '', '--wm', '', '--operator-key', KEY]);
  t.after(server.kill);
  const whep = (await server.waitLine((l) => l.startsWith('WHEP: '))).slice(6);
  const base = whep.replace(/\/whep\/.*$/, '');

  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  t.after(() => page.close());
  await page.goto(`${base}/console.html`);
  // A wrong key is refused and says so.
  await page.fill('#key', 'not-the-key-0123456789');
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => /refused/.test(document.getElementById('login-error').textContent), null, { timeout: 5000 });
  await page.fill('#key', KEY);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('tr[data-id="default"] .state-running', { timeout: 10000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('edgedesk-operator-key')), KEY, 'kept in the tab');

  // Create one through the form.
  await page.fill('#c-size', '480x270');
  await page.fill('#c-fps', '30');
  await page.fill('#c-command', '');
  await page.click('#create button[type=submit]');
  const id = await page.waitForFunction(
    () => window.edgedeskConsole.sessions.find((s) => s.id !== 'default' && s.state === 'running')?.id,
    null,
    { timeout: 20000 },
  ).then((h) => h.jsonValue());
  await page.evaluate(() => window.edgedeskConsole.refresh());
  // Its thumbnail loads (a PNG from the session's display).
  await page.waitForFunction(
    (sid) => {
      const img = document.querySelector(`tr[data-id="${sid}"] img`);
      return img && img.complete && img.naturalWidth > 0 && img.naturalWidth <= 320;
    },
    id,
    { timeout: 10000 },
  );
  // A bad value is shown, not swallowed.
  await page.fill('#c-size', '10x10');
  await page.click('#create button[type=submit]');
  await page.waitForFunction(() => /size/.test(document.getElementById('create-error').textContent), null, { timeout: 5000 });

  // Mint a view link: it plays in another tab; its input never reaches the desktop.
  await page.click(`tr[data-id="${id}"] button.mint-view`);
  await page.waitForSelector('#link-out:not([hidden])');
  const link = await page.textContent('#link-url');
  assert.match(link, new RegExp(`^${base.replace(/[.]/g, '\\.')}/\\?session=${id}#token=v1\\.`));
  const viewer = await openConnected(browser, link, { width: 480, height: 270 });
  t.after(() => viewer.close());
  const p = await clientPoint(viewer, 100, 100);
  await viewer.mouse.click(p.x, p.y);
  await viewer.keyboard.press('KeyA');
  // The host counts the view-only viewer's input as ignored, and injects none of it.
  const counter = (text, name) => text.split('\n')
    .filter((l) => l.startsWith(name) && l.includes(`session="${id}"`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  let metrics = '';
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    metrics = await (await fetch(`${base}/metrics`)).text();
    if (counter(metrics, 'edgedesk_input_ignored_total') >= 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(counter(metrics, 'edgedesk_input_ignored_total') >= 3, 'the view-only input was ignored');
  assert.equal(counter(metrics, 'edgedesk_input_injected_total'), 0, 'nothing was injected');

  // End it: the row says ended, the viewer loses its stream.
  await page.click(`tr[data-id="${id}"] button.end`);
  await page.waitForSelector(`tr[data-id="${id}"] .state-ended`, { timeout: 10000 });
  await viewer.waitForFunction(() => window.edgedesk.state !== 'connected', null, { timeout: 10000 });
});
