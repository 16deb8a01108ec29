// shortcuts.js — the client's own keyboard shortcuts: Ctrl+Alt+Shift + a letter, a chord that
// desktop applications practically never use. Kept apart so that the input module (which will
// forward keys to the remote desktop) can ask isClientShortcut() and not forward these.
//
//   Ctrl+Alt+Shift+S  stats overlay        Ctrl+Alt+Shift+F  fullscreen
//   Ctrl+Alt+Shift+C  local cursor         Ctrl+Alt+Shift+M  sound on/off
//   Ctrl+Alt+Shift+L  pointer lock (relative mouse, for games and 3D apps; Esc leaves it)

/** KeyboardEvent.code → action name. */
export const SHORTCUT_KEYS = Object.freeze({ KeyS: 'stats', KeyF: 'fullscreen', KeyC: 'cursor', KeyM: 'sound', KeyL: 'pointerLock' });

/** The action name of a client shortcut, or null for a key meant for the remote desktop. */
export function clientShortcut(ev) {
  if (!(ev.ctrlKey && ev.altKey && ev.shiftKey) || ev.metaKey) return null;
  return Object.hasOwn(SHORTCUT_KEYS, ev.code) ? SHORTCUT_KEYS[ev.code] : null;
}
