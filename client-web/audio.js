// audio.js — the desktop's sound: played by its own <audio> element, so that a browser's
// autoplay rules can hold back the sound but never the picture (the <video> stays muted).
//
// When the browser refuses to start sound without a user gesture, Sound emits 'blocked' once
// per page; the first click, tap or key anywhere then starts it ('unblocked'). Mute and volume
// are the user's and kept across reloads (localStorage).

const STORE_KEY = 'edgedesk.sound';

/** Reads {muted, volume} from storage, with defaults for anything missing or malformed. */
export function loadSoundPrefs(storage) {
  let saved = {};
  try {
    saved = JSON.parse(storage?.getItem(STORE_KEY) ?? '{}') ?? {};
  } catch {
    saved = {};
  }
  const volume = Number(saved.volume);
  return {
    muted: saved.muted === true,
    volume: Number.isFinite(volume) ? Math.min(1, Math.max(0, volume)) : 1,
  };
}

export class Sound extends EventTarget {
  #el;
  #storage;
  #blocked = false;
  #askedOnce = false;

  /** @param {HTMLAudioElement} el  @param {Storage|null} storage */
  constructor(el, storage = globalThis.localStorage ?? null) {
    super();
    this.#el = el;
    this.#storage = storage;
    const prefs = loadSoundPrefs(storage);
    el.muted = prefs.muted;
    el.volume = prefs.volume;
    const unlock = () => {
      if (this.#blocked) this.#play();
    };
    // Any gesture unlocks sound (capture phase: the desktop's input handlers stop some events).
    for (const type of ['pointerdown', 'keydown', 'touchend']) {
      globalThis.addEventListener?.(type, unlock, { capture: true });
    }
  }

  get muted() {
    return this.#el.muted;
  }

  get volume() {
    return this.#el.volume;
  }

  /** True while the browser refuses to play sound until the user interacts with the page. */
  get blocked() {
    return this.#blocked;
  }

  /** Plays the audio tracks of `stream` (a new connection's). */
  attach(stream) {
    const tracks = stream.getAudioTracks();
    this.#el.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (tracks.length) this.#play();
  }

  setMuted(muted) {
    this.#el.muted = muted;
    if (!muted && this.#blocked) this.#play();
    this.#save();
    this.dispatchEvent(new Event('change'));
  }

  setVolume(volume) {
    this.#el.volume = Math.min(1, Math.max(0, volume));
    if (this.#el.volume > 0 && this.#el.muted) this.#el.muted = false;
    this.#save();
    this.dispatchEvent(new Event('change'));
  }

  #play() {
    const p = this.#el.play();
    if (!p?.then) return;
    p.then(
      () => {
        if (this.#blocked) {
          this.#blocked = false;
          this.dispatchEvent(new Event('unblocked'));
        }
      },
      (err) => {
        if (err?.name !== 'NotAllowedError') return; // e.g. replaced by a newer stream
        this.#blocked = true;
        if (!this.#askedOnce) {
          this.#askedOnce = true;
          this.dispatchEvent(new Event('blocked'));
        }
      },
    );
  }

  #save() {
    try {
      this.#storage?.setItem(STORE_KEY, JSON.stringify({ muted: this.#el.muted, volume: this.#el.volume }));
    } catch {
      // storage full or forbidden: the choice lasts for this page only
    }
  }
}
