// input.js — the desktop's keyboard, mouse, wheel and touch, captured over the <video> and sent
// on the "input" data channel in the binary protocol of input-protocol.js.
//
// * Keys type what the user's own layout prints on them (keyboard.js decides: a key that makes
//   a character goes as its X keysym, other keys as physical keys, KeyboardEvent.code), so a
//   German, French or Russian keyboard types its own characters on any desktop keymap; Caps
//   Lock and Num Lock travel as state (locks) and the desktop's follow. Text that arrives
//   without key events — IME composition, phone and tablet keyboards, emoji pickers, dictation,
//   dead-key results — is typed as text: a hidden, focused <textarea> (the keyboard sink)
//   receives it through beforeinput/compositionend. On touch devices a keyboard button focuses
//   it to raise the on-screen keyboard (Backspace and Enter included, also as input events).
//   The client's own shortcuts (Ctrl+Alt+Shift+…, shortcuts.js) are never forwarded. Browser
//   shortcuts that a desktop user expects to reach the desktop (Tab, F1–F12, Ctrl+S, Ctrl+P,
//   Backspace…) are prevented; the few a page cannot stop (Ctrl+W, Ctrl+T, Ctrl+N) are caught
//   in fullscreen through Keyboard Lock where the browser offers it. Esc held leaves
//   fullscreen/pointer lock (browser rule).
// * The pointer is sent in video pixels (the <video> letterboxes with object-fit: contain, so
//   the position is mapped through the displayed rectangle); with pointer lock, relative motion.
// * Wheel deltas become hi-res units (120 = one notch) so trackpads scroll smoothly.
// * Touch: one finger drives the pointer (tap = click, drag = press and move), two fingers
//   scroll.
// * Focus loss or a hidden page sends ReleaseAll, so nothing stays pressed on the desktop.
// * Resize: on connect and (debounced) when the window changes size, the client asks the
//   desktop for its size in device pixels; the host answers with a resizeResult (event 'host').
// * Clipboard: the desktop's copies arrive as clipboard messages (in parts when long) and are
//   written to the browser's clipboard (kept until the page has focus if the browser refuses
//   now); a paste (Ctrl+V, Cmd+V, Shift+Insert) sends the browser's clipboard text first and
//   the key after it, so the desktop application pastes the text just sent. The paste key's
//   keydown is not prevented: the browser's paste event is what gives the page the text
//   without a permission prompt.
// * A heartbeat every second (the host releases everything when they stop) and a ping every
//   2 s (its pong gives the RTT shown in the stats overlay).

import { encode, decodeHost, splitText, clipboardMessages, ClipboardAssembler } from './input-protocol.js';
import { clientShortcut } from './shortcuts.js';
import { keyAction, lockFlags, codeForKey } from './keyboard.js';
import { GlassToGlass } from './latency.js';

const HEARTBEAT_MS = 1000;
const RESIZE_DEBOUNCE_MS = 400;
const IS_MAC = /Mac/.test(navigator.platform || navigator.userAgent);
const PING_MS = 2000;
const WHEEL_UNITS_PER_PIXEL = 1.2; // Chromium: 100 px per notch → 120 units
const WHEEL_UNITS_PER_LINE = 40; // 3 lines per notch → 120 units
const TOUCH_DRAG_PX = 8; // a finger moving further than this drags (button held)

export class InputCapture extends EventTarget {
  /**
   * @param {HTMLVideoElement} video
   * @param {HTMLTextAreaElement} [sink] the keyboard sink: a hidden editable element that takes
   *   the focus, so IMEs, on-screen keyboards and text insertion have somewhere to type
   */
  constructor(video, sink = null) {
    super();
    this.video = video;
    this.sink = sink;
    this.latency = new GlassToGlass(video); // glass-to-glass estimate for the stats overlay
    this.locksSent = null; // the lock flags last sent (null: none yet on this channel)
    this.touchDevice = (navigator.maxTouchPoints ?? 0) > 0 || matchMedia('(any-pointer: coarse)').matches;
    this.channel = null;
    this.pressed = new Set(); // codes down
    this.buttons = new Set();
    this.rttMs = null;
    this.linkStats = null; // the host's {estimateBps, encoderBps}, about once a second
    this.pingSeq = 0;
    this.touch = null; // {id, x, y, moved, startedAt} or {scroll: true, y}
    this.wheelRest = { x: 0, y: 0 };
    this.sentMessages = 0;
    this.clipboardIn = new ClipboardAssembler();
    this.hostClipboard = null; // the last text the desktop copied
    this.pendingClipboard = null; // a desktop copy not yet written to the browser's clipboard
    this.pasteKey = null; // the paste shortcut's key, sent after the paste event's text
    this.install();
    setInterval(() => this.send(encode.heartbeat()), HEARTBEAT_MS);
    setInterval(() => this.send(encode.ping(++this.pingSeq >>> 0, performance.now())), PING_MS);
  }

  /** Use this data channel (a new one after each reconnect). */
  attach(channel) {
    this.channel = channel;
    this.locksSent = null;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', (ev) => this.onHostMessage(ev.data));
    this.requestResize();
    if (!this.touchDevice && document.hasFocus()) this.focusSink();
  }

  /** Asks the desktop for the window's size in device pixels (the host applies it when its
   *  display can change size, else answers that the client scales). */
  requestResize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(window.innerWidth * dpr);
    const h = Math.round(window.innerHeight * dpr);
    if (w > 0 && h > 0) this.send(encode.resize(w, h, dpr));
  }

  onHostMessage(data) {
    let msg;
    try {
      msg = decodeHost(data);
    } catch {
      return; // unknown host message: a newer server; ignore
    }
    if (msg.type === 'pong') {
      this.rttMs = performance.now() - msg.clientTime;
      this.latency?.pong(msg.clientTime, msg.hostTime);
    }
    if (msg.type === 'clock') {
      this.latency?.setClock(msg);
      // A first ping now, so the clock offset is known within a round trip.
      this.send(encode.ping(++this.pingSeq >>> 0, performance.now()));
      return;
    }
    if (msg.type === 'linkStats') {
      this.linkStats = { estimateBps: msg.estimateBps, encoderBps: msg.encoderBps };
      return;
    }
    if (msg.type === 'clipboardPart') {
      this.clipboardIn.part(msg.text);
      return;
    }
    if (msg.type === 'clipboard') {
      const text = this.clipboardIn.finish(msg.text);
      if (text === null) return;
      this.hostClipboard = text;
      this.writeClipboard(text);
      this.dispatchEvent(new CustomEvent('clipboard', { detail: { text } }));
      return;
    }
    if (msg.type === 'notice') console.info(`edgedesk: ${msg.code}`);
    this.dispatchEvent(new CustomEvent('host', { detail: msg }));
  }

  /** Puts a desktop copy on the browser's clipboard; if the browser refuses (the page has no
   *  focus, or no async clipboard on plain HTTP), retries on the next focus or key press. */
  writeClipboard(text) {
    this.pendingClipboard = text;
    if (!navigator.clipboard?.writeText || !document.hasFocus()) return;
    navigator.clipboard.writeText(text).then(
      () => { if (this.pendingClipboard === text) this.pendingClipboard = null; },
      () => {},
    );
  }

  /** The text of a paste in the page, for the desktop's clipboard; then the paste key. */
  onPaste(ev) {
    const text = ev.clipboardData?.getData('text/plain') ?? '';
    ev.preventDefault();
    if (text) for (const m of clipboardMessages(text) ?? []) this.send(m);
    this.flushPasteKey();
  }

  flushPasteKey() {
    if (!this.pasteKey) return;
    const { code, bytes } = this.pasteKey;
    this.pasteKey = null;
    if (bytes && this.send(bytes)) this.pressed.add(code);
  }

  /** The message that presses a key as keyboard.js decides (null: nothing to press). */
  keyDownBytes(ev, code) {
    const action = keyAction({ ...pick(ev), code });
    if (action.kind === 'keysym') return encode.keysymDown(code, action.keysym);
    if (action.kind === 'code') return encode.keyDown(code);
    return null;
  }

  /** Sends the lock state when it changed (after the key's own message). */
  syncLocks(ev) {
    const flags = lockFlags(ev);
    if (flags === null || flags === this.locksSent) return;
    if (this.send(encode.locks(flags))) this.locksSent = flags;
  }

  /** Taps a named key (Backspace, Enter…) for input events that come without key events. */
  tapKey(code) {
    if (this.pressed.has(code)) return;
    this.send(encode.keyDown(code));
    this.send(encode.keyUp(code));
  }

  /** Gives the keyboard sink the focus; `raise` also asks for the on-screen keyboard. */
  focusSink(raise = false) {
    const k = this.sink;
    if (!k) return;
    if (raise) k.inputMode = 'text';
    if (document.activeElement !== k) k.focus({ preventScroll: true });
  }

  /** Text input without key events (IME, on-screen keyboards, dictation, insertText). */
  onBeforeInput(ev) {
    if (ev.isComposing || ev.inputType === 'insertCompositionText') return; // compositionend sends it
    switch (ev.inputType) {
      case 'insertText':
      case 'insertReplacementText':
        for (const part of ev.data ? splitText(ev.data) : []) this.send(encode.text(part));
        break;
      case 'insertLineBreak':
      case 'insertParagraph':
        this.tapKey('Enter');
        break;
      case 'deleteContentBackward':
      case 'deleteWordBackward':
        this.tapKey('Backspace');
        break;
      case 'deleteContentForward':
      case 'deleteWordForward':
        this.tapKey('Delete');
        break;
      default:
        return; // a paste is handled by onPaste; anything else is left alone
    }
    ev.preventDefault();
  }

  send(bytes) {
    if (!bytes || !this.channel || this.channel.readyState !== 'open') return false;
    this.channel.send(bytes);
    this.sentMessages++;
    return true;
  }

  /** Maps a client point to video pixels, or null outside the picture. */
  videoPoint(clientX, clientY) {
    const v = this.video;
    const w = v.videoWidth;
    const h = v.videoHeight;
    if (!w || !h) return null;
    const r = v.getBoundingClientRect();
    const scale = Math.min(r.width / w, r.height / h);
    const left = r.left + (r.width - w * scale) / 2;
    const top = r.top + (r.height - h * scale) / 2;
    const x = Math.floor((clientX - left) / scale);
    const y = Math.floor((clientY - top) / scale);
    if (x < 0 || y < 0 || x >= w || y >= h) return null;
    return { x, y, w, h };
  }

  sendPointer(ev) {
    if (document.pointerLockElement === this.video) {
      this.send(encode.pointerRel(clamp16(ev.movementX), clamp16(ev.movementY)));
      return true;
    }
    const p = this.videoPoint(ev.clientX, ev.clientY);
    if (p) this.send(encode.pointerAbs(p.x, p.y, p.w, p.h));
    return p !== null;
  }

  releaseAll() {
    if (this.pressed.size || this.buttons.size) this.send(encode.releaseAll());
    this.pressed.clear();
    this.buttons.clear();
  }

  install() {
    const v = this.video;
    window.addEventListener('keydown', (ev) => this.onKey(ev, true), { capture: true });
    window.addEventListener('keyup', (ev) => this.onKey(ev, false), { capture: true });
    window.addEventListener('compositionend', (ev) => {
      for (const part of ev.data ? splitText(ev.data) : []) this.send(encode.text(part));
      if (this.sink) setTimeout(() => { this.sink.value = ''; }, 0);
    });
    if (this.sink) {
      const k = this.sink;
      k.addEventListener('beforeinput', (ev) => this.onBeforeInput(ev));
      k.addEventListener('input', (ev) => { if (!ev.isComposing) k.value = ''; });
      // On a touch device the on-screen keyboard comes up only from the keyboard button.
      k.addEventListener('blur', () => { if (this.touchDevice) k.inputMode = 'none'; });
      k.inputMode = this.touchDevice ? 'none' : 'text';
    }
    window.addEventListener('blur', () => this.releaseAll());
    window.addEventListener('paste', (ev) => this.onPaste(ev));
    window.addEventListener('focus', () => {
      if (this.pendingClipboard !== null) this.writeClipboard(this.pendingClipboard);
    });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.requestResize(), RESIZE_DEBOUNCE_MS);
    });
    document.addEventListener('visibilitychange', () => document.hidden && this.releaseAll());

    v.addEventListener('mousemove', (ev) => this.sendPointer(ev));
    v.addEventListener('mousedown', (ev) => {
      if (!this.touchDevice) this.focusSink();
      if (!this.sendPointer(ev) && document.pointerLockElement !== v) return;
      ev.preventDefault();
      // Only a press that was sent is remembered, so no orphan release goes out later.
      if (this.send(encode.button(ev.button, true))) this.buttons.add(ev.button);
    });
    window.addEventListener('mouseup', (ev) => {
      if (!this.buttons.delete(ev.button)) return;
      this.send(encode.button(ev.button, false));
    });
    v.addEventListener('contextmenu', (ev) => ev.preventDefault());
    v.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      this.sendPointer(ev);
      const k = ev.deltaMode === 1 ? WHEEL_UNITS_PER_LINE : ev.deltaMode === 2 ? 120 : WHEEL_UNITS_PER_PIXEL;
      const x = ev.deltaX * k + this.wheelRest.x;
      const y = ev.deltaY * k + this.wheelRest.y;
      const dx = Math.trunc(x);
      const dy = Math.trunc(y);
      this.wheelRest = { x: x - dx, y: y - dy };
      if (dx || dy) this.send(encode.wheel(clamp16(dx), clamp16(dy)));
    }, { passive: false });

    v.addEventListener('touchstart', (ev) => this.onTouch(ev), { passive: false });
    v.addEventListener('touchmove', (ev) => this.onTouch(ev), { passive: false });
    v.addEventListener('touchend', (ev) => this.onTouch(ev), { passive: false });
    v.addEventListener('touchcancel', (ev) => this.onTouch(ev), { passive: false });
  }

  onKey(ev, down) {
    if (clientShortcut(ev)) return; // app.js handles it
    if (ev.isComposing || ev.keyCode === 229) return; // IME: the result comes as text
    if (down && this.pendingClipboard !== null) this.writeClipboard(this.pendingClipboard);
    // On-screen keyboards often give no code: a named key (Backspace, Enter) still has one.
    const code = ev.code || codeForKey(ev.key) || '';
    if (down && isPasteShortcut(ev) && this.channel?.readyState === 'open' && !ev.repeat) {
      // Let the browser make its paste event (onPaste sends the text, then this key). If no
      // paste event comes (nothing to paste, or a browser without one), send the key anyway.
      ev.stopPropagation();
      this.flushPasteKey();
      this.pasteKey = { code, bytes: this.keyDownBytes(ev, code) };
      setTimeout(() => this.flushPasteKey(), 0);
      return;
    }
    // Keys belong to the desktop even while reconnecting: F5 or Backspace must not reach the
    // browser (a reload would end the session).
    ev.preventDefault();
    ev.stopPropagation();
    if (!this.channel || this.channel.readyState !== 'open') return;
    // The desktop's X server repeats held keys itself; the browser's repeats are not sent.
    if (down && ev.repeat && this.pressed.has(code)) return;
    // macOS sends no keyup for keys released while Cmd is down: release them with Cmd.
    if (!down && IS_MAC && (code === 'MetaLeft' || code === 'MetaRight')) {
      for (const c of this.pressed) if (c !== code) this.send(encode.keyUp(c));
      this.pressed.clear();
    }
    if (down) {
      const bytes = this.keyDownBytes(ev, code);
      if (bytes) {
        this.pressed.add(code);
        this.send(bytes);
      } else if (keyAction(ev).kind !== 'none' && ev.key.length > 0 && [...ev.key].length === 1) {
        this.send(encode.text(ev.key)); // a key without a known code: send its character
      }
    } else if (this.pressed.delete(code)) {
      this.send(encode.keyUp(code));
    }
    this.syncLocks(ev);
  }

  onTouch(ev) {
    ev.preventDefault();
    const touches = ev.touches;
    if (touches.length >= 2) {
      // Two fingers scroll; a press a single finger started is let go first.
      const y = (touches[0].clientY + touches[1].clientY) / 2;
      if (this.touch && this.touch.scroll) {
        const dy = Math.trunc((this.touch.y - y) * WHEEL_UNITS_PER_PIXEL * 2);
        if (dy) {
          this.send(encode.wheel(0, clamp16(dy)));
          this.touch.y = y;
        }
      } else {
        if (this.buttons.delete(0)) this.send(encode.button(0, false));
        this.touch = { scroll: true, y };
      }
      return;
    }
    if (this.touch && this.touch.scroll) {
      // Lifting to one finger ends the scroll; the remaining finger starts nothing.
      if (touches.length === 0) this.touch = null;
      return;
    }
    const t = touches[0] ?? ev.changedTouches[0];
    const p = t && this.videoPoint(t.clientX, t.clientY);
    if (ev.type === 'touchstart' && touches.length === 1) {
      // The button goes down only on a tap or once the finger drags, so a second finger
      // (scroll) never starts with a click.
      if (!p) return;
      this.send(encode.pointerAbs(p.x, p.y, p.w, p.h));
      this.touch = { x: t.clientX, y: t.clientY, pressed: false };
    } else if (ev.type === 'touchmove' && this.touch) {
      if (!p) return;
      if (!this.touch.pressed && Math.hypot(t.clientX - this.touch.x, t.clientY - this.touch.y) > TOUCH_DRAG_PX) {
        if (this.send(encode.button(0, true))) this.buttons.add(0);
        this.touch.pressed = true;
      }
      this.send(encode.pointerAbs(p.x, p.y, p.w, p.h));
    } else if (touches.length === 0 && this.touch) {
      if (!this.touch.pressed && ev.type === 'touchend') {
        this.send(encode.button(0, true)); // a tap: click
        this.send(encode.button(0, false));
      } else if (this.buttons.delete(0)) {
        this.send(encode.button(0, false));
      }
      this.touch = null;
    }
  }
}

/** Ctrl+V (Cmd+V on a Mac) or Shift+Insert, with no other modifier that changes its meaning
 *  (Ctrl+Shift+V, a terminal's paste, counts too). */
function isPasteShortcut(ev) {
  if (ev.code === 'Insert') return ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey;
  if (ev.code !== 'KeyV' || ev.altKey) return false;
  return IS_MAC ? ev.metaKey && !ev.ctrlKey : ev.ctrlKey && !ev.metaKey;
}

/** The fields of a KeyboardEvent that keyboard.js reads (a spread of the event copies none). */
function pick(ev) {
  return {
    key: ev.key,
    code: ev.code,
    ctrlKey: ev.ctrlKey,
    altKey: ev.altKey,
    metaKey: ev.metaKey,
    getModifierState: (k) => ev.getModifierState?.(k) ?? false,
  };
}

function clamp16(v) {
  return Math.max(-32768, Math.min(32767, Math.round(v)));
}
