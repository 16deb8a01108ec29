// benches/browser/page.mjs — the measuring side of a page that shows the stimulus: a frame-code
// reader run on every requestVideoFrameCallback, Chromium's receive stats, and the mapping of
// the page's clock onto CLOCK_MONOTONIC. Used by `edgedesk-bench browser` (measure.mjs) and
// client-web/tests/tools/browser-latency.mjs.

/** Installed in the page: on every requestVideoFrameCallback, reads the frame code from the
 *  presented frame and stores a sample in window.__meter.samples. */
export function installMeter({ rect, readLumaSrc, videoSelector }) {
  // eslint-disable-next-line no-new-func
  const readLuma = new Function(`return (${readLumaSrc})`)();
  const findVideo = () => (videoSelector ? document.querySelector(videoSelector) : window.edgedesk.video);
  let video = findVideo();
  const meter = { samples: [], errors: {}, path: null, running: true, videoSwaps: 0 };
  window.__meter = meter;
  // The copy rectangle: the code's rectangle widened to even edges (I420 chroma alignment).
  const x0 = rect.x & ~1;
  const y0 = rect.y & ~1;
  const x1 = (rect.x + rect.w + 1) & ~1;
  const y1 = (rect.y + rect.h + 1) & ~1;
  const copy = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  const inner = { x: rect.x - x0, y: rect.y - y0, w: rect.w, h: rect.h };
  let buf = new Uint8Array(copy.width * copy.height * 4);
  const canvas = document.createElement('canvas');
  canvas.width = copy.width;
  canvas.height = copy.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const lumaFromCanvas = () => {
    ctx.drawImage(video, copy.x, copy.y, copy.width, copy.height, 0, 0, copy.width, copy.height);
    const d = ctx.getImageData(0, 0, copy.width, copy.height).data;
    const y = new Uint8Array(copy.width * copy.height);
    for (let i = 0, j = 0; i < y.length; i++, j += 4) y[i] = (16 + ((66 * d[j] + 129 * d[j + 1] + 25 * d[j + 2] + 128) >> 8));
    return y;
  };
  const noteError = (e) => { meter.errors[e] = (meter.errors[e] ?? 0) + 1; };
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
    let y = null;
    let stride = copy.width;
    try {
      if (meter.path !== 'canvas') {
        const vf = new VideoFrame(video);
        try {
          if (vf.format === 'I420' || vf.format === 'NV12' || vf.format === 'I420A') {
            const size = vf.allocationSize({ rect: copy });
            if (buf.length < size) buf = new Uint8Array(size);
            const layout = await vf.copyTo(buf, { rect: copy });
            y = buf;
            stride = layout[0].stride;
            if (layout[0].offset) y = buf.subarray(layout[0].offset);
            meter.path = 'videoframe';
          } else {
            meter.path = 'canvas';
            meter.format = vf.format;
          }
        } finally {
          vf.close();
        }
      }
      if (!y) y = lumaFromCanvas();
      const r = readLuma(y, stride, inner);
      if (r.error !== undefined) noteError(r.error);
      else s.code = r.code;
    } catch (e) {
      noteError(String(e.message ?? e));
      if (meter.path !== 'canvas') meter.path = 'canvas';
    }
    s.readMs = performance.now() - now;
  };
  // A page may replace its <video> (Selkies' did once): follow the element the selector finds,
  // and count the swaps.
  if (video) video.requestVideoFrameCallback(onFrame(generation));
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
      video.requestVideoFrameCallback(onFrame(generation));
    }
  }, 100);
}

/** Chromium's inbound video stats (cumulative), or null. */
export async function pageStats(page) {
  return page.evaluate(async () => {
    // edgedesk's test handle, else the peer connections the init script captured (newest
    // first): the first connected one with an inbound video stream.
    const pcs = window.edgedesk?.pc ? [window.edgedesk.pc] : [...(window.__latencyPcs ?? [])].reverse();
    let v = null;
    for (const pc of pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (!v && s.type === 'inbound-rtp' && s.kind === 'video') v = s;
      });
      if (v) break;
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
