#!/usr/bin/env node
// benches/browser/measure.mjs — the browser half of `edgedesk-bench browser`: opens a page in
// Debian's Chromium (headless, through playwright-core), reads the stimulus' frame code on every
// frame the page shows, and streams what it saw to the bench tool as JSON lines on stdout. The
// bench tool draws the stimulus, clicks, and turns the lines into its report.
//
//   node benches/browser/measure.mjs (--url URL | --whep URL [--token T]) --rect X,Y,W,H
//        [--patch X,Y,W,H] [--seconds 10] [--warmup 1] [--selector auto|CSS]
//        [--viewport 1280x720] [--chromium-arg ARG]... [--ready-timeout-ms 30000]
//
// --url: any page that shows the stimulus in a <video> or <canvas> (edgedesk's client, Selkies',
//   …); an init script notes the page's RTCPeerConnections so Chromium's receive stats can be
//   read. --whep: this tool's own minimal page: a recvonly RTCPeerConnection, the offer POSTed
//   (through this script, so no CORS is needed and redirects are followed), the endpoint's
//   advertised ICE servers used, the video shown in a <video>; nothing else on the page.
//
// Lines (times in CLOCK_MONOTONIC nanoseconds: node's hrtime, onto which the page's
// performance.now() is mapped by the smallest of 25 round trips):
//   {"type":"ready", "element", "url", "clock_uncertainty_ms"}
//   {"type":"frame", "shown_ns", "presented_ns", "received_ns", "code", "patch", "presented_frames",
//    "processing_ms"}   (shown_ns: the rendering step that first showed it, rVFC `now`, but
//    not before the frame's presentationTime)
//   {"type":"end", "seconds", "chromium": {…deltas…}, "presented_fps", "read_path", "read_errors", "clock_drift_ms",
//    "clock_uncertainty_ms", "video_swaps"}
// A failure is one line on stderr ("browser: …") and exit status 1.

import http from 'node:http';
import { launchChromium } from '../../client-web/tests/lib.mjs';
import { readLuma } from './framecode.mjs';
import { installMeter, pageStats, clockOffset, capturePeerConnections } from './page.mjs';

function parseArgs(argv) {
  const o = { seconds: 10, warmup: 1, selector: 'auto', viewport: '1280x720', chromiumArgs: [], readyTimeoutMs: 30000, patch: null };
  const rect = (v, name) => {
    const p = v.split(',').map(Number);
    if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`${name} wants X,Y,W,H, got ${v}`);
    return { x: p[0], y: p[1], w: p[2], h: p[3] };
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--url': o.url = next(); break;
      case '--whep': o.whep = next(); break;
      case '--token': o.token = next(); break;
      case '--rect': o.rect = rect(next(), a); break;
      case '--patch': o.patch = rect(next(), a); break;
      case '--seconds': o.seconds = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--selector': o.selector = next(); break;
      case '--viewport': o.viewport = next(); break;
      case '--chromium-arg': o.chromiumArgs.push(next()); break;
      case '--ready-timeout-ms': o.readyTimeoutMs = Number(next()); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.url === !o.whep) throw new Error('give one of --url and --whep');
  if (!o.rect) throw new Error('--rect is required');
  const v = /^(\d+)x(\d+)$/.exec(o.viewport);
  if (!v) throw new Error(`--viewport wants WxH, got ${o.viewport}`);
  o.viewport = { width: Number(v[1]), height: Number(v[2]) };
  return o;
}

const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the tool's own WHEP page ------------------------------------------------------------------

const WHEP_PAGE = `<!doctype html><meta charset="utf-8"><title>edgedesk-bench WHEP viewer</title>
<style>html,body{margin:0;height:100%;background:#000}video{width:100%;height:100%;object-fit:contain}</style>
<video autoplay muted playsinline></video>
<script type="module">
const video = document.querySelector('video');
try {
  const iceServers = await (await fetch('/ice')).json();
  const pc = new RTCPeerConnection({ iceServers });
  window.__pcs = [pc];
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (e) => { video.srcObject = e.streams[0] ?? new MediaStream([e.track]); };
  pc.onconnectionstatechange = () => { if (pc.connectionState === 'failed') window.__whepError = 'the connection failed (ICE or DTLS)'; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    setTimeout(resolve, 2000);
  });
  const r = await fetch('/whep', { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  const body = await r.text();
  if (r.status !== 201) throw new Error(body);
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
} catch (e) {
  window.__whepError = String(e.message ?? e);
}
</script>`;

/** `<url>; rel="ice-server"; username=…; credential=…` links → RTCIceServer objects. */
function iceServersFromLinks(header) {
  const out = [];
  for (const m of (header ?? '').matchAll(/<([^>]*)>([^,<]*)/g)) {
    const params = Object.fromEntries([...m[2].matchAll(/;\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,\s]*))/g)]
      .map((p) => [p[1].toLowerCase(), (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1')]));
    if (!(params.rel ?? '').split(/\s+/).includes('ice-server') || !/^(stuns?|turns?):/.test(m[1])) continue;
    out.push({ urls: m[1], ...(params.username ? { username: params.username, credential: params.credential } : {}) });
  }
  return out;
}

/** Serves the page on 127.0.0.1 and relays its WHEP requests to `whep` (with the token). */
async function servePage(whep, token) {
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  let resource = null;
  const server = http.createServer(async (req, res) => {
    try {
      if (req.method === 'GET' && req.url === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html' }).end(WHEP_PAGE);
      } else if (req.method === 'GET' && req.url === '/ice') {
        const r = await fetch(whep, { method: 'OPTIONS', headers: auth }).catch(() => null);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(iceServersFromLinks(r?.headers.get('link'))));
      } else if (req.method === 'POST' && req.url === '/whep') {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        // fetch follows 307/308 with the same body.
        const r = await fetch(whep, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/sdp' }, body: Buffer.concat(chunks) });
        const body = await r.text();
        if (r.status === 201 && r.headers.get('location')) resource = new URL(r.headers.get('location'), r.url).href;
        res.writeHead(r.status === 201 ? 201 : 502, { 'Content-Type': 'text/plain' })
          .end(r.status === 201 ? body : `WHEP server ${r.url} answered ${r.status}: ${body.trim().slice(0, 300)}`);
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end(`cannot reach ${whep}: ${e.cause?.message ?? e.message}`);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    async close() {
      if (resource) await fetch(resource, { method: 'DELETE', headers: auth }).catch(() => {});
      server.close();
    },
  };
}

// ---- the run -----------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const served = o.whep ? await servePage(o.whep, o.token) : null;
  const browser = await launchChromium({ args: ['--autoplay-policy=no-user-gesture-required', ...o.chromiumArgs] });
  try {
    const page = await browser.newPage({ viewport: o.viewport });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    if (!served) await page.addInitScript(capturePeerConnections);
    const url = served ? served.url : o.url;
    await page.goto(url).catch((e) => { throw new Error(`cannot open ${url}: ${e.message.split('\n')[0]}`); });
    await page.evaluate(installMeter, { rect: o.rect, patch: o.patch, readLumaSrc: readLuma.toString(), videoSelector: o.selector });
    // Ready: a frame code was read (the stream shows the stimulus, unscaled).
    const deadline = Date.now() + o.readyTimeoutMs;
    for (;;) {
      const st = await page.evaluate(() => ({
        read: window.__meter.samples.some((s) => s.code !== null),
        frames: window.__meter.samples.length,
        element: window.__meter.element,
        errors: window.__meter.errors,
        whepError: window.__whepError ?? null,
        pcs: [...(window.__pcs ?? window.__latencyPcs ?? [])].map((pc) => `${pc.iceConnectionState}/${pc.connectionState}`),
      }));
      if (st.whepError) throw new Error(st.whepError);
      if (st.read) break;
      if (Date.now() > deadline) {
        const what = !st.element
          ? `no <video> or <canvas>${o.selector === 'auto' ? '' : ` matching ${o.selector}`} showed a picture`
          : st.frames === 0
            ? `the page's <${st.element}> showed no frame`
            : `no frame code could be read in ${st.frames} frames of the page's <${st.element}> (${Object.keys(st.errors).join('; ') || 'no error'}): is the stimulus on the streamed display, unscaled and uncovered?`;
        const pcs = st.pcs.length ? `; the page's peer connections (ICE/connection): ${st.pcs.join(', ')}` : '; the page made no RTCPeerConnection';
        throw new Error(`${what} within ${o.readyTimeoutMs / 1000} s of opening ${url}${pcs}${pageErrors.length ? ` (page errors: ${pageErrors.slice(-2).join(' | ')})` : ''}`);
      }
      await sleep(100);
    }
    const sync0 = await clockOffset(page);
    const element = await page.evaluate(() => window.__meter.element);
    emit({ type: 'ready', element, url, clock_uncertainty_ms: sync0.uncertaintyMs });
    await sleep(o.warmup * 1000);
    const stats0 = await pageStats(page);
    const t0 = await page.evaluate(() => { window.__meter.samples.length = 0; return performance.now(); });
    const ns = (pageMs) => (Number.isFinite(pageMs) ? Math.round((pageMs + sync0.offset) * 1e6) : null);
    // Chromium's count of frames handed to the compositor, first and last seen in the window.
    let presented0 = null;
    let presented1 = null;
    const flush = async () => {
      const batch = await page.evaluate(() => window.__meter.samples.splice(0));
      for (const s of batch) {
        if (Number.isFinite(s.presentedFrames)) {
          presented0 ??= { n: s.presentedFrames, t: s.now };
          presented1 = { n: s.presentedFrames, t: s.now };
        }
        emit({
          type: 'frame',
          // Not before the compositor had it: under load a rendering step's `now` (its begin
          // time) can precede the frame's arrival by several ms.
          shown_ns: ns(Number.isFinite(s.presentationTime) ? Math.max(s.now, s.presentationTime) : s.now),
          presented_ns: ns(s.presentationTime),
          received_ns: ns(s.receiveTime),
          code: s.code,
          patch: s.patchLuma ?? null,
          presented_frames: s.presentedFrames ?? null,
          processing_ms: Number.isFinite(s.processingDuration) ? s.processingDuration * 1000 : null,
        });
      }
    };
    const end = Date.now() + o.seconds * 1000;
    while (Date.now() < end) {
      await sleep(50);
      await flush();
    }
    const t1 = await page.evaluate(() => performance.now());
    await flush();
    await sleep(100); // getStats is cached for a few ms
    const stats1 = await pageStats(page);
    const meter = await page.evaluate(() => {
      window.__meter.running = false;
      return { path: window.__meter.path, errors: window.__meter.errors, swaps: window.__meter.videoSwaps };
    });
    const sync1 = await clockOffset(page);
    const seconds = (t1 - t0) / 1000;
    const d = (k) => (stats0 && stats1 && Number.isFinite(stats1[k]) ? stats1[k] - (stats0[k] ?? 0) : null);
    const per = (k, count) => (d(k) !== null && d(count) > 0 ? (d(k) / d(count)) * 1000 : null);
    emit({
      type: 'end',
      seconds,
      read_path: meter.path,
      presented_fps: presented0 && presented1.t > presented0.t
        ? ((presented1.n - presented0.n) * 1000) / (presented1.t - presented0.t)
        : null,
      read_errors: meter.errors,
      video_swaps: meter.swaps,
      clock_uncertainty_ms: Math.max(sync0.uncertaintyMs, sync1.uncertaintyMs),
      clock_drift_ms: sync1.offset - sync0.offset,
      chromium: stats1 && {
        frames_received: d('framesReceived'),
        frames_decoded: d('framesDecoded'),
        frames_dropped: d('framesDropped'),
        decoded_fps: d('framesDecoded') / seconds,
        jitter_buffer_ms: per('jitterBufferDelay', 'jitterBufferEmittedCount'),
        jitter_buffer_target_ms: per('jitterBufferTargetDelay', 'jitterBufferEmittedCount'),
        processing_delay_ms: per('totalProcessingDelay', 'framesDecoded'),
        decode_ms: per('totalDecodeTime', 'framesDecoded'),
        freezes: d('freezeCount'),
        packets_lost: d('packetsLost'),
        nacks: d('nackCount'),
        plis: d('pliCount'),
        kbps: (d('bytesReceived') * 8) / seconds / 1000,
        decoder: stats1.decoderImplementation ?? null,
        codec: stats1.codec ?? null,
        frame: `${stats1.frameWidth}x${stats1.frameHeight}`,
        freeze_ms: d('totalFreezesDuration') * 1000,
        candidates: stats1.candidates ?? null,
      },
    });
  } finally {
    await browser.close().catch(() => {});
    if (served) await served.close();
  }
}

main().catch((e) => {
  process.stderr.write(`browser: ${String(e.message ?? e).split('\n')[0]}\n`);
  process.exit(1);
});
