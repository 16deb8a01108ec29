// tests/e2e-keyboard.test.mjs — keys type what the user's own layout prints, end to end:
// headless Chromium (CDP key events with a German keyboard's code/key pairs, text insertion as
// phones and IMEs deliver it) → input.js/keyboard.js → the "input" channel → edgedesk's
// injector → XTest → a real X client (edgedesk-xevents) on a desktop with the default US keymap.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { launchChromium, openConnected, clientPoint, desktopWithXevents, pressedChars, EDGEDESK_BIN, XEVENTS_BIN } from './lib.mjs';

const SHIFT = 8; // CDP modifier bit

/** The German (de) keyboard: character → [code, shift]. */
const GERMAN = {
  z: ['KeyY', false], y: ['KeyZ', false], Z: ['KeyY', true], Y: ['KeyZ', true],
  ' ': ['Space', false], ö: ['Semicolon', false], ä: ['Quote', false], ü: ['BracketLeft', false], ß: ['Minus', false],
  '"': ['Digit2', true], '/': ['Digit7', true],
};

/** One key press as a German keyboard makes it: keyDown (with its text) and keyUp. */
async function germanKey(cdp, ch) {
  let [code, shift] = GERMAN[ch] ?? [];
  if (!code && /^[a-x]$/.test(ch)) [code, shift] = [`Key${ch.toUpperCase()}`, false];
  if (!code) throw new Error(`no German key for ${ch}`);
  const modifiers = shift ? SHIFT : 0;
  if (shift) await cdp.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', code: 'ShiftLeft', key: 'Shift', modifiers, windowsVirtualKeyCode: 16 });
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyDown', code, key: ch, text: ch, unmodifiedText: ch, modifiers });
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', code, key: ch, modifiers });
  if (shift) await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', code: 'ShiftLeft', key: 'Shift', windowsVirtualKeyCode: 16 });
}

/** A key press and release with explicit fields (named keys, dead keys, AltGr). */
async function press(cdp, fields, down = true, up = true) {
  const type = fields.text ? 'keyDown' : 'rawKeyDown';
  if (down) await cdp.send('Input.dispatchKeyEvent', { type, ...fields });
  if (up) await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', ...fields, text: undefined });
}

/** The keysyms (hex) of the X client's key presses, modifiers left out, until `n` came. */
async function pressedKeysyms(xev, n) {
  const out = [];
  while (out.length < n) {
    const keysym = (await xev.waitLine((l) => l.startsWith('key press '))).split(' ')[3];
    if (!/^0xffe[1-9a-e]$/.test(keysym)) out.push(keysym);
  }
  return out;
}

let browser;
before(async () => {
  for (const f of [EDGEDESK_BIN, XEVENTS_BIN]) assert.ok(existsSync(f), `${f} is missing: run cargo build --workspace --bins first`);
  browser = await launchChromium();
});
after(async () => browser?.close());

test('a German keyboard types German on a US-keymap desktop; AltGr, dead keys and Caps Lock too', async (t) => {
  const { url, xev } = await desktopWithXevents(t);
  const page = await openConnected(browser, url, { width: 640, height: 480 });
  t.after(() => page.close());
  const cdp = await page.context().newCDPSession(page);
  xev.lines.length = 0;

  const text = 'zy Zypresse öäü ß';
  for (const ch of text) await germanKey(cdp, ch);
  assert.equal((await pressedChars(xev, [...text].length)).join(''), text);

  // Shift+2 and Shift+7 print " and / on a German keyboard (US: Shift+' and no Shift).
  await germanKey(cdp, '"');
  await germanKey(cdp, '/');
  assert.deepEqual(await pressedChars(xev, 2), ['"', '/']);

  // AltGr+Q is @ and AltGr+7 is {.
  const altgr = { code: 'AltRight', key: 'AltGraph', windowsVirtualKeyCode: 225 };
  await press(cdp, altgr, true, false);
  await press(cdp, { code: 'KeyQ', key: '@', text: '@' });
  await press(cdp, { code: 'Digit7', key: '{', text: '{' });
  await press(cdp, altgr, false, true);
  assert.deepEqual(await pressedChars(xev, 2), ['@', '{']);

  // Dead key ´ then e: the browser gives the composed é with the second key.
  await press(cdp, { code: 'Equal', key: 'Dead' });
  await press(cdp, { code: 'KeyE', key: 'é', text: 'é' });
  assert.deepEqual(await pressedChars(xev, 1), ['é']);

  // Caps Lock on in the page: the keys give capitals (and Caps Lock off again, lower case).
  await press(cdp, { code: 'CapsLock', key: 'CapsLock', windowsVirtualKeyCode: 20 });
  await press(cdp, { code: 'KeyA', key: 'A', text: 'A' });
  await press(cdp, { code: 'Semicolon', key: 'Ö', text: 'Ö' });
  await press(cdp, { code: 'CapsLock', key: 'CapsLock', windowsVirtualKeyCode: 20 });
  await press(cdp, { code: 'KeyA', key: 'a', text: 'a' });
  assert.deepEqual(await pressedChars(xev, 3), ['A', 'Ö', 'a']);

  // Shortcuts: Ctrl+Z on the German keyboard (the Y key) is Control and the key of z.
  xev.lines.length = 0;
  await cdp.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', code: 'ControlLeft', key: 'Control', modifiers: 2, windowsVirtualKeyCode: 17 });
  await press(cdp, { code: 'KeyY', key: 'z', modifiers: 2 });
  await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', code: 'ControlLeft', key: 'Control', windowsVirtualKeyCode: 17 });
  const presses = [];
  while (presses.length < 2) presses.push((await xev.waitLine((l) => l.startsWith('key press '))).split(' ').slice(2, 4).join(' '));
  assert.deepEqual(presses, ['37 0xffe3', '52 0x7a']);
});

test('text without key events (IME, emoji, dictation) is typed', async (t) => {
  const { url, xev } = await desktopWithXevents(t);
  const page = await openConnected(browser, url, { width: 640, height: 480 });
  t.after(() => page.close());
  const cdp = await page.context().newCDPSession(page);
  // A click on the desktop gives the page's keyboard sink the focus, as a user's first click does.
  const p = await clientPoint(page, 320, 240);
  await page.mouse.click(p.x, p.y);
  await page.waitForFunction(() => document.activeElement?.id === 'keyboard-sink');
  xev.lines.length = 0;
  await cdp.send('Input.insertText', { text: 'äö€ж' });
  assert.deepEqual(await pressedChars(xev, 4), ['ä', 'ö', '€', 'ж']);
  // An IME composition: only its result is typed.
  await cdp.send('Input.imeSetComposition', { text: 'ni', selectionStart: 2, selectionEnd: 2 });
  await cdp.send('Input.imeSetComposition', { text: 'nih', selectionStart: 3, selectionEnd: 3 });
  await cdp.send('Input.insertText', { text: '你好' });
  assert.deepEqual(await pressedChars(xev, 2), ['你', '好']);
  await page.waitForFunction(() => document.getElementById('keyboard-sink').value === '');
});

test('the on-screen keyboard button types into the desktop, Backspace and Enter included', async (t) => {
  const { url, xev } = await desktopWithXevents(t);
  const page = await openConnected(browser, url, { width: 640, height: 480 }, { hasTouch: true, isMobile: true });
  t.after(() => page.close());
  const cdp = await page.context().newCDPSession(page);
  const button = page.locator('#btn-keyboard');
  assert.ok(await button.isVisible(), 'the keyboard button is shown on a touch device');
  // Before the button, a tap on the desktop does not raise the keyboard.
  const p = await clientPoint(page, 100, 100);
  await page.touchscreen.tap(p.x, p.y);
  assert.notEqual(await page.evaluate(() => document.activeElement?.id), 'keyboard-sink');
  await button.tap();
  await page.waitForFunction(() => document.activeElement?.id === 'keyboard-sink' && document.activeElement.inputMode === 'text');
  xev.lines.length = 0;
  // What a phone's keyboard sends: committed text, and keys without a code.
  await cdp.send('Input.insertText', { text: 'hi' });
  await press(cdp, { code: '', key: 'Backspace', windowsVirtualKeyCode: 8 });
  await press(cdp, { code: '', key: 'Enter', windowsVirtualKeyCode: 13 });
  await cdp.send('Input.insertText', { text: 'ö' });
  assert.deepEqual(await pressedKeysyms(xev, 5), ['0x68', '0x69', '0xff08', '0xff0d', '0xf6']);
});
