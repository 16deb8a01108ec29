// connection.js — one viewer connection to an edgedesk session, kept alive across failures.
//
// Each attempt builds a fresh RTCPeerConnection (video recvonly; audio sendrecv, so that the
// microphone can be added later with replaceTrack and no renegotiation — the host answers
// sendonly where it takes no microphone; data channel "input" in
// the first offer, H.264 preferred, zero jitter-buffer target), POSTs the offer over WHEP and
// applies the answer. When the connection fails, stays "disconnected" for more than 2 s, never
// comes up, or the input channel closes after having opened, the attempt is torn down (DELETE of
// the WHEP resource, best effort) and a new one is scheduled as reconnect.js decides.
//
// ICE: the offer goes out with the first host candidate (or once gathering completes, at most
// after 50 ms), not after gathering completes: Chromium completes gathering only when ICE has
// connected, so waiting for it always cost the whole cap. (Measured: page open → first frame
// 730–840 ms with a 300 ms cap, 550–620 ms with 50 ms; the first candidate comes 2–40 ms after
// gathering starts. The server's host candidate plus the peer-reflexive one it learns from our
// checks is all a direct connection needs.)
// Chromium's host candidates are mDNS ".local" names that appear within a few ms and the server
// answers with all of its candidates, so the connection normally comes up through the server's
// host candidate and a peer-reflexive one learned from our checks. Candidates that arrive after
// the cap (slow STUN/TURN) are sent in one PATCH (trickle-ice-sdpfrag) when gathering completes;
// a server without PATCH support simply ignores them. (Chromium stops gathering as soon as ICE
// connects, so late candidates only matter while the first path is not up yet, e.g. TURN-only.)
//
// ICE servers come from the server's `Link: rel="ice-server"` headers: asked for once with an
// OPTIONS request (with the token: TURN credentials are minted per authorised request) started
// with the first attempt, at most 1 s waited for; a POST's answer refreshes them for the next
// attempt. With `relay`, only relayed candidates are used (iceTransportPolicy 'relay').
//
// Events (CustomEvent, `detail` shown):
//   'state'   { state, reason, detail, retryAt }  state: connecting|connected|reconnecting|failed
//   'stream'  MediaStream    new stream of the current attempt (attach it to the <video>)
//   'channel' RTCDataChannel the "input" channel of the current attempt, once open

import { whepPost, whepPatch, whepDelete, whepOptions, buildSdpFragment } from './whep.js';
import { planRetry } from './reconnect.js';

export const GATHER_CAP_MS = 50;
export const DISCONNECT_GRACE_MS = 2000;
export const CONNECT_TIMEOUT_MS = 15000;

export class Connection extends EventTarget {
  /** @type {RTCPeerConnection|null} */ pc = null;
  /** @type {RTCDataChannel|null} */ inputChannel = null;
  /** @type {MediaStream|null} */ stream = null;
  /** @type {RTCRtpTransceiver|null} the audio transceiver (the microphone goes on its sender) */ audio = null;
  /** @type {MediaStreamTrack|null} the microphone, put on every new connection's audio sender */ microphone = null;
  state = 'idle';
  reason = '';
  detail = '';
  /** epoch ms of the next scheduled attempt, or null */
  retryAt = null;
  /** attempts scheduled after a failure (any cause) since start() */
  reconnectCount = 0;

  #endpoint;
  #token;
  #iceServers = [];
  #gen = 0; // attempt generation: callbacks of an older attempt see a different value and do nothing
  #failures = 0; // consecutive failures, reset when a connection comes up
  #everFailed = false;
  #resource = null; // { url, etag } of the current attempt
  #timers = new Set();
  #stopped = true;
  #codec = null;
  #relay = false;
  #iceAsked = null; // the OPTIONS request for ICE servers, made once

  /**
   * @param {{endpoint: string, token: string, codec?: string|null, relay?: boolean}} options
   *   endpoint = absolute WHEP URL; codec = offer this video codec only (else all, and the host
   *   picks); relay = connect through the TURN relay only
   */
  constructor({ endpoint, token, codec = null, relay = false }) {
    super();
    this.#endpoint = endpoint;
    this.#token = token;
    this.#codec = codec;
    this.#relay = relay;
  }

  /** Starts connecting (no-op when already running). */
  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt();
  }

  /** Tears down and stays down. DELETEs the WHEP resource (keepalive, so it works on unload). */
  stop() {
    this.#stopped = true;
    this.#teardown();
  }

  /** Skips the wait of a scheduled retry, or starts again after a fatal failure. */
  retryNow() {
    this.#teardown();
    this.#stopped = false;
    this.#attempt();
  }

  // ---- one attempt -------------------------------------------------------------------------

  async #attempt() {
    const gen = ++this.#gen;
    this.retryAt = null;
    this.#setState(this.#everFailed ? 'reconnecting' : 'connecting', this.#everFailed ? this.reason : '', this.#everFailed ? 'Connecting again…' : '');

    if (!this.#iceAsked) {
      this.#iceAsked = whepOptions(this.#endpoint, this.#token).then((servers) => {
        if (servers.length) this.#iceServers = servers;
      });
    }
    await this.#iceAsked;
    if (gen !== this.#gen) return;

    let pc;
    try {
      pc = new RTCPeerConnection({
        iceServers: this.#iceServers,
        iceTransportPolicy: this.#relay ? 'relay' : 'all',
        bundlePolicy: 'max-bundle',
      });
    } catch (err) {
      this.#fatal('Unsupported browser', `Cannot create a WebRTC connection: ${err.message}`);
      return;
    }
    this.pc = pc;
    this.stream = new MediaStream();

    const video = pc.addTransceiver('video', { direction: 'recvonly' });
    this.audio = pc.addTransceiver('audio', { direction: 'sendrecv' });
    if (this.microphone) this.audio.sender.replaceTrack(this.microphone).catch(() => {});
    if (this.#codec) offerOnly(video, this.#codec);
    negotiateCaptureTime(video);
    tuneForLowLatency(video.receiver);

    const channel = pc.createDataChannel('input', { ordered: true });
    channel.binaryType = 'arraybuffer';
    let channelOpened = false;
    channel.addEventListener('open', () => {
      if (gen !== this.#gen) return;
      channelOpened = true;
      this.inputChannel = channel;
      this.dispatchEvent(new CustomEvent('channel', { detail: channel }));
    });
    channel.addEventListener('close', () => {
      if (gen === this.#gen && channelOpened) this.#lost('the input channel closed');
    });

    pc.addEventListener('track', (ev) => {
      if (gen === this.#gen) this.stream.addTrack(ev.track);
    });
    pc.addEventListener('connectionstatechange', () => this.#onConnectionState(gen, pc));

    const candidates = [];
    pc.addEventListener('icecandidate', (ev) => {
      if (ev.candidate?.candidate) candidates.push(ev.candidate.candidate);
    });

    let answer;
    let offerSdp;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitForFirstCandidate(pc, GATHER_CAP_MS);
      if (gen !== this.#gen) return;
      offerSdp = pc.localDescription.sdp;
      answer = await whepPost(this.#endpoint, this.#token, offerSdp);
    } catch (err) {
      if (gen === this.#gen) this.#failed(err.kind ? err : { kind: 'lost', message: err.message });
      return;
    }
    if (gen !== this.#gen) {
      whepDelete(answer.resourceUrl, this.#token); // we gave up on this attempt meanwhile
      return;
    }
    this.#resource = { url: answer.resourceUrl, etag: answer.etag };
    if (answer.iceServers.length) this.#iceServers = answer.iceServers;

    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.answerSdp });
    } catch (err) {
      if (gen === this.#gen) this.#failed({ kind: 'protocol', message: `unusable answer (${err.message})` });
      return;
    }
    // 'track' events have fired during setRemoteDescription: the stream holds video and audio.
    this.dispatchEvent(new CustomEvent('stream', { detail: this.stream }));
    this.#trickleLate(gen, pc, offerSdp, candidates);
    this.#after(CONNECT_TIMEOUT_MS, () => {
      if (gen === this.#gen && pc.connectionState !== 'connected') this.#lost('timed out while connecting');
    });
  }

  /** Sends the candidates that missed the offer in one PATCH once gathering completes. */
  #trickleLate(gen, pc, offerSdp, candidates) {
    const send = () => {
      const sent = new Set(offerSdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => candidateKey(l.slice(2))));
      const late = candidates.filter((c) => !sent.has(candidateKey(c)));
      if (gen !== this.#gen || !late.length || !this.#resource) return;
      const { url, etag } = this.#resource;
      whepPatch(url, this.#token, etag, buildSdpFragment(offerSdp, late));
    };
    if (pc.iceGatheringState === 'complete') send();
    else pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && send());
  }

  /** Whether the host takes this viewer's microphone (its answer made audio sendrecv). */
  get microphoneAccepted() {
    return this.audio?.currentDirection === 'sendrecv';
  }

  /**
   * Sends `track` (or nothing, for null) as the microphone, now and on every reconnect. A
   * connection that is going away cannot take it now; the next one will.
   */
  async setMicrophone(track) {
    this.microphone = track;
    try {
      await this.audio?.sender.replaceTrack(track);
    } catch {
      // closed meanwhile: the next attempt puts this.microphone on its sender
    }
  }

  #onConnectionState(gen, pc) {
    if (gen !== this.#gen) return;
    switch (pc.connectionState) {
      case 'connected':
        this.#failures = 0;
        this.#clearTimers();
        this.#setState('connected', '', '');
        break;
      case 'disconnected':
        // Often recovers by itself (a lost burst, a Wi-Fi roam): give it a moment.
        this.#after(DISCONNECT_GRACE_MS, () => {
          if (gen === this.#gen && pc.connectionState === 'disconnected') this.#lost('the network path was interrupted');
        });
        break;
      case 'failed':
        this.#lost('the connection failed');
        break;
      case 'closed': // not by us: our own close() bumps the generation first
        this.#lost('the connection was closed');
        break;
      default:
    }
  }

  // ---- failure handling --------------------------------------------------------------------

  #lost(message) {
    this.#failed({ kind: 'lost', message: `The stream stopped: ${message}.` });
  }

  #failed(error) {
    this.#teardown();
    if (this.#stopped) return;
    const plan = planRetry(error, this.#failures, { hasToken: Boolean(this.#token) });
    this.#failures += 1;
    if (!plan.retry) {
      this.#fatal(plan.reason, plan.detail);
      return;
    }
    this.#everFailed = true;
    this.reconnectCount += 1;
    this.retryAt = Date.now() + plan.delayMs;
    this.#setState('reconnecting', plan.reason, plan.detail);
    const gen = this.#gen;
    this.#after(plan.delayMs, () => {
      if (gen === this.#gen && !this.#stopped) this.#attempt();
    });
  }

  #fatal(reason, detail) {
    this.#stopped = true;
    this.retryAt = null;
    this.#setState('failed', reason, detail);
  }

  /** Closes the current attempt; its callbacks become no-ops (generation bump). */
  #teardown() {
    this.#gen += 1;
    this.#clearTimers();
    this.retryAt = null;
    if (this.#resource) whepDelete(this.#resource.url, this.#token);
    this.#resource = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    this.audio = null;
    this.inputChannel = null;
  }

  #setState(state, reason, detail) {
    this.state = state;
    this.reason = reason;
    this.detail = detail;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, reason, detail, retryAt: this.retryAt } }));
  }

  #after(ms, fn) {
    const id = setTimeout(() => {
      this.#timers.delete(id);
      fn();
    }, ms);
    this.#timers.add(id);
  }

  #clearTimers() {
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
  }
}

/**
 * Offers one video codec only (`h264`, `vp8`, `vp9`, `av1`, `h265`; with its retransmission and
 * FEC companions) — the `?codec=` page parameter. Without it the browser offers everything and
 * the host picks by its own preference order. Returns whether the browser took the list.
 */
export function offerOnly(transceiver, codec) {
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.('video');
  if (!caps || typeof transceiver.setCodecPreferences !== 'function') return false;
  const mime = `video/${codec === 'h265' ? 'h265' : codec}`.toLowerCase();
  const helpers = ['video/rtx', 'video/red', 'video/ulpfec', 'video/flexfec-03'];
  const wanted = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime);
  if (!wanted.length) return false;
  const rest = caps.codecs.filter((c) => helpers.includes(c.mimeType.toLowerCase()));
  try {
    transceiver.setCodecPreferences([...wanted, ...rest]);
    return true;
  } catch {
    return false;
  }
}

export const ABS_CAPTURE_TIME_URI = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time';

/**
 * Offers the abs-capture-time header extension (Chromium offers it only when asked): with it the
 * host stamps each frame's capture time, and requestVideoFrameCallback reports `captureTime`,
 * so the stats overlay can estimate glass-to-glass latency. Returns whether it is offered.
 * (The playout-delay extension, which Chromium offers by default, is left as it is.)
 */
export function negotiateCaptureTime(transceiver) {
  if (typeof transceiver.getHeaderExtensionsToNegotiate !== 'function' || typeof transceiver.setHeaderExtensionsToNegotiate !== 'function') return false;
  try {
    const exts = transceiver.getHeaderExtensionsToNegotiate();
    const abs = exts.find((e) => e.uri === ABS_CAPTURE_TIME_URI);
    if (!abs) return false;
    if (abs.direction === 'stopped') abs.direction = 'sendrecv';
    transceiver.setHeaderExtensionsToNegotiate(exts);
    return true;
  } catch {
    return false;
  }
}

/** Asks the receiver to play frames as soon as they are decodable. */
export function tuneForLowLatency(receiver) {
  try {
    receiver.jitterBufferTarget = 0; // ms, standard (Chromium ≥ 114)
  } catch {
    /* not supported: the browser keeps its adaptive target */
  }
  if ('playoutDelayHint' in receiver) {
    try {
      receiver.playoutDelayHint = 0; // seconds, older Chromium-only knob
    } catch {
      /* ignore */
    }
  }
}

/** foundation, component, transport, priority, address, port, "typ", type: what identifies a
 *  candidate (the event's string carries extensions such as "ufrag …" that the SDP line lacks). */
function candidateKey(candidate) {
  return candidate.trim().split(/\s+/).slice(0, 8).join(' ');
}

/** Resolves at the first host candidate, when gathering completes, or after `capMs`,
 *  whichever comes first (true unless the cap ran out). */
function waitForFirstCandidate(pc, capMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete' || /a=candidate:/.test(pc.localDescription?.sdp ?? '')) {
      resolve(true);
      return;
    }
    const done = (ok) => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve(ok);
    };
    const onChange = () => pc.iceGatheringState === 'complete' && done(true);
    const onCandidate = (ev) => (!ev.candidate || / typ host/.test(ev.candidate.candidate)) && done(true);
    const timer = setTimeout(() => done(false), capMs);
    pc.addEventListener('icegatheringstatechange', onChange);
    pc.addEventListener('icecandidate', onCandidate);
  });
}
