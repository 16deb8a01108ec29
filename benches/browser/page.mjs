// benches/browser/page.mjs — the measuring side of a page that shows the stimulus: a frame-code
// reader run on every requestVideoFrameCallback, Chromium's receive stats, and the mapping of
// the page's clock onto CLOCK_MONOTONIC. Used by `edgedesk-bench browser` (measure.mjs) and
// client-web/tests/tools/browser-latency.mjs.

/** Installed in the page: on every frame the page shows, reads the frame code (and, with
 *  `patch`, the mean luma of that rectangle: the click area's colour) and stores a sample in
 *  window.__meter.samples. A <video> is read on every requestVideoFrameCallback (its metadata
 *  gives presentation and receive times); a <canvas> (pages that draw the desktop themselves)
 *  on every animation frame, keeping the samples where the code changed.
 *  `videoSelector`: a CSS selector; 'auto' (the largest playing <video>, else the largest
 *  <canvas>); null (edgedesk's page: window.edgedesk.video). */
export function installMeter({ rect, patch = null, readLumaSrc, videoSelector }) {
  // eslint-disable-next-line no-new-func
  const readLuma = new Function(`return (${readLumaSrc})`)();
  const largest = (sel, ok) => [...document.querySelectorAll(sel)].filter(ok)
    .sort((a, b) => b.clientWidth * b.clientHeight - a.clientWidth * a.clientHeight)[0] ?? null;
  const findVideo = () => {
    if (videoSelector === null) return window.edgedesk?.video ?? null;
    if (videoSelector !== 'auto') return document.querySelector(videoSelector);
    return largest('video', (v) => v.videoWidth > 0) ?? largest('canvas', (c) => c.width > 0 && c.height > 0);
  };
  let video = findVideo();
  const meter = { samples: [], errors: {}, path: null, running: true, videoSwaps: 0, element: null };
  window.__meter = meter;
  // A copy rectangle: widened to even edges (I420 chroma alignment), with the wanted part's
  // place inside it.
  const region = (r) => {
    const x0 = r.x & ~1;
    const y0 = r.y & ~1;
    const x1 = (r.x + r.w + 1) & ~1;
    const y1 = (r.y + r.h + 1) & ~1;
    return { copy: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, inner: { x: r.x - x0, y: r.y - y0, w: r.w, h: r.h } };
  };
  const regions = [region(rect), ...(patch ? [region(patch)] : [])];
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  // Luma (BT.601 limited, as the encoders' input) of a copy rectangle drawn from `source`.
  const lumaFromCanvas = (source, copy) => {
    canvas.width = copy.width;
    canvas.height = copy.height;
    ctx.drawImage(source, copy.x, copy.y, copy.width, copy.height, 0, 0, copy.width, copy.height);
    const d = ctx.getImageData(0, 0, copy.width, copy.height).data;
    const y = new Uint8Array(copy.width * copy.height);
    for (let i = 0, j = 0; i < y.length; i++, j += 4) y[i] = (16 + ((66 * d[j] + 129 * d[j + 1] + 25 * d[j + 2] + 128) >> 8));
    return { y, stride: copy.width };
  };
  const meanLuma = ({ y, stride }, r) => {
    let sum = 0;
    for (let row = r.y; row < r.y + r.h; row++) for (let x = r.x; x < r.x + r.w; x++) sum += y[row * stride + x];
    return sum / (r.w * r.h);
  };
  const noteError = (e) => { meter.errors[e] = (meter.errors[e] ?? 0) + 1; };
  // The planes of every region, from a VideoFrame where it gives I420/NV12, else the canvas.
  const readRegions = async (source) => {
    if (meter.path !== 'canvas' && source instanceof HTMLVideoElement) {
      const vf = new VideoFrame(source);
      try {
        if (vf.format === 'I420' || vf.format === 'NV12' || vf.format === 'I420A') {
          const out = [];
          for (const { copy } of regions) {
            const buf = new Uint8Array(vf.allocationSize({ rect: copy }));
            const layout = await vf.copyTo(buf, { rect: copy });
            out.push({ y: layout[0].offset ? buf.subarray(layout[0].offset) : buf, stride: layout[0].stride });
          }
          meter.path = 'videoframe';
          return out;
        }
        meter.path = 'canvas';
        meter.format = vf.format;
      } finally {
        vf.close();
      }
    }
    if (!meter.path) meter.path = 'canvas';
    return regions.map(({ copy }) => lumaFromCanvas(source, copy));
  };
  const read = async (s, source) => {
    try {
      const planes = await readRegions(source);
      const r = readLuma(planes[0].y, planes[0].stride, regions[0].inner);
      if (r.error !== undefined) noteError(r.error);
      else s.code = r.code;
      if (patch) s.patchLuma = meanLuma(planes[1], regions[1].inner);
    } catch (e) {
      noteError(String(e.message ?? e));
      if (meter.path !== 'canvas') meter.path = 'canvas';
    }
  };
  let generation = 0;
  const onFrame = (gen) => async (now, md) => {
    if (!meter.running || gen !== generation) return;
    video.requestVideoFrameCallback(onFrame(gen));
    const s = {
      entry: performance.now(),
      now,
      expectedDisplayTime: md.expectedDisplayTime,
      presentationTime: md.presentationTime,
      receiveTime: md.receiveTime,
      captureTime: md.captureTime,
      processingDuration: md.processingDuration,
      presentedFrames: md.presentedFrames,
      rtpTimestamp: md.rtpTimestamp,
      mediaTime: md.mediaTime,
      code: null,
    };
    meter.samples.push(s);
    await read(s, video);
    s.readMs = performance.now() - now;
  };
  // A canvas has no frame callback: read it on every animation frame and keep a sample when
  // what it shows changed (the code, or the patch's colour).
  let last = null;
  let presented = 0;
  const onAnimationFrame = (gen) => async (now) => {
    if (!meter.running || gen !== generation) return;
    requestAnimationFrame(onAnimationFrame(gen));
    const s = { entry: performance.now(), now, presentationTime: now, code: null };
    await read(s, video);
    const key = `${s.code}/${s.patchLuma === undefined ? '' : s.patchLuma > 128}`;
    if (key === last) return;
    last = key;
    s.presentedFrames = ++presented;
    s.readMs = performance.now() - now;
    meter.samples.push(s);
  };
  const follow = (el) => {
    meter.element = el.tagName.toLowerCase();
    if (el instanceof HTMLVideoElement) el.requestVideoFrameCallback(onFrame(generation));
    else requestAnimationFrame(onAnimationFrame(generation));
  };
  // A page may replace its <video> (Selkies' did once): follow the element the selector finds,
  // and count the swaps.
  if (video) follow(video);
  const watch = setInterval(() => {
    if (!meter.running) {
      clearInterval(watch);
      return;
    }
    const v = findVideo();
    if (v && v !== video) {
      if (video) meter.videoSwaps++;
      video = v;
      generation++;
      follow(video);
    }
  }, 100);
}

/** An init script (page.addInitScript) for pages that keep their RTCPeerConnection to
 *  themselves: notes every one made in window.__latencyPcs, for pageStats. */
export function capturePeerConnections() {
  const Orig = window.RTCPeerConnection;
  window.__latencyPcs = [];
  const Wrapped = function RTCPeerConnection(...a) {
    const pc = new Orig(...a);
    window.__latencyPcs.push(pc);
    return pc;
  };
  Wrapped.prototype = Orig.prototype;
  Object.setPrototypeOf(Wrapped, Orig);
  window.RTCPeerConnection = Wrapped;
}

/** Chromium's inbound video stats (cumulative), or null. */
export async function pageStats(page) {
  return page.evaluate(async () => {
    // edgedesk's test handle, else the peer connections the init script captured (newest
    // first): the first connected one with an inbound video stream.
    const pcs = window.edgedesk?.pc ? [window.edgedesk.pc] : [...(window.__latencyPcs ?? window.__pcs ?? [])].reverse();
    let v = null;
    let codec = null;
    let candidates = null;
    for (const pc of pcs) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      let pairId = null;
      report.forEach((s) => {
        if (!v && s.type === 'inbound-rtp' && s.kind === 'video') v = s;
        if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      if (v) {
        codec = report.get(v.codecId)?.mimeType ?? null;
        // The selected path, as "local → remote" candidate types (e.g. "relay → host").
        const pair = pairId ? report.get(pairId) : null;
        const local = pair ? report.get(pair.localCandidateId) : null;
        const remote = pair ? report.get(pair.remoteCandidateId) : null;
        if (local && remote) candidates = `${local.candidateType} → ${remote.candidateType}`;
        break;
      }
    }
    if (!v) return null;
    const keys = ['framesReceived', 'framesDecoded', 'framesDropped', 'keyFramesDecoded', 'framesRendered',
      'jitterBufferDelay', 'jitterBufferEmittedCount', 'jitterBufferTargetDelay', 'jitterBufferMinimumDelay',
      'totalProcessingDelay', 'totalDecodeTime', 'totalAssemblyTime', 'framesAssembledFromMultiplePackets',
      'totalInterFrameDelay', 'totalSquaredInterFrameDelay', 'freezeCount', 'totalFreezesDuration',
      'pauseCount', 'packetsReceived', 'packetsLost', 'nackCount', 'pliCount', 'bytesReceived', 'jitter',
      'decoderImplementation', 'frameWidth', 'frameHeight', 'timestamp'];
    const o = {};
    for (const k of keys) o[k] = v[k];
    o.codec = codec;
    o.candidates = candidates;
    return o;
  });
}

/** Maps page performance.now() (ms) to CLOCK_MONOTONIC (ms): offset = mono − pageNow. */
export async function clockOffset(page, rounds = 25) {
  let best = null;
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const p = await page.evaluate(() => performance.now());
    const t1 = process.hrtime.bigint();
    const rtt = Number(t1 - t0) / 1e6;
    const mid = Number((t0 + t1) / 2n) / 1e6;
    if (!best || rtt < best.rtt) best = { offset: mid - p, rtt };
  }
  return { offset: best.offset, uncertaintyMs: best.rtt / 2 };
}
