// tests/e2e-resize.test.mjs — the desktop follows the browser window: with a resizable display
// (`--display-kind xorg`: Xorg + dummy driver) the client asks for its window size on connect
// and after the window changes; the X screen is resized through RandR and the stream continues
// at the new size without reconnecting. On Xvfb (fixed size) the host answers scaledByClient.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { launchChromium, waitForState, waitForFrames, readVideoSize, CLIENT_WEB_DIR } from './lib.mjs';

const BIN = process.env.EDGEDESK_BIN ?? path.resolve(CLIENT_WEB_DIR, '../target/debug/edgedesk');

function up(args) {
  const child = spawn(BIN, ['up', '--listen', '127.0.0.1:0', '--fps', '30', '--token', 'resize', '--app', '', ...args], {
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

test('on Xvfb the host answers scaledByClient and the size stays', async (t) => {
  const server = up(['--size', '640x480']);
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
