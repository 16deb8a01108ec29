// latency.js — glass-to-glass as the page can know it, for the stats overlay: from the moment
// the host captured a frame to the moment the browser shows it.
//
// The host tells each viewer, once, which Unix time one RTP timestamp of its video stands for
// (the `clock` message; edgedesk's RTP timestamps are capture times at 90 kHz). Every
// requestVideoFrameCallback gives the shown frame's RTP timestamp, so its capture time on the
// host's clock is known; ping/pong gives the host's clock against ours (offset = host time −
// the midpoint of the round trip; the round trip with the smallest RTT wins, so the offset is
// good to ±RTT/2 — a few ms on a LAN, 0 on one machine). Shown (the frame's presentationTime:
// handed to the compositor) − captured is the estimate. It starts at capture and ends at the
// compositor: the time an application took to draw, and the display's own refresh after the
// browser handed the frame over, are not in it (on one machine, tests/e2e.test.mjs measured
// 2–7 ms per frame at 1280x720 against 1.5–6.7 ms to the frame's last packet).

const RTP_HZ = 90; // ticks per ms
const KEEP = 120; // samples (about 2 s at 60 fps)

/** The capture time (host Unix ms) of RTP timestamp `rtp`, given the anchor `clock`. */
export function captureUnixMs(clock, rtp) {
  const ticks = ((rtp - clock.rtpTimestamp) | 0); // wraps: the nearest interpretation
  return clock.unixMs + ticks / RTP_HZ;
}

/** Host clock − page clock (Unix ms) from one ping/pong; `sentAt`/`receivedAt` are Unix ms of
 *  the page. */
export function clockOffset(sentAt, receivedAt, hostTime) {
  return { offset: hostTime - (sentAt + receivedAt) / 2, rtt: receivedAt - sentAt };
}

/** The median of numbers (null when empty). */
export function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export class GlassToGlass {
  /** @param {HTMLVideoElement} video */
  constructor(video) {
    this.video = video;
    this.clock = null;
    this.best = null; // {offset, rtt}: the sync with the smallest RTT
    this.samples = [];
    this.running = false;
  }

  /** A `clock` message from the host: a new stream starts. */
  setClock(clock) {
    this.clock = { rtpTimestamp: clock.rtpTimestamp, unixMs: clock.unixMs };
    this.samples = [];
    this.best = null;
    this.start();
  }

  /** A pong: `clientTime` is the ping's performance.now(), `hostTime` the host's Unix ms. */
  pong(clientTime, hostTime) {
    const o = clockOffset(performance.timeOrigin + clientTime, performance.timeOrigin + performance.now(), hostTime);
    if (!this.best || o.rtt <= this.best.rtt) this.best = o;
  }

  start() {
    if (this.running || typeof this.video.requestVideoFrameCallback !== 'function') return;
    this.running = true;
    const onFrame = (now, meta) => {
      if (this.clock && this.best && meta.rtpTimestamp !== undefined) {
        // presentationTime: when the frame was handed to the compositor. (The callback's own
        // `now` is the rendering step's vsync-aligned start, which can come before the frame
        // even arrived; expectedDisplayTime adds the compositor's guess of the next refresh.)
        const shown = meta.presentationTime ?? now;
        const shownHost = performance.timeOrigin + shown + this.best.offset;
        const g2g = shownHost - captureUnixMs(this.clock, meta.rtpTimestamp);
        if (g2g > -50 && g2g < 10000) {
          this.samples.push(g2g);
          if (this.samples.length > KEEP) this.samples.shift();
        }
      }
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  /** {ms: median of the last ~2 s, uncertainty: ±RTT/2 of the clock sync} or null. */
  estimate() {
    const ms = median(this.samples);
    return ms === null || !this.best ? null : { ms, uncertaintyMs: this.best.rtt / 2, samples: this.samples.length };
  }
}
