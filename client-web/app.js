// app.js — the page: wires a Connection (connection.js) to the <video>, the top bar, the
// centred notice and the stats overlay, and installs the shortcuts.
//
// Open as  /?session=NAME#token=JOIN_TOKEN   (session defaults to "default"; ?token= also works).
//
// Shortcuts (Ctrl+Alt+Shift, a chord desktop applications practically never use; the input
// module must not forward them — see shortcuts.js):
//   Ctrl+Alt+Shift+S  stats overlay        Ctrl+Alt+Shift+F  fullscreen
//   Ctrl+Alt+Shift+C  local cursor         Ctrl+Alt+Shift+M  sound on/off
//
// Test handle (read-only, for end-to-end tests and the console):
//   window.edgedesk = {
//     session          session name
//     connection       the Connection (EventTarget: 'state', 'stream', 'channel')
//     pc               current RTCPeerConnection or null
//     video            the <video> element
//     inputChannel     the open "input" RTCDataChannel or null
//     state            'connecting' | 'connected' | 'reconnecting' | 'failed'
//     reason           headline of the last failure ('' when connected), e.g. 'Token refused'
//     reconnectCount   attempts scheduled after a failure since the page loaded
//     input            the InputCapture (input.js): rttMs, sentMessages, linkStats
//     stats()          Promise<StatsSummary|null> (stats.js): fresh getStats(), deltas since the
//                      previous stats() call
//     glassToGlass()   {ms, uncertaintyMs, samples} | null (latency.js): capture → shown, median
//                      of the last ~2 s
//   }

import { Connection } from './connection.js';
import { StatsSampler, formatRows } from './stats.js';
import { readLaunchParams } from './params.js';
import { clientShortcut } from './shortcuts.js';
import { InputCapture } from './input.js';
import { Sound } from './audio.js';

const HUD_REVEAL_PX = 56; // pointer this close to the top edge shows the bar while connected
const HUD_LINGER_MS = 2500;

const $ = (id) => document.getElementById(id);
const video = $('screen');
const ui = {
  stateText: $('state-text'),
  sessionName: $('session-name'),
  notice: $('notice'),
  noticeTitle: $('notice-title'),
  noticeDetail: $('notice-detail'),
  noticeAction: $('notice-action'),
  stats: $('stats'),
  statsRows: $('stats-rows'),
  btnStats: $('btn-stats'),
  btnSound: $('btn-sound'),
  volume: $('volume'),
  soundHint: $('sound-hint'),
  btnMic: $('btn-mic'),
  btnCursor: $('btn-cursor'),
  btnFullscreen: $('btn-fullscreen'),
};

const { session, token, endpoint, codec, relay } = readLaunchParams(location.href);
const conn = new Connection({ endpoint, token, codec, relay });
let hasPicture = false; // a frame of the current stream has been shown

document.title = `${session} — edgedesk`;
ui.sessionName.textContent = session;

// ---- connection → page ---------------------------------------------------------------------

conn.addEventListener('stream', (ev) => {
  hasPicture = false;
  // The picture's element gets the video track only: a sound track in it would make the first
  // picture wait for the audio output to start (≈ 200 ms in Chromium).
  video.srcObject = new MediaStream(ev.detail.getVideoTracks());
  video.play().catch(() => {}); // muted autoplay is allowed; a rejection here is harmless
  sound.attach(ev.detail);
  renderMic();
  render();
});
video.addEventListener('loadeddata', () => {
  hasPicture = true;
  render();
});
conn.addEventListener('state', () => { render(); renderMic(); });

// ---- input: keyboard, mouse, wheel, touch → the "input" channel (input.js) ------------------

const input = new InputCapture(video, $('keyboard-sink'));
conn.addEventListener('channel', (ev) => input.attach(ev.detail));
// Touch devices get a button that raises the on-screen keyboard (focuses the keyboard sink).
const btnKeyboard = $('btn-keyboard');
btnKeyboard.hidden = !input.touchDevice;
btnKeyboard.addEventListener('pointerdown', (ev) => ev.preventDefault()); // keep the sink's focus
btnKeyboard.addEventListener('click', () => {
  const sink = $('keyboard-sink');
  if (document.activeElement === sink && sink.inputMode === 'text') sink.blur();
  else input.focusSink(true);
});

/** Draws the state indicator and the notice from the connection's current state. */
function render() {
  const { state, reason, detail } = conn;
  document.body.dataset.state = state;
  const labels = { idle: 'Starting', connecting: 'Connecting', connected: 'Connected', reconnecting: 'Reconnecting', failed: reason || 'Failed' };
  ui.stateText.textContent = labels[state] ?? state;
  ui.stateText.parentElement.title = reason && state !== 'connected' ? `${reason}. ${detail}` : 'Connection state';

  let title = '';
  let text = '';
  let action = '';
  if (state === 'connecting' || state === 'idle') {
    title = `Connecting to ${session}…`;
  } else if (state === 'connected') {
    if (!hasPicture) title = 'Waiting for the first picture…';
  } else if (state === 'reconnecting') {
    title = reason || 'Reconnecting…';
    text = conn.retryAt ? `${detail} ${countdown()}` : detail;
    action = conn.retryAt ? 'Retry now' : '';
  } else if (state === 'failed') {
    title = reason || 'Connection failed';
    text = detail;
    action = 'Try again';
  }
  ui.notice.hidden = !title;
  ui.noticeTitle.textContent = title;
  ui.noticeDetail.textContent = text;
  ui.noticeAction.hidden = !action;
  ui.noticeAction.textContent = action;
  updateHud();
}

function countdown() {
  const s = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
  return s > 0 ? `Retrying in ${s} s.` : 'Retrying…';
}
setInterval(() => conn.state === 'reconnecting' && conn.retryAt && render(), 250);

ui.noticeAction.addEventListener('click', () => conn.retryNow());

// ---- top bar: always shown unless connected; then only near the top edge ----------------------

let pointerNearTop = false;
let lingerUntil = 0;
function updateHud() {
  const show = conn.state !== 'connected' || pointerNearTop || Date.now() < lingerUntil;
  document.body.classList.toggle('hud-hidden', !show);
}
conn.addEventListener('state', () => {
  if (conn.state === 'connected') {
    lingerUntil = Date.now() + HUD_LINGER_MS; // let the user see "Connected" for a moment
    updateHud();
    setTimeout(updateHud, HUD_LINGER_MS + 50);
  }
});
window.addEventListener('pointermove', (ev) => {
  const near = ev.clientY <= HUD_REVEAL_PX || $('hud').contains(ev.target);
  if (near !== pointerNearTop) {
    pointerNearTop = near;
    updateHud();
  }
});
document.documentElement.addEventListener('pointerleave', () => {
  pointerNearTop = false;
  updateHud();
});

// ---- stats overlay -------------------------------------------------------------------------

const overlaySampler = new StatsSampler();
let statsTimer = null;

async function refreshStats() {
  const summary = await overlaySampler.sample(conn.pc).catch(() => null);
  if (summary) {
    summary.glassToGlass = input.latency.estimate();
    summary.link = input.linkStats;
  }
  const rows = summary ? formatRows(summary) : [['State', conn.state]];
  ui.statsRows.replaceChildren(...rows.map(([label, value]) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    const td = document.createElement('td');
    th.textContent = label;
    td.textContent = value;
    tr.append(th, td);
    return tr;
  }));
}

function toggleStats(force) {
  const show = typeof force === 'boolean' ? force : ui.stats.hidden;
  ui.stats.hidden = !show;
  ui.btnStats.setAttribute('aria-pressed', String(show));
  clearInterval(statsTimer);
  statsTimer = null;
  if (show) {
    refreshStats();
    statsTimer = setInterval(refreshStats, 1000);
  }
}

// ---- sound, cursor, fullscreen -------------------------------------------------------------

// The picture's <video> stays muted; sound plays from its own element (audio.js).
const sound = new Sound($('sound'));
function renderSound() {
  ui.btnSound.textContent = sound.muted ? 'Unmute' : 'Mute';
  ui.btnSound.setAttribute('aria-pressed', String(!sound.muted));
  ui.volume.value = String(sound.muted ? 0 : sound.volume);
}
function toggleSound() {
  sound.setMuted(!sound.muted);
}
sound.addEventListener('change', renderSound);
// The browser wants a gesture before it plays sound: say so once; any click starts it.
sound.addEventListener('blocked', () => { ui.soundHint.hidden = sound.muted; });
sound.addEventListener('unblocked', () => { ui.soundHint.hidden = true; });
ui.soundHint.addEventListener('click', () => { ui.soundHint.hidden = true; });
ui.volume.addEventListener('input', () => sound.setVolume(Number(ui.volume.value)));
renderSound();

// The microphone: asked for (getUserMedia) only when the button is pressed, and offered only
// where the host takes it (a controlling viewer of a session with --audio both).
let micPending = false; // a toggle (and its permission prompt) is under way
function renderMic() {
  // A microphone that this connection no longer takes (reconnected as view-only, or the
  // session's policy changed) is switched off, not left open and invisible.
  if (conn.microphone && conn.state === 'connected' && !conn.microphoneAccepted) stopMic();
  ui.btnMic.hidden = !conn.microphoneAccepted && !conn.microphone;
  ui.btnMic.disabled = micPending;
  const on = !!conn.microphone;
  ui.btnMic.setAttribute('aria-pressed', String(on));
  ui.btnMic.textContent = on ? 'Mic on' : 'Mic';
}
function stopMic() {
  const track = conn.microphone;
  if (!track) return;
  track.stop(); // the device is released at once, whatever the connection does
  conn.setMicrophone(null);
}
async function toggleMic() {
  if (micPending) return;
  if (conn.microphone) {
    stopMic();
    renderMic();
    return;
  }
  micPending = true;
  renderMic();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const track = stream.getAudioTracks()[0];
    // The device went away or the user revoked it: the button says so.
    track.addEventListener('ended', () => {
      if (conn.microphone === track) {
        conn.setMicrophone(null);
        renderMic();
      }
    });
    await conn.setMicrophone(track);
    ui.btnMic.title = 'Send your microphone to the desktop';
  } catch (err) {
    ui.btnMic.title = `Microphone unavailable: ${err.message}`;
  } finally {
    micPending = false;
    renderMic();
  }
}
ui.btnMic.addEventListener('click', () => toggleMic());

function toggleCursor() {
  const hidden = document.body.classList.toggle('hide-cursor');
  ui.btnCursor.setAttribute('aria-pressed', String(!hidden));
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else document.documentElement.requestFullscreen({ navigationUI: 'hide' }).catch(() => {});
}
document.addEventListener('fullscreenchange', () => {
  ui.btnFullscreen.textContent = document.fullscreenElement ? 'Exit fullscreen' : 'Fullscreen';
  // In fullscreen, Keyboard Lock lets Ctrl+W, Alt+Tab-like and other browser-reserved keys
  // reach the desktop (where the browser offers it); holding Esc still leaves fullscreen.
  if (document.fullscreenElement) navigator.keyboard?.lock?.().catch(() => {});
  else navigator.keyboard?.unlock?.();
});
if (!document.fullscreenEnabled) ui.btnFullscreen.hidden = true;

ui.btnStats.addEventListener('click', () => toggleStats());
ui.btnSound.addEventListener('click', toggleSound);
ui.btnCursor.addEventListener('click', toggleCursor);
ui.btnFullscreen.addEventListener('click', toggleFullscreen);

// ---- shortcuts (shortcuts.js) -----------------------------------------------------------------

function togglePointerLock() {
  if (document.pointerLockElement) document.exitPointerLock();
  else video.requestPointerLock?.();
}

const ACTIONS = {
  stats: () => toggleStats(),
  fullscreen: toggleFullscreen,
  cursor: toggleCursor,
  sound: toggleSound,
  pointerLock: togglePointerLock,
};
window.addEventListener('keydown', (ev) => {
  const action = clientShortcut(ev);
  if (!action) return;
  ev.preventDefault();
  ev.stopImmediatePropagation();
  if (!ev.repeat) ACTIONS[action]();
}, { capture: true });

// ---- lifecycle -----------------------------------------------------------------------------

window.addEventListener('pagehide', () => conn.stop()); // DELETE the WHEP resource on leave
window.addEventListener('pageshow', (ev) => ev.persisted && conn.start()); // back from bfcache

const testSampler = new StatsSampler();
window.edgedesk = Object.freeze({
  session,
  connection: conn,
  video,
  sound,
  get pc() { return conn.pc; },
  get inputChannel() { return conn.inputChannel; },
  get state() { return conn.state; },
  get reason() { return conn.reason; },
  get reconnectCount() { return conn.reconnectCount; },
  input,
  stats: () => testSampler.sample(conn.pc),
  glassToGlass: () => input.latency.estimate(),
});

render();
conn.start();
