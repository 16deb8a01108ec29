// input-protocol.js — the binary input protocol on the `input` data channel (no dependencies).
// One data-channel message = one protocol message: a 1-byte opcode, then fixed little-endian
// fields. The wire table lives in host/src/input/protocol.rs (doc comment) and in
// input-protocol.json beside this file; tests/input-protocol.test.mjs fails if this file and the
// JSON disagree, and the host's tests/input_protocol.rs does the same for the Rust side.
//
// Client → host: encode.*(…) → Uint8Array, or null when the value cannot be sent (a key code
// not in KEY_CODES, text over its cap). Host → client: decodeHost(bytes) → {type, …}, throws
// InputProtocolError (with .kind as in the spec's "errors") for malformed bytes.

/** Protocol version and the data channel's `protocol` string (RTCDataChannelInit.protocol). */
export const VERSION = 1;
export const CHANNEL_PROTOCOL = 'edgedesk-input/1';

/** Default caps (bytes of UTF-8); the host's may be configured lower or higher. */
export const MAX_TEXT_BYTES = 4096;
export const MAX_CLIPBOARD_BYTES = 1048576;
/** Most UTF-8 bytes a sender puts in one clipboard/clipboardPart message (a data-channel
 *  message is at most 64 KiB by default); longer texts go as parts plus a closing clipboard. */
export const CLIPBOARD_PART_BYTES = 61440;

/** Wheel units in one notch (like Windows' WHEEL_DELTA); + is right/down, as DOM WheelEvent. */
export const WHEEL_NOTCH = 120;

/** locks flags: Caps Lock and Num Lock on. */
export const LOCK_CAPS = 1;
export const LOCK_NUM = 2;
/** X keysyms are 29-bit values (0 is NoSymbol). */
export const MAX_KEYSYM = 0x1fffffff;

/** Client → host opcodes. */
export const OP = Object.freeze({
  keyDown: 0x01, keyUp: 0x02, text: 0x03, keysymDown: 0x04, locks: 0x05,
  pointerAbs: 0x10, pointerRel: 0x11, buttonDown: 0x12, buttonUp: 0x13, wheel: 0x14,
  touch: 0x18,
  clipboard: 0x20, resize: 0x21, clipboardPart: 0x22,
  ping: 0x30, heartbeat: 0x31, releaseAll: 0x32,
});

/** Host → client opcodes. */
export const HOST_OP = Object.freeze({ pong: 0x80, clipboard: 0x81, resizeResult: 0x82, notice: 0x83, clipboardPart: 0x84, clock: 0x85, linkStats: 0x86 });

/** Mouse buttons, numbered as MouseEvent.button. */
export const BUTTON = Object.freeze({ left: 0, middle: 1, right: 2, back: 3, forward: 4 });
export const TOUCH_PHASE = Object.freeze({ start: 0, move: 1, end: 2, cancel: 3 });
export const RESIZE_STATUS = Object.freeze({ applied: 0, scaledByClient: 1, refused: 2 });
/** Notice codes the host may send; unknown ones decode as code 'unknown' with their value. */
export const NOTICE = Object.freeze({ viewOnly: 1, clipboardOff: 2, clipboardTooLarge: 3, malformed: 4, rateLimited: 5 });

/** KeyboardEvent.code values by wire index. Append-only: the order is part of the protocol. */
export const KEY_CODES = Object.freeze([
  'KeyA', 'KeyB', 'KeyC', 'KeyD', 'KeyE', 'KeyF', 'KeyG', 'KeyH',
  'KeyI', 'KeyJ', 'KeyK', 'KeyL', 'KeyM', 'KeyN', 'KeyO', 'KeyP',
  'KeyQ', 'KeyR', 'KeyS', 'KeyT', 'KeyU', 'KeyV', 'KeyW', 'KeyX',
  'KeyY', 'KeyZ', 'Digit0', 'Digit1', 'Digit2', 'Digit3', 'Digit4', 'Digit5',
  'Digit6', 'Digit7', 'Digit8', 'Digit9', 'Enter', 'Escape', 'Backspace', 'Tab',
  'Space', 'Minus', 'Equal', 'BracketLeft', 'BracketRight', 'Backslash', 'IntlBackslash', 'Semicolon',
  'Quote', 'Backquote', 'Comma', 'Period', 'Slash', 'CapsLock', 'F1', 'F2',
  'F3', 'F4', 'F5', 'F6', 'F7', 'F8', 'F9', 'F10',
  'F11', 'F12', 'F13', 'F14', 'F15', 'F16', 'F17', 'F18',
  'F19', 'F20', 'F21', 'F22', 'F23', 'F24', 'PrintScreen', 'ScrollLock',
  'Pause', 'Insert', 'Home', 'PageUp', 'Delete', 'End', 'PageDown', 'ArrowRight',
  'ArrowLeft', 'ArrowDown', 'ArrowUp', 'NumLock', 'NumpadDivide', 'NumpadMultiply', 'NumpadSubtract', 'NumpadAdd',
  'NumpadEnter', 'Numpad1', 'Numpad2', 'Numpad3', 'Numpad4', 'Numpad5', 'Numpad6', 'Numpad7',
  'Numpad8', 'Numpad9', 'Numpad0', 'NumpadDecimal', 'NumpadEqual', 'NumpadComma', 'NumpadParenLeft', 'NumpadParenRight',
  'ContextMenu', 'ControlLeft', 'ShiftLeft', 'AltLeft', 'MetaLeft', 'ControlRight', 'ShiftRight', 'AltRight',
  'MetaRight', 'IntlRo', 'IntlYen', 'KanaMode', 'Convert', 'NonConvert', 'Lang1', 'Lang2',
  'Lang3', 'Lang4', 'Lang5', 'AudioVolumeMute', 'AudioVolumeDown', 'AudioVolumeUp', 'MediaPlayPause', 'MediaStop',
  'MediaTrackNext', 'MediaTrackPrevious', 'MediaSelect', 'LaunchMail', 'LaunchApp1', 'LaunchApp2', 'BrowserSearch', 'BrowserHome',
  'BrowserBack', 'BrowserForward', 'BrowserStop', 'BrowserRefresh', 'BrowserFavorites', 'Eject', 'Power', 'Sleep',
  'WakeUp', 'Help', 'Again', 'Undo', 'Cut', 'Copy', 'Paste', 'Find',
  'Open', 'Props', 'Select',
]);

const KEY_INDEX = new Map(KEY_CODES.map((code, i) => [code, i]));

/** The wire index of a KeyboardEvent.code, or undefined. */
export function keyIndex(code) {
  return KEY_INDEX.get(code);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An integer clamped to [lo, hi] (NaN → lo). */
function clampInt(v, lo, hi) {
  const n = Math.round(Number(v));
  if (!(n >= lo)) return lo;
  return n > hi ? hi : n;
}

/** A message of `size` bytes after the opcode; `fill(view)` writes the fields at offset 1. */
function message(opcode, size, fill) {
  const bytes = new Uint8Array(1 + size);
  bytes[0] = opcode;
  if (fill) fill(new DataView(bytes.buffer));
  return bytes;
}

function key(opcode, code) {
  const index = KEY_INDEX.get(code);
  if (index === undefined) return null;
  return message(opcode, 2, (v) => v.setUint16(1, index, true));
}

function str(opcode, s, lenBytes, maxBytes) {
  const body = utf8.encode(String(s));
  if (body.length > maxBytes) return null;
  const bytes = message(opcode, lenBytes + body.length, (v) => {
    if (lenBytes === 2) v.setUint16(1, body.length, true);
    else v.setUint32(1, body.length, true);
  });
  bytes.set(body, 1 + lenBytes);
  return bytes;
}

/** A point in a w×h video, as pointerAbs and touch carry it: w, h ≥ 1, 0 ≤ x < w, 0 ≤ y < h. */
function point(x, y, w, h) {
  const width = clampInt(w, 1, 0xffff);
  const height = clampInt(h, 1, 0xffff);
  return [clampInt(x, 0, width - 1), clampInt(y, 0, height - 1), width, height];
}

function putU16s(v, offset, values) {
  values.forEach((n, i) => v.setUint16(offset + 2 * i, n, true));
}

const i16 = (n) => clampInt(n, -0x8000, 0x7fff);

/**
 * Client → host encoders. Numbers are rounded and clamped into their field (a pointer position
 * into the video, deltas into i16), so any finite input gives a message the host accepts.
 */
export const encode = Object.freeze({
  /** A physical key (KeyboardEvent.code) pressed; null for a code not in KEY_CODES. */
  keyDown: (code) => key(OP.keyDown, code),
  keyUp: (code) => key(OP.keyUp, code),
  /** The key `code` pressed, making X keysym `keysym` in the user's layout (see keyboard.js);
   *  released with keyUp(code). null for an unknown code or a keysym out of 1..MAX_KEYSYM. */
  keysymDown: (code, keysym) => {
    const index = KEY_INDEX.get(code);
    if (index === undefined || !Number.isInteger(keysym) || keysym < 1 || keysym > MAX_KEYSYM) return null;
    return message(OP.keysymDown, 6, (v) => {
      v.setUint16(1, index, true);
      v.setUint32(3, keysym, true);
    });
  },
  /** The user's lock keys: LOCK_CAPS | LOCK_NUM. */
  locks: (flags) => message(OP.locks, 1, (v) => v.setUint8(1, Number(flags) & (LOCK_CAPS | LOCK_NUM))),
  /** Characters to type as they are; null when over maxBytes (see splitText). */
  text: (s, maxBytes = MAX_TEXT_BYTES) => str(OP.text, s, 2, Math.min(maxBytes, 0xffff)),
  /** Pointer at (x, y) of a w×h video (video pixels, not CSS pixels). */
  pointerAbs: (x, y, w, h) => message(OP.pointerAbs, 8, (v) => putU16s(v, 1, point(x, y, w, h))),
  /** Relative motion under pointer lock (MouseEvent.movementX/Y). */
  pointerRel: (dx, dy) => message(OP.pointerRel, 4, (v) => {
    v.setInt16(1, i16(dx), true);
    v.setInt16(3, i16(dy), true);
  }),
  /** A button (MouseEvent.button: 0 left … 4 forward, or a BUTTON name) down or up; null for others. */
  button: (btn, down) => {
    const b = typeof btn === 'string' ? BUTTON[btn] : btn;
    if (!Number.isInteger(b) || b < 0 || b > 4) return null;
    return message(down ? OP.buttonDown : OP.buttonUp, 1, (v) => v.setUint8(1, b));
  },
  /** Scroll in WHEEL_NOTCH units per notch; + is right/down. */
  wheel: (dx, dy) => message(OP.wheel, 4, (v) => {
    v.setInt16(1, i16(dx), true);
    v.setInt16(3, i16(dy), true);
  }),
  /** A touch point: phase 'start'|'move'|'end'|'cancel' (or 0–3), id 0–255, position in a w×h video. */
  touch: (phase, id, x, y, w, h) => {
    const p = typeof phase === 'string' ? TOUCH_PHASE[phase] : phase;
    if (!Number.isInteger(p) || p < 0 || p > 3) return null;
    return message(OP.touch, 10, (v) => {
      v.setUint8(1, p);
      v.setUint8(2, Number(id) & 0xff);
      putU16s(v, 3, point(x, y, w, h));
    });
  },
  /** Clipboard text for the host; null when over maxBytes. */
  clipboard: (s, maxBytes = MAX_CLIPBOARD_BYTES) => str(OP.clipboard, s, 4, Math.min(maxBytes, 0xffffffff)),
  /** The leading part of a clipboard text too long for one message (see clipboardMessages). */
  clipboardPart: (s, maxBytes = MAX_CLIPBOARD_BYTES) => str(OP.clipboardPart, s, 4, Math.min(maxBytes, 0xffffffff)),
  /** Wanted display size in device pixels, and devicePixelRatio (sent ×100). */
  resize: (w, h, dpr) => message(OP.resize, 6, (v) => {
    putU16s(v, 1, [clampInt(w, 1, 0xffff), clampInt(h, 1, 0xffff), clampInt(Number(dpr) * 100, 1, 0xffff)]);
  }),
  /** Ping: seq (u32, wraps) and the client's clock in ms (performance.now()); null if ts is not finite. */
  ping: (seq, ts) => {
    if (!Number.isFinite(ts)) return null;
    return message(OP.ping, 12, (v) => {
      v.setUint32(1, Number(seq) >>> 0, true);
      v.setFloat64(5, ts, true);
    });
  },
  heartbeat: () => message(OP.heartbeat, 0),
  /** The client lost focus: the host releases every key and button this peer holds. */
  releaseAll: () => message(OP.releaseAll, 0),
});

/**
 * Splits a string into pieces of at most maxBytes of UTF-8 each, never inside a code point, so
 * that long text (a paste through the text path, a long IME commit) goes out as several `text`.
 */
export function splitText(s, maxBytes = MAX_TEXT_BYTES) {
  const pieces = [];
  let piece = '';
  let size = 0;
  for (const ch of String(s)) {
    const n = utf8.encode(ch).length;
    if (size + n > maxBytes && piece) {
      pieces.push(piece);
      piece = '';
      size = 0;
    }
    piece += ch;
    size += n;
  }
  if (piece) pieces.push(piece);
  return pieces;
}

/**
 * The messages that carry one clipboard text: clipboardPart for every piece but the last, then
 * clipboard; pieces of at most partBytes, split between code points. null when the whole text
 * is over maxBytes (nothing is sent cut short).
 */
export function clipboardMessages(s, { maxBytes = MAX_CLIPBOARD_BYTES, partBytes = CLIPBOARD_PART_BYTES } = {}) {
  const text = String(s);
  if (utf8.encode(text).length > maxBytes) return null;
  const pieces = splitText(text, partBytes);
  if (pieces.length === 0) pieces.push('');
  const last = pieces.pop();
  return [...pieces.map((p) => encode.clipboardPart(p, maxBytes)), encode.clipboard(last, maxBytes)];
}

/** Joins decoded clipboardPart/clipboard messages into whole texts, as the host does. */
export class ClipboardAssembler {
  constructor(maxBytes = MAX_CLIPBOARD_BYTES) {
    this.maxBytes = maxBytes;
    this.parts = [];
    this.size = 0;
    this.overflowed = false;
  }

  /** A clipboardPart's text. */
  part(text) {
    this.size += utf8.encode(text).length;
    if (this.overflowed || this.size > this.maxBytes) {
      this.overflowed = true;
      this.parts = [];
    } else {
      this.parts.push(text);
    }
  }

  /** The closing clipboard's text: the whole text, or null when it went over the cap. */
  finish(text) {
    const size = this.size + utf8.encode(text).length;
    const whole = this.overflowed || size > this.maxBytes ? null : this.parts.join('') + text;
    this.parts = [];
    this.size = 0;
    this.overflowed = false;
    return whole;
  }
}

/** Malformed host → client bytes; `kind` is one of the spec's "errors". */
export class InputProtocolError extends Error {
  constructor(kind, detail) {
    super(`input protocol: ${kind}${detail ? ` (${detail})` : ''}`);
    this.name = 'InputProtocolError';
    this.kind = kind;
  }
}

const byValue = (obj) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [v, k]));
const RESIZE_STATUS_NAME = byValue(RESIZE_STATUS);
const NOTICE_NAME = byValue(NOTICE);

/**
 * Decodes one host → client message (ArrayBuffer, TypedArray or DataView) into
 * {type: 'pong', seq, clientTime, hostTime} | {type: 'clipboard', text} |
 * {type: 'resizeResult', status, width, height} | {type: 'notice', code[, value]} |
 * {type: 'clock', rtpTimestamp, unixMs} | {type: 'linkStats', estimateBps, encoderBps}.
 * Throws InputProtocolError; checks sizes first, then contents, as the host's decoder does.
 */
export function decodeHost(data, { maxClipboardBytes = MAX_CLIPBOARD_BYTES } = {}) {
  const bytes = data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length === 0) throw new InputProtocolError('empty');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const opcode = bytes[0];
  const exact = (payload) => {
    if (bytes.length < 1 + payload) throw new InputProtocolError('truncated', `need ${1 + payload}, got ${bytes.length}`);
    if (bytes.length > 1 + payload) throw new InputProtocolError('trailingBytes');
  };
  const finite = (t, field) => {
    if (!Number.isFinite(t)) throw new InputProtocolError('outOfRange', field);
    return t;
  };
  switch (opcode) {
    case HOST_OP.pong: {
      exact(20);
      return {
        type: 'pong',
        seq: view.getUint32(1, true),
        clientTime: finite(view.getFloat64(5, true), 'clientTime'),
        hostTime: finite(view.getFloat64(13, true), 'hostTime'),
      };
    }
    case HOST_OP.clipboard:
    case HOST_OP.clipboardPart: {
      if (bytes.length < 5) throw new InputProtocolError('truncated', `need 5, got ${bytes.length}`);
      const len = view.getUint32(1, true);
      if (len > maxClipboardBytes) throw new InputProtocolError('tooLong', `${len} bytes`);
      if (bytes.length < 5 + len) throw new InputProtocolError('truncated', `need ${5 + len}, got ${bytes.length}`);
      if (bytes.length > 5 + len) throw new InputProtocolError('trailingBytes');
      let text;
      try {
        text = utf8Strict.decode(bytes.subarray(5));
      } catch {
        throw new InputProtocolError('badUtf8');
      }
      return { type: opcode === HOST_OP.clipboard ? 'clipboard' : 'clipboardPart', text };
    }
    case HOST_OP.resizeResult: {
      exact(5);
      const status = RESIZE_STATUS_NAME[bytes[1]];
      if (status === undefined) throw new InputProtocolError('outOfRange', 'status');
      return { type: 'resizeResult', status, width: view.getUint16(2, true), height: view.getUint16(4, true) };
    }
    case HOST_OP.clock: {
      exact(12);
      return { type: 'clock', rtpTimestamp: view.getUint32(1, true), unixMs: finite(view.getFloat64(5, true), 'unixMs') };
    }
    case HOST_OP.linkStats: {
      exact(8);
      return { type: 'linkStats', estimateBps: view.getUint32(1, true), encoderBps: view.getUint32(5, true) };
    }
    case HOST_OP.notice: {
      exact(1);
      const code = NOTICE_NAME[bytes[1]];
      return code === undefined ? { type: 'notice', code: 'unknown', value: bytes[1] } : { type: 'notice', code };
    }
    default:
      throw new InputProtocolError('unknownOpcode', `0x${opcode.toString(16).padStart(2, '0')}`);
  }
}
