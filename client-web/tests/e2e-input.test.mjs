// tests/e2e-input.test.mjs — input end to end: headless Chromium → input.js → the "input" data
// channel → edgedesk's decoder → XTest → a real X client (edgedesk-xevents) that prints what it
// receives. Checks clicks land on the matching X pixel (also when the browser scales the video),
// typed text arrives exactly (shift included), non-ASCII arrives through the text path, the wheel
// scrolls, and a page that goes away with a key held leaves nothing pressed. Under a German
// server keymap a US client's keys still type what they print; pointer lock sends relative
// motion; two fingers scroll without a click. Layouts, dead keys, Caps Lock, IME text and the
// on-screen keyboard: e2e-keyboard.test.mjs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { launchChromium, startProcess, openConnected, clientPoint, desktopWithXevents, pressedChars, EDGEDESK_BIN as BIN, XEVENTS_BIN as XEVENTS } from './lib.mjs';


/** US-layout physical keys for a few characters: [code, shift]. */
function usKey(ch) {
  if (/[a-z]/.test(ch)) return [`Key${ch.toUpperCase()}`, false];
  if (/[A-Z]/.test(ch)) return [`Key${ch}`, true];
  if (/[0-9]/.test(ch)) return [`Digit${ch}`, false];
  const other = { ' ': ['Space', false], ',': ['Comma', false], '.': ['Period', false], '!': ['Digit1', true] };
  if (other[ch]) return other[ch];
  throw new Error(`no US key for ${ch}`);
}

/** Types as a person does: Shift held with the key (Playwright's type() sends no Shift). */
async function typeLikeAKeyboard(page, text) {
  for (const ch of text) {
    const [code, shift] = usKey(ch);
    if (shift) await page.keyboard.down('Shift');
    await page.keyboard.press(code);
    if (shift) await page.keyboard.up('Shift');
  }
}

let browser;
before(async () => {
  for (const f of [BIN, XEVENTS]) assert.ok(existsSync(f), `${f} is missing: run cargo build --workspace --bins first`);
  browser = await launchChromium();
});
after(async () => browser?.close());

test('keyboard, mouse, wheel and text reach a real X client exactly; nothing stays pressed', async (t) => {
  const token = 'input-e2e-token';
  const server = startProcess(BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '1280x720', '--fps', '30', '--token', token, '--app', '', '--wm', '']);
  t.after(server.kill);
  const display = (await server.waitLine((l) => l.startsWith('Display: '))).slice(9);
  // The session's display has access control: X clients of the test need its cookie.
  process.env.XAUTHORITY = (await server.waitLine((l) => l.startsWith('Xauthority: '))).slice(12);
  const url = (await server.waitLine((l) => l.startsWith('Open: '))).slice(6);
  const xev = startProcess(XEVENTS, ['--display', display, '--rect', '0,0,1280,720']);
  t.after(xev.kill);
  await xev.waitLine((l) => l === 'READY');

  // 1. Unscaled: a click at video (400, 300) is a button-1 press at X (400, 300).
  const page = await openConnected(browser, url, { width: 1280, height: 720 });
  let p = await clientPoint(page, 400, 300);
  await page.mouse.move(p.x, p.y);
  await page.mouse.down();
  await page.mouse.up();
  const press = await xev.waitLine((l) => l.startsWith('button press 1 '));
  assert.equal(press, 'button press 1 400 300 400 300');
  await xev.waitLine((l) => l.startsWith('button release 1 '));
  const right = await clientPoint(page, 1000, 100);
  await page.mouse.click(right.x, right.y, { button: 'right' });
  assert.equal(await xev.waitLine((l) => l.startsWith('button press 3 ')), 'button press 3 1000 100 1000 100');

  // 2. Typing: physical keys, the server's keymap (US) makes the characters, shift included.
  const typed = 'Hello, World! 123';
  xev.lines.length = 0;
  await typeLikeAKeyboard(page, typed);
  await page.evaluate(() => 0);
  let got = '';
  const end = Date.now() + 10000;
  while (got !== typed && Date.now() < end) {
    const line = await xev.waitLine((l) => l.startsWith('key press '), end - Date.now());
    const [, , , keysym] = line.split(' ');
    const text = line.split(' ').slice(4).join(' ');
    if (keysym === '0x20') got += ' ';
    else if ([...text].length === 1) got += text; // modifiers (Shift) print no character
  }
  assert.equal(got, typed);

  // 3. Non-ASCII through the text path (what IME composition sends).
  xev.lines.length = 0;
  await page.evaluate(async () => {
    const { encode } = await import('/input-protocol.js');
    window.edgedesk.inputChannel.send(encode.text('é€ж'));
  });
  const chars = [];
  while (chars.length < 3) {
    const line = await xev.waitLine((l) => l.startsWith('key press '));
    const text = line.split(' ').slice(4).join(' ');
    if (text) chars.push(text);
  }
  assert.deepEqual(chars, ['é', '€', 'ж']);

  // 4. Wheel: one notch down (100 px in Chromium = 120 units) is one X button-5 click.
  xev.lines.length = 0;
  await page.mouse.move(p.x, p.y);
  await page.mouse.wheel(0, 100);
  await xev.waitLine((l) => l.startsWith('button press 5 '));

  // 5. RTT from ping/pong.
  await page.waitForFunction(() => window.edgedesk.input.rttMs !== null, null, { timeout: 5000 });

  // 6. A page that goes away with Shift held leaves no key pressed on the desktop.
  await page.keyboard.down('Shift');
  await xev.waitLine((l) => l.startsWith('key press 50 '));
  await page.close({ runBeforeUnload: false });
  const deadline = Date.now() + 8000;
  let keys;
  do {
    xev.child.stdin.write('keys\n');
    keys = await xev.waitLine((l) => l.startsWith('keys'));
    if (keys === 'keys') break;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  assert.equal(keys, 'keys', 'no key is left pressed after the client left');

  // 7. Scaled: a 640x360 window shows the 1280x720 video at half size; a click still lands
  //    on the matching X pixel (within the half-pixel the scaling loses).
  const small = await openConnected(browser, url, { width: 640, height: 360 });
  t.after(() => small.close());
  xev.lines.length = 0;
  p = await clientPoint(small, 801, 401);
  await small.mouse.click(p.x, p.y);
  const [, , , x, y] = (await xev.waitLine((l) => l.startsWith('button press 1 '))).split(' ');
  assert.ok(Math.abs(x - 801) <= 2 && Math.abs(y - 401) <= 2, `click landed at ${x},${y}`);

  // 8. Touch: a tap is a click at the tapped pixel.
  const touch = await openConnected(browser, url, { width: 1280, height: 720 }, { hasTouch: true });
  t.after(() => touch.close());
  xev.lines.length = 0;
  p = await clientPoint(touch, 200, 150);
  await touch.touchscreen.tap(p.x, p.y);
  assert.equal(await xev.waitLine((l) => l.startsWith('button press 1 ')), 'button press 1 200 150 200 150');
  await xev.waitLine((l) => l.startsWith('button release 1 '));
});

test("a German-keymap desktop types what a US client's keys print", async (t) => {
  const { url, xev } = await desktopWithXevents(t, [640, 480], (display) => {
    execFileSync('setxkbmap', ['-display', display, 'de']);
  });
  const page = await openConnected(browser, url, { width: 640, height: 480 });
  t.after(() => page.close());
  xev.lines.length = 0;
  // The client's layout decides: Z is z and Y is y (the German keymap has them swapped), US
  // Shift+2 is @ and Shift+7 is & (German: " and /).
  await page.keyboard.press('KeyZ');
  await page.keyboard.press('KeyY');
  await page.keyboard.down('ShiftLeft');
  await page.keyboard.press('Digit2');
  await page.keyboard.press('Digit7');
  await page.keyboard.up('ShiftLeft');
  assert.deepEqual(await pressedChars(xev, 4), ['z', 'y', '@', '&']);
});

test('pointer lock sends relative motion; two fingers scroll without clicking', async (t) => {
  const { url, xev } = await desktopWithXevents(t);
  const page = await openConnected(browser, url, { width: 640, height: 480 }, { hasTouch: true });
  t.after(() => page.close());
  const cdp = await page.context().newCDPSession(page);

  // Relative motion: with the pointer locked, moving the mouse by (+40, +25) moves the desktop
  // pointer by the same amount from wherever it was.
  let p = await clientPoint(page, 100, 100);
  await page.mouse.move(p.x, p.y);
  await page.mouse.click(p.x, p.y); // a user gesture for requestPointerLock
  await page.keyboard.down('Control');
  await page.keyboard.down('Alt');
  await page.keyboard.down('Shift');
  await page.keyboard.press('KeyL');
  await page.keyboard.up('Shift');
  await page.keyboard.up('Alt');
  await page.keyboard.up('Control');
  await page.waitForFunction(() => document.pointerLockElement === window.edgedesk.video, null, { timeout: 5000 });
  xev.child.stdin.write('query\n');
  const [, x0, y0] = (await xev.waitLine((l) => l.startsWith('pointer '))).split(' ').map(Number);
  await page.mouse.move(p.x + 40, p.y + 25, { steps: 4 });
  await page.waitForTimeout(200);
  xev.child.stdin.write('query\n');
  const [, x1, y1] = (await xev.waitLine((l) => l.startsWith('pointer '))).split(' ').map(Number);
  assert.deepEqual([x1 - x0, y1 - y0], [40, 25], `pointer went from ${x0},${y0} to ${x1},${y1}`);
  await page.evaluate(() => document.exitPointerLock());

  // Two fingers moving up by 100 px scroll down (natural scrolling): button 5 clicks, and no
  // button 1 press (a second finger never starts with a click).
  p = await clientPoint(page, 300, 200);
  const fingers = (dy) => [
    { x: p.x - 30, y: p.y + dy, id: 1 },
    { x: p.x + 30, y: p.y + dy, id: 2 },
  ];
  xev.lines.length = 0;
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: fingers(0) });
  for (let dy = -10; dy >= -100; dy -= 10) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: fingers(dy) });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  // Every line since the gesture began is kept (waitLine would drop those before its match).
  const until = async (pred, what) => {
    const end = Date.now() + 10000;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`no ${what}; have ${JSON.stringify(xev.lines.slice(-5))}`);
      await page.waitForTimeout(20);
    }
  };
  await until(() => xev.lines.some((l) => l.startsWith('button press 5 ')), 'scroll-down press');
  await page.waitForTimeout(300);
  xev.child.stdin.write('sync\n');
  await until(() => xev.lines.includes('SYNCED'), 'SYNCED');
  const seen = xev.lines.join('\n');
  assert.ok(!/button press [1234] /.test(seen), `only scroll-down presses expected:\n${seen}`);
});
