// keyboard.js — what a key press means for the desktop, decided by the user's own layout.
//
// A key that makes a character in the user's layout (KeyboardEvent.key is one character) goes
// as that character's X keysym with its physical code (keysymDown): the host presses whatever
// key of the desktop's keymap makes that keysym, so a German Z key types z, Shift+2 types ",
// AltGr+Q types @ and ö types ö on a desktop with a US keymap — with no desktop set-up. Control,
// Alt and Super stay held, so Ctrl+Z is Ctrl and the key of z on every layout. Two exceptions:
//   * With Ctrl, Alt (not AltGr) or Meta held, a character outside the Latin script (Cyrillic,
//     Greek, …) goes as its physical key: Ctrl+С on a Russian layout is Ctrl+C, as a local
//     desktop treats it (shortcuts are bound to Latin keysyms).
//   * Keys without a character (Enter, Tab, arrows, F-keys, Shift, Ctrl, Alt) go as physical
//     keys (keyDown); AltGraph goes as the keysym ISO_Level3_Shift.
// Dead keys send nothing: the browser composes (´ then e gives a keydown with key 'é', or a
// composition whose result arrives as text). Keypad keys with a character go as keypad keysyms
// (KP_1 …), so Num Lock on the user's keyboard decides, as it does locally. Caps Lock and Num
// Lock are not sent as keys: their state is (locks), and the host makes the desktop's match.
//
// Why keysyms and not the layout map: navigator.keyboard.getLayoutMap() exists only in
// Chromium, knows no dead keys, AltGr levels or IMEs, and switching the desktop's keymap to the
// user's would change it for every other viewer of the session. A keysym is what the user saw
// printed, whatever the desktop's keymap.

import { keyIndex } from './input-protocol.js';

/** X keysyms used here. */
export const XK = Object.freeze({
  ISO_Level3_Shift: 0xfe03,
  KP_Multiply: 0xffaa,
  KP_Add: 0xffab,
  KP_Separator: 0xffac,
  KP_Subtract: 0xffad,
  KP_Decimal: 0xffae,
  KP_Divide: 0xffaf,
  KP_0: 0xffb0,
  KP_Equal: 0xffbd,
});

/** The X keysym of one character: Latin-1 is its code point, the rest 0x01000000 | code point;
 *  null for control characters. */
export function keysymForChar(ch) {
  const cp = String(ch).codePointAt(0);
  if (cp === undefined || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null;
  if (cp <= 0xff) return cp;
  return 0x01000000 | cp;
}

/** Keypad keysyms for the characters a keypad key makes. */
const KEYPAD = Object.freeze({
  '*': XK.KP_Multiply, '+': XK.KP_Add, '-': XK.KP_Subtract, '/': XK.KP_Divide, '=': XK.KP_Equal,
  '.': XK.KP_Decimal, ',': XK.KP_Separator,
});

/** Whether a string is exactly one character (one code point; a grapheme of several, such as
 *  an emoji with a modifier, goes as text). */
function oneChar(s) {
  return typeof s === 'string' && s.length > 0 && [...s].length === 1;
}

/**
 * What to send for a keydown:
 *   { kind: 'keysym', keysym }  keysymDown(code, keysym)
 *   { kind: 'code' }            keyDown(code), the physical key
 *   { kind: 'lock' }            nothing but the lock state (Caps Lock, Num Lock)
 *   { kind: 'none' }            nothing (a dead key: the composed result follows)
 * `ev` needs key, code, ctrlKey, altKey, metaKey and optionally getModifierState.
 */
export function keyAction(ev) {
  const { key, code } = ev;
  if (code === 'CapsLock' || code === 'NumLock') return { kind: 'lock' };
  if (key === 'Dead') return { kind: 'none' };
  if (key === 'AltGraph') return { kind: 'keysym', keysym: XK.ISO_Level3_Shift };
  if (!oneChar(key)) return { kind: 'code' };
  if (code.startsWith('Numpad')) {
    const keysym = /^[0-9]$/.test(key) ? XK.KP_0 + Number(key) : KEYPAD[key];
    return keysym ? { kind: 'keysym', keysym } : { kind: 'code' };
  }
  const keysym = keysymForChar(key);
  if (keysym === null) return { kind: 'code' };
  const altGraph = typeof ev.getModifierState === 'function' && ev.getModifierState('AltGraph');
  const shortcut = ev.ctrlKey || ev.metaKey || (ev.altKey && !altGraph);
  if (shortcut && key.codePointAt(0) > 0x24f) return { kind: 'code' };
  return { kind: 'keysym', keysym };
}

/** The lock state of an event as locks() flags (bit 0 Caps Lock, bit 1 Num Lock), or null when
 *  the event cannot tell. */
export function lockFlags(ev) {
  if (typeof ev.getModifierState !== 'function') return null;
  return (ev.getModifierState('CapsLock') ? 1 : 0) | (ev.getModifierState('NumLock') ? 2 : 0);
}

/** The physical code for a key event without one (on-screen keyboards often send code ''):
 *  named keys whose name is also a code (Backspace, Enter, Tab, ArrowLeft, F5…), Space; else
 *  null. */
export function codeForKey(key) {
  if (key === ' ') return 'Space';
  if (typeof key !== 'string' || key.length < 2 || keyIndex(key) === undefined) return null;
  return key;
}
