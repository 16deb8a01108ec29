// tests/e2e-resize.test.mjs — the desktop follows the browser window: with a resizable display
// (`--display-kind xorg`: Xorg + dummy driver) the client asks for its window size on connect
// and after the window changes; the X screen is resized through RandR and the stream continues
// at the new size without reconnecting; the default `edgedesk up` (auto: Xorg-dummy where
// installed) does this too. On Xvfb (fixed size) the host answers scaledByClient.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { launchChromium, waitForState, waitForFrames, readVideoSize, CLIENT_WEB_DIR } from './lib.mjs';

const BIN = process.env.EDGEDESK_BIN ?? path.resolve(CLIENT_WEB_DIR, '../target/debug/edgedesk');

function up(args, { defaults = false } = {}) {
  const own = defaults ? [] : ['--fps', '30', '--app', ''];
  const child = spawn(BIN, ['up', '--listen', '127.0.0.1:0', '--token', 'resize', ...own, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => l.startsWith('Open: ') && resolve(l.slice(6)));
    child.on('exit', (code) => reject(new Error(`edgedesk exited (${code})`)));
  });
  return { url, kill: () => child.exitCode === null && child.kill('SIGTERM') };
}

async function waitForVideoSize(page, want, ms) {
  const end = Date.now() + ms;
  let size;
  while (Date.now() < end) {
    size = await readVideoSize(page);
    if (size[0] === want[0] && size[1] === want[1]) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`video is ${size}, wanted ${want}`);
}

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => browser?.close());

test('an Xorg-dummy desktop takes the window size, and follows it', async (t) => {
  const server = up(['--display-kind', 'xorg', '--size', '1280x720']);
  t.after(server.kill);
  const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
  t.after(() => page.close());
  await page.goto(await server.url);
  await waitForState(page, 'connected', 15000);
  await waitForFrames(page, 1, 15000);
  await waitForVideoSize(page, [1000, 600], 10000);
  const reconnects = await page.evaluate(() => window.edgedesk.reconnectCount);

  await page.setViewportSize({ width: 800, height: 500 });
  await waitForVideoSize(page, [800, 500], 10000);
  const frames = await waitForFrames(page, 1, 1000);
  await waitForFrames(page, frames + 1, 5000);
  assert.equal(await page.evaluate(() => window.edgedesk.reconnectCount), reconnects, 'no reconnect');
});

test('the default `edgedesk up` desktop takes the page size: Xorg-dummy, a panel and a terminal', async (t) => {
  const server = up([], { defaults: true });
  t.after(server.kill);
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  t.after(() => page.close());
  await page.goto(await server.url);
  await waitForState(page, 'connected', 15000);
  await waitForFrames(page, 1, 15000);
  await waitForVideoSize(page, [1100, 700], 10000);
  // The desktop is drawn (not a black screen): the panel's Terminal button (blue-grey) sits
  // at the bottom left, the terminal's dark background fills the middle.
  await new Promise((r) => setTimeout(r, 1500));
  const [panel, middle] = await page.evaluate(() => {
    const v = window.edgedesk.video;
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0);
    const at = (x, y) => [...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
    return [at(9, v.videoHeight - 9), at(v.videoWidth / 2, v.videoHeight / 2)];
  });
  assert.ok(panel[2] > 90 && panel[2] > panel[0] + 20, `the panel's button is blue-grey: ${panel}`);
  assert.ok(middle.every((c) => c > 15 && c < 50), `the terminal's background is dark grey: ${middle}`);
});

test('on Xvfb the host answers scaledByClient and the size stays', async (t) => {
  const server = up(['--display-kind', 'xvfb', '--size', '640x480']);
  t.after(server.kill);
  const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
  t.after(() => page.close());
  await page.goto(await server.url);
  await waitForState(page, 'connected', 15000);
  await waitForFrames(page, 1, 15000);
  await page.waitForFunction(() => window.edgedesk.inputChannel?.readyState === 'open');
  const answer = await page.evaluate(() => new Promise((resolve) => {
    window.edgedesk.input.addEventListener('host', (ev) => ev.detail.type === 'resizeResult' && resolve(ev.detail));
    window.edgedesk.input.requestResize();
  }));
  assert.deepEqual(answer, { type: 'resizeResult', status: 'scaledByClient', width: 640, height: 480 });
  assert.deepEqual(await readVideoSize(page), [640, 480]);
});
