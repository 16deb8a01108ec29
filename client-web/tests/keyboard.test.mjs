// tests/keyboard.test.mjs — keyboard.js: what each key press sends, for several layouts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyAction, keysymForChar, lockFlags, codeForKey, XK } from '../keyboard.js';

const ev = (code, key, mods = {}) => ({
  code,
  key,
  ctrlKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
  getModifierState: (m) => Boolean(mods[m]),
});
const keysym = (ch) => ({ kind: 'keysym', keysym: keysymForChar(ch) });

test('keysyms of characters: Latin-1 is the code point, the rest Unicode keysyms', () => {
  assert.equal(keysymForChar('a'), 0x61);
  assert.equal(keysymForChar(' '), 0x20);
  assert.equal(keysymForChar('ö'), 0xf6);
  assert.equal(keysymForChar('ß'), 0xdf);
  assert.equal(keysymForChar('€'), 0x010020ac);
  assert.equal(keysymForChar('ж'), 0x01000436);
  assert.equal(keysymForChar('😀'), 0x0101f600);
  for (const c of ['\n', '\t', '\u007f', '\u0085', '']) assert.equal(keysymForChar(c), null, JSON.stringify(c));
});

test('a German keyboard sends what its keys print', () => {
  assert.deepEqual(keyAction(ev('KeyY', 'z')), keysym('z'));
  assert.deepEqual(keyAction(ev('KeyZ', 'y')), keysym('y'));
  assert.deepEqual(keyAction(ev('KeyZ', 'Y', { shiftKey: true })), keysym('Y'));
  assert.deepEqual(keyAction(ev('Semicolon', 'ö')), keysym('ö'));
  assert.deepEqual(keyAction(ev('Quote', 'ä')), keysym('ä'));
  assert.deepEqual(keyAction(ev('BracketLeft', 'ü')), keysym('ü'));
  assert.deepEqual(keyAction(ev('Minus', 'ß')), keysym('ß'));
  assert.deepEqual(keyAction(ev('Digit2', '"', { shiftKey: true })), keysym('"'));
  // AltGr itself, and what it makes.
  assert.deepEqual(keyAction(ev('AltRight', 'AltGraph', { AltGraph: true })), { kind: 'keysym', keysym: XK.ISO_Level3_Shift });
  assert.deepEqual(keyAction(ev('KeyQ', '@', { AltGraph: true })), keysym('@'));
  // Windows reports AltGr as Ctrl+Alt: still the character, not a shortcut.
  assert.deepEqual(keyAction(ev('Digit7', '{', { ctrlKey: true, altKey: true, AltGraph: true })), keysym('{'));
  // Dead key: nothing; the composed character comes with the next key.
  assert.deepEqual(keyAction(ev('Equal', 'Dead')), { kind: 'none' });
  assert.deepEqual(keyAction(ev('KeyE', 'é')), keysym('é'));
});

test('shortcuts keep working on every layout', () => {
  // Ctrl+Z on a German keyboard is the key that prints z.
  assert.deepEqual(keyAction(ev('KeyY', 'z', { ctrlKey: true })), keysym('z'));
  // Ctrl+C on a Russian layout is the physical C key (shortcuts are bound to Latin keysyms).
  assert.deepEqual(keyAction(ev('KeyC', 'с', { ctrlKey: true })), { kind: 'code' });
  assert.deepEqual(keyAction(ev('KeyC', 'с', { metaKey: true })), { kind: 'code' });
  assert.deepEqual(keyAction(ev('KeyC', 'с')), keysym('с'));
  // Named keys are physical keys.
  for (const [code, key] of [['Enter', 'Enter'], ['Tab', 'Tab'], ['F5', 'F5'], ['ArrowLeft', 'ArrowLeft'],
    ['ShiftLeft', 'Shift'], ['ControlLeft', 'Control'], ['AltLeft', 'Alt'], ['MetaLeft', 'Meta'], ['Backspace', 'Backspace']]) {
    assert.deepEqual(keyAction(ev(code, key)), { kind: 'code' }, code);
  }
});

test('keypad keys go as keypad keysyms; lock keys as state', () => {
  assert.deepEqual(keyAction(ev('Numpad1', '1')), { kind: 'keysym', keysym: 0xffb1 });
  assert.deepEqual(keyAction(ev('Numpad0', '0')), { kind: 'keysym', keysym: 0xffb0 });
  assert.deepEqual(keyAction(ev('NumpadAdd', '+')), { kind: 'keysym', keysym: 0xffab });
  assert.deepEqual(keyAction(ev('NumpadDecimal', ',')), { kind: 'keysym', keysym: 0xffac });
  assert.deepEqual(keyAction(ev('Numpad1', 'End')), { kind: 'code' }); // Num Lock off
  assert.deepEqual(keyAction(ev('NumpadEnter', 'Enter')), { kind: 'code' });
  assert.deepEqual(keyAction(ev('CapsLock', 'CapsLock')), { kind: 'lock' });
  assert.deepEqual(keyAction(ev('NumLock', 'NumLock')), { kind: 'lock' });
  assert.equal(lockFlags(ev('KeyA', 'A', { CapsLock: true })), 1);
  assert.equal(lockFlags(ev('KeyA', 'a', { NumLock: true })), 2);
  assert.equal(lockFlags(ev('KeyA', 'A', { CapsLock: true, NumLock: true })), 3);
  assert.equal(lockFlags({ key: 'a', code: 'KeyA' }), null);
});

test('keys without a code (on-screen keyboards) find one by name', () => {
  assert.equal(codeForKey('Backspace'), 'Backspace');
  assert.equal(codeForKey('Enter'), 'Enter');
  assert.equal(codeForKey('ArrowUp'), 'ArrowUp');
  assert.equal(codeForKey(' '), 'Space');
  assert.equal(codeForKey('a'), null);
  assert.equal(codeForKey('Unidentified'), null);
  assert.equal(codeForKey(undefined), null);
});
