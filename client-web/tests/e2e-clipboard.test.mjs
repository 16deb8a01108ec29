// tests/e2e-clipboard.test.mjs — the clipboard end to end: headless Chromium ⇄ input.js ⇄ the
// "input" channel ⇄ edgedesk's CLIPBOARD bridge ⇄ a real X client (edgedesk-xevents) that
// copies and pastes. A desktop copy lands in the browser's clipboard; Ctrl+V in the page puts
// the browser's clipboard on the desktop before the key reaches the application, long texts
// included. (View-only viewers and the session policy: host/tests/clipboard_session.rs.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { launchChromium, startProcess, openConnected, CLIENT_WEB_DIR } from './lib.mjs';

const BIN = process.env.EDGEDESK_BIN ?? path.resolve(CLIENT_WEB_DIR, '../target/debug/edgedesk');
const XEVENTS = path.join(path.dirname(BIN), 'edgedesk-xevents');

let browser;
before(async () => {
  for (const f of [BIN, XEVENTS]) assert.ok(existsSync(f), `${f} is missing: run cargo build --workspace --bins first`);
  browser = await launchChromium();
});
after(async () => browser?.close());

/** The desktop application pastes: CLIPBOARD as read by the X client. */
async function desktopClipboard(xev) {
  xev.child.stdin.write('paste\n');
  const line = await xev.waitLine((l) => l.startsWith('clipboard '));
  return line === 'clipboard none' ? null : JSON.parse(line.slice('clipboard '.length));
}

test('copy on the desktop, paste in the browser, and the other way round', async (t) => {
  const token = 'clipboard-e2e-token';
  const server = startProcess(BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '640x480', '--fps', '30', '--token', token, '--app', '', '--wm', '']);
  t.after(server.kill);
  const display = (await server.waitLine((l) => l.startsWith('Display: '))).slice(9);
  // The session's display has access control: X clients of the test need its cookie.
  process.env.XAUTHORITY = (await server.waitLine((l) => l.startsWith('Xauthority: '))).slice(12);
  const url = (await server.waitLine((l) => l.startsWith('Open: '))).slice(6);
  const xev = startProcess(XEVENTS, ['--display', display, '--rect', '0,0,640,480']);
  t.after(xev.kill);
  await xev.waitLine((l) => l === 'READY');

  const page = await openConnected(browser, url, { width: 640, height: 480 }, {
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  t.after(() => page.close());

  // 1. Desktop → browser: the X client copies; the page's clipboard gets the text.
  const out = 'copied on the desktop → ✓ ñ';
  xev.child.stdin.write(`copy ${JSON.stringify(out)}\n`);
  await xev.waitLine((l) => l === 'COPIED');
  await page.waitForFunction((want) => window.edgedesk.input.hostClipboard === want, out, { timeout: 10000 });
  await page.waitForFunction(async (want) => (await navigator.clipboard.readText()) === want, out, { timeout: 5000, polling: 100 });

  // 2. Browser → desktop: Ctrl+V in the page. The text is on CLIPBOARD before the V key
  //    reaches the application (asked for the moment the key press arrives).
  const paste = async (text) => {
    await page.evaluate((s) => navigator.clipboard.writeText(s), text);
    xev.lines.length = 0;
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyV');
    await page.keyboard.up('Control');
    await xev.waitLine((l) => l.startsWith('key press ') && l.split(' ')[3] === '0x76'); // v
    return desktopClipboard(xev);
  };
  assert.equal(await paste('pasted from the browser é€'), 'pasted from the browser é€');
  // A long text travels in parts (a data-channel message is 64 KiB at most).
  const long = 'line of a long paste ✓\n'.repeat(10000); // 250 000 bytes
  assert.equal(await paste(long), long);

});
