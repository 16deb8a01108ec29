#!/usr/bin/env node
// tests/tools/browser-latency.mjs — latency as the user sees it: glass-to-glass in headless
// Chromium on edgedesk's own page. Not part of the default test run (node --test only picks up
// *.test.mjs).
//
//   Xvfb :N (WxH)  ◄── edgedesk-bench stimulus --print-drawn   (frame codes; "drawn CODE NS")
//        │
//   edgedesk up --display :N ──► WebRTC ──► Chromium (the printed Open: URL)
//                                             requestVideoFrameCallback: read the frame code
//                                             from the presented frame (VideoFrame luma), note
//                                             expectedDisplayTime / presentationTime / now
//
// glass-to-glass (displayed) = `now` of the first requestVideoFrameCallback showing code n (the
//                              time of the rendering step that first shows it) − when the X
//                              server had code n drawn.
// Also: presentationTime − drawn (the frame handed to the compositor: a lower bound of display),
// receiveTime − drawn (host + network: the frame's last packet in) and now − receiveTime
// (browser: jitter buffer, decode, wait for the next rendering step).
// expectedDisplayTime is recorded but not used: headless Chromium reports it one frame interval
// *before* `now`, often before the frame was even received (measured here: exp ≈ now − 16.7 ms).
// Headless Chromium renders on its own 60 Hz begin-frame clock: a frame waits for its next tick
// (0–16.7 ms), and the phase between that clock and the stimulus' drifts only slowly, so one
// 10 s run may sample a single phase; compare runs by the presented figures too, which do not
// depend on the phase.
//
// Clocks: the stimulus stamps CLOCK_MONOTONIC; node's process.hrtime is CLOCK_MONOTONIC too
// (libuv). The page's performance.now() is mapped onto it by round trips (node hrtime → page
// performance.now() → node hrtime), keeping the one with the smallest round trip; the
// uncertainty is half that round trip (printed; typically ≈ 0.1–0.5 ms), plus Chromium's
// coarsening of performance.now() (≤ 0.1 ms). The mapping is measured before and after the run
// and both are printed: a difference means the clocks drift, and the figures are not to be
// trusted.
//
// Usage (from client-web/; binaries from `cargo build --release -p edgedesk-signaling
// -p edgedesk-host -p edgedesk-bench`; a --bin-dir needs edgedesk, edgedesk-host and
// edgedesk-bench):
//   node tests/tools/browser-latency.mjs --size 1920x1080 --fps 60 --seconds 10 \
//        [--playout-delay 0|off|MIN-MAX] [--bitrate 8M] [--runs N] [--json out.json]
//        [--chromium-arg X]... [--viewport 1280x720] [--raw]
//   --runs N repeats the whole set-up N times and pools the samples (each run meets Chromium's
//   frame clock at a new phase; one run's "displayed" figure can be 0–16.7 ms off the mean).
//   node tests/tools/browser-latency.mjs --self-check     # reader checks + a short 3 s run
//
// Playout delay: passed to edgedesk as EDGEDESK_PLAYOUT_DELAY (unset = 0 = edgedesk's default).
//
// Other servers, same stimulus, reader and clock mapping (--target, comma-separated, alternated
// within each run; --sizes likewise, so every target meets the same machine state):
//   node tests/tools/browser-latency.mjs --target edgedesk,selkies --sizes 1920x1080,1280x720 \
//        --fps 60 --seconds 10 --runs 3 [--selkies-bin PATH] [--selkies-arg --flag=value]...
//   selkies: the PyPI `selkies` package (2.x; pip install selkies into a venv, default binary
//   /tmp/selkies-venv/bin/selkies or $SELKIES_BIN), started as
//     DISPLAY=:N selkies --mode webrtc --addr 127.0.0.1 --port P --enable-basic-auth false
//       --audio-enabled false --enable-resize false --encoder h264enc
//       --framerate FPS-FPS --video-bitrate KBPS-KBPS     (locked: the page cannot change them)
//   Its page (http://127.0.0.1:P/) shows the stream in <video id="stream">; Chromium runs with
//   --autoplay-policy=no-user-gesture-required (else the page waits on a "Play Stream" click),
//   and an init script wraps window.RTCPeerConnection so getStats reaches the page's peer
//   connection. Selkies is the offerer: "answer extmaps" is then its offer's.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, waitForState, waitForFrames, CLIENT_WEB_DIR } from '../lib.mjs';
import { readLuma } from '../../../benches/browser/framecode.mjs';
import { installMeter, pageStats, clockOffset, capturePeerConnections } from '../../../benches/browser/page.mjs';

// ---- arguments -----------------------------------------------------------------------------

function parseArgs(argv) {
  const o = {
    size: '1920x1080',
    fps: 60,
    seconds: 10,
    warmup: 2,
    bitrate: '8M',
    playoutDelay: null,
    json: null,
    binDir: path.resolve(CLIENT_WEB_DIR, '../target/release'),
    chromiumArgs: [],
    viewport: null,
    selfCheck: false,
    runs: 1,
    quiet: false,
    targets: ['edgedesk'],
    sizes: null,
    selkiesBin: process.env.SELKIES_BIN ?? '/tmp/selkies-venv/bin/selkies',
    selkiesArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--size': o.size = next(); break;
      case '--fps': o.fps = Number(next()); break;
      case '--seconds': o.seconds = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--bitrate': o.bitrate = next(); break;
      case '--playout-delay': o.playoutDelay = next(); break;
      case '--json': o.json = next(); break;
      case '--bin-dir': o.binDir = path.resolve(next()); break;
      case '--chromium-arg': o.chromiumArgs.push(next()); break;
      case '--viewport': o.viewport = next(); break;
      case '--self-check': o.selfCheck = true; break;
      case '--quiet': o.quiet = true; break;
      case '--raw': o.raw = true; break;
      case '--runs': o.runs = Math.max(1, Number(next())); break;
      case '--target': o.targets = next().split(',').filter(Boolean); break;
      case '--sizes': o.sizes = next().split(',').filter(Boolean); break;
      case '--selkies-bin': o.selkiesBin = path.resolve(next()); break;
      case '--selkies-arg': o.selkiesArgs.push(next()); break;
      case '-h':
      case '--help':
        console.log(readHeader());
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  for (const t of o.targets) if (!TARGETS[t]) throw new Error(`--target: unknown ${t} (${Object.keys(TARGETS).join(', ')})`);
  o.sizes = o.sizes ?? [o.size];
  for (const sz of o.sizes) if (!/^(\d+)x(\d+)$/.test(sz)) throw new Error(`--size/--sizes want WxH, got ${sz}`);
  const m = /^(\d+)x(\d+)$/.exec(o.sizes[0]);
  [o.width, o.height] = [Number(m[1]), Number(m[2])];
  if (o.viewport) {
    const v = /^(\d+)x(\d+)$/.exec(o.viewport);
    if (!v) throw new Error(`--viewport wants WxH, got ${o.viewport}`);
    o.viewport = { width: Number(v[1]), height: Number(v[2]) };
  } else {
    o.viewport = { width: 1280, height: 720 };
  }
  if (o.selfCheck) {
    o.seconds = Math.min(o.seconds, 3);
    o.warmup = 1;
  }
  return o;
}

function readHeader() {
  return 'browser-latency.mjs: see the comment at the top of client-web/tests/tools/browser-latency.mjs';
}

// ---- processes -----------------------------------------------------------------------------

const children = [];

/** Spawns `cmd` in its own process group (so a kill reaches its children, and an X server does
 *  not outlive us when we are killed with our group); stdout lines go to `onLine`. */
function start(cmd, args, { env, onLine, onErrLine, stdio } = {}) {
  const child = spawn(cmd, args, {
    stdio: stdio ?? ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    detached: true,
  });
  children.push(child);
  if (onLine && child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  const errTail = [];
  if (child.stderr) {
    createInterface({ input: child.stderr }).on('line', (l) => {
      if (onErrLine) onErrLine(l);
      errTail.push(l);
      if (errTail.length > 20) errTail.shift();
    });
  }
  child.errTail = errTail;
  return child;
}

function killAll() {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }
}
process.on('exit', killAll);

/** SIGTERM to every child's group, then waits (up to 3 s, then SIGKILL) until they are gone. */
async function stopAll() {
  killAll();
  const end = Date.now() + 3000;
  const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  while (alive().length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  for (const c of alive()) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = pred();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Xvfb on a free display number (-displayfd); resolves to ":N". */
let xvfbChild = null;
const xvfbPid = () => xvfbChild?.pid;

async function startXvfb(width, height) {
  let out = '';
  const x = start('Xvfb', ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp', '-noreset'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  xvfbChild = x;
  x.stdio[3].on('data', (d) => { out += d; });
  const n = await waitFor(() => (/^(\d+)\n/.exec(out) || [])[1], 10000, 'Xvfb to print its display number');
  return `:${n}`;
}

// ---- statistics ------------------------------------------------------------------------------

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function summary(values) {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s.length ? s[s.length - 1] : NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

const f1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');

// ---- the run ---------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  // Alternate: for each run, every size, every target, so that slow changes of the machine
  // (thermal, other load) and the frame-clock phase spread over all of them alike.
  const byKey = new Map();
  for (let i = 0; i < o.runs; i++) {
    for (const size of o.sizes) {
      const [width, height] = size.split('x').map(Number);
      for (const target of o.targets) {
        if (o.runs > 1 || o.sizes.length > 1 || o.targets.length > 1) console.log(`\n--- run ${i + 1}/${o.runs}: ${target} ${size} ---`);
        let r;
        for (let attempt = 1; ; attempt++) {
          try {
            r = await runOnce({ ...o, target, width, height, size });
            break;
          } catch (e) {
            await stopAll();
            console.log(`run failed (attempt ${attempt}): ${e.message?.split('\n')[0]}${e.consoleTail ? `\n  page console: ${e.consoleTail.join(' || ')}` : ''}`);
            if (attempt >= 2) throw e;
          }
        }
        const key = `${target} ${size}`;
        if (!byKey.has(key)) byKey.set(key, []);
        byKey.get(key).push(r);
        if (o.selfCheck) selfCheck(r);
      }
    }
  }
  const pooled = {};
  for (const [key, results] of byKey) {
    const out = results.length === 1 ? results[0] : pool(results);
    pooled[key] = out;
    if (results.length > 1) {
      console.log(`\n=== ${key}: pooled over ${results.length} runs (each with a fresh Xvfb, server and Chromium: a new phase between the stimulus and Chromium's frame clock) ===`);
      printReport(out);
    }
  }
  if (byKey.size > 1) printTable(pooled, byKey);
  if (!o.raw) {
    for (const results of byKey.values()) for (const r of results) delete r.series;
    for (const out of Object.values(pooled)) delete out.series;
  }
  if (o.json) {
    const single = byKey.size === 1 ? [...byKey.values()][0] : null;
    const doc = single
      ? (single.length === 1 ? single[0] : { pooled: pooled[[...byKey.keys()][0]], runs: single })
      : { pooled, runs: Object.fromEntries(byKey) };
    writeFileSync(o.json, JSON.stringify(doc, null, 2));
  }
}

/** One line per target and size (pooled): the figures to compare. */
function printTable(pooled, byKey) {
  console.log('\n=== summary (pooled per target and size; ms unless said) ===');
  // 'runs p50 mean': the mean of the runs' displayed p50s (each run sits at one frame-clock
  // phase, so this is the phase-averaged figure); 'pres'/'recv' do not depend on the phase.
  const cols = ['target size', 'runs', 'disp p50', 'p90', 'p99', 'runs p50 mean', 'pres p50', 'recv p50', 'run p50s', 'pres fps', 'codes/s',
    'jb/frame', 'jb target', 'proc/frame', 'decode', 'Mbit/s', 'lost', 'freezes', 'cpu srv', 'cpu chr', 'cpu other', 'cpu all'];
  const rows = [];
  for (const [key, r] of Object.entries(pooled)) {
    const c = r.chromium;
    rows.push([key, String(byKey.get(key).length), f1(r.glassToGlassDisplayed.p50), f1(r.glassToGlassDisplayed.p90), f1(r.glassToGlassDisplayed.p99),
      f1(byKey.get(key).reduce((a, x) => a + x.glassToGlassDisplayed.p50, 0) / byKey.get(key).length),
      f1(r.glassToGlassPresented.p50), f1(r.drawnToReceived.p50),
      byKey.get(key).map((x) => f1(x.glassToGlassDisplayed.p50)).join('/'),
      f1(r.presentedFps), f1(r.distinctCodesPerSecond), f1(c.jitterBufferDelayMsPerFrame), f1(c.jitterBufferTargetDelayMsPerFrame),
      f1(c.processingDelayMsPerFrame), f1(c.decodeMsPerFrame), f1(c.mbps), f1(c.packetsLost), f1(c.freezes),
      f1(r.cpuPercent.server), f1(r.cpuPercent.chromium), f1(r.cpuPercent.other), f1(r.cpuPercent.machine)]);
  }
  const w = cols.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  console.log(cols.map((h, i) => h.padEnd(w[i])).join('  '));
  for (const row of rows) console.log(row.map((v, i) => (i === 0 ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  '));
}

/** Pools runs: latency percentiles over every run's samples, rates and per-frame stats averaged. */
function pool(results) {
  const out = structuredClone(results[0]);
  const series = {};
  for (const k of Object.keys(results[0].series)) series[k] = results.flatMap((r) => r.series[k]);
  out.glassToGlassDisplayed = summary(series.displayed);
  out.glassToGlassPresented = summary(series.presented);
  out.drawnToReceived = summary(series.hostNet);
  out.receivedToDisplayed = summary(series.browserSide);
  out.processingDurationMs = summary(series.processing);
  // Over the runs that have the figure (a run whose getStats found no video stream has NaN).
  const mean = (f) => {
    const v = results.map(f).filter(Number.isFinite);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  };
  for (const k of ['callbacksPerSecond', 'presentedFps', 'distinctCodesPerSecond', 'shownOfDrawn', 'shownFpsUpperBound', 'replacedPerSecond', 'mainThreadSkipsPerSecond']) out[k] = mean((r) => r[k]);
  for (const k of ['callbacks', 'codesRead', 'distinctCodesShown', 'drawnInWindow', 'unknownCodes']) out[k] = results.reduce((a, r) => a + r[k], 0);
  for (const k of Object.keys(out.chromium)) {
    if (typeof out.chromium[k] === 'number') out.chromium[k] = mean((r) => r.chromium[k]);
  }
  for (const k of Object.keys(out.cpuPercent)) out.cpuPercent[k] = mean((r) => r.cpuPercent[k]);
  out.clock.uncertaintyMs = Math.max(...results.map((r) => r.clock.uncertaintyMs));
  out.clock.driftMs = Math.max(...results.map((r) => Math.abs(r.clock.driftMs)));
  out.readMs = summary(results.flatMap((r) => [r.readMs.p50]));
  out.settings.seconds = results.reduce((a, r) => a + r.settings.seconds, 0);
  out.settings.runs = results.length;
  out.perRunDisplayedP50 = results.map((r) => r.glassToGlassDisplayed.p50);
  out.series = series;
  return out;
}

/** A free TCP port on 127.0.0.1 (for servers that cannot be told to pick one and print it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** '8M' / '8000k' / '8000000' → kbit/s. */
function kbps(bitrate) {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(String(bitrate));
  if (!m) throw new Error(`--bitrate: cannot read ${bitrate}`);
  const v = Number(m[1]);
  return Math.round(m[2] === '' ? v / 1000 : /m/i.test(m[2]) ? v * 1000 : v);
}

/** What differs between servers: how to start one on a display, which page to open, how to tell
 *  it is showing video, where its <video> is. Everything else (stimulus, reader, clock mapping,
 *  statistics) is shared. */
const TARGETS = {
  edgedesk: {
    chromiumArgs: [],
    initScript: null,
    videoSelector: null, // window.edgedesk.video
    check(o) {
      const f = path.join(o.binDir, 'edgedesk');
      if (!existsSync(f)) throw new Error(`${f} is missing: cargo build --release -p edgedesk-signaling -p edgedesk-host -p edgedesk-bench`);
    },
    async start(o, display, log) {
      const env = {};
      if (o.playoutDelay !== null) env.EDGEDESK_PLAYOUT_DELAY = o.playoutDelay;
      let url = null;
      const token = `latency-${process.pid}`;
      const server = start(path.join(o.binDir, 'edgedesk'), ['up', '--display', display, '--listen', '127.0.0.1:0', '--fps', String(o.fps),
        '--bitrate', o.bitrate, '--token', token, '--encoder', 'software'], {
        env: { RUST_LOG: 'warn', ...env },
        onLine: (l) => { if (l.startsWith('Open: ')) url = l.slice(6).trim(); },
      });
      await waitFor(() => url, 20000, 'edgedesk to print Open:').catch((e) => {
        throw new Error(`${e.message}; edgedesk: ${server.errTail.join(' | ')}`);
      });
      log(`edgedesk ${url.replace(/#.*/, '#…')} playout-delay ${o.playoutDelay ?? '(default)'}`);
      return { server, url };
    },
    async ready(page) {
      await waitForState(page, 'connected', 20000);
      await waitForFrames(page, 1, 20000);
    },
    remoteSdp: () => window.edgedesk.pc.remoteDescription?.sdp,
  },

  selkies: {
    // Without it the page shows "Play Stream" and waits for a click (its <video> is not muted).
    chromiumArgs: ['--autoplay-policy=no-user-gesture-required'],
    // The page keeps its RTCPeerConnection to itself: note every one made.
    initScript: capturePeerConnections,
    videoSelector: 'video#stream',
    check(o) {
      if (!existsSync(o.selkiesBin)) {
        throw new Error(`${o.selkiesBin} is missing: python3 -m venv /tmp/selkies-venv && /tmp/selkies-venv/bin/pip install selkies (or --selkies-bin / SELKIES_BIN)`);
      }
    },
    async start(o, display, log) {
      const port = await freePort();
      const rate = kbps(o.bitrate);
      const args = ['--mode', 'webrtc', '--addr', '127.0.0.1', '--port', String(port), '--enable-basic-auth', 'false',
        '--audio-enabled', 'false', '--enable-resize', 'false', '--encoder', 'h264enc',
        '--framerate', `${o.fps}-${o.fps}`, '--video-bitrate', `${rate}-${rate}`, ...o.selkiesArgs];
      let up = false;
      const settingsLines = [];
      const server = start(o.selkiesBin, args, {
        env: { DISPLAY: display },
        onErrLine: (l) => {
          if (/Selkies server running on http/.test(l)) up = true;
          if (/starting:/.test(l)) settingsLines.push(l.replace(/^\S+:\S+:/, ''));
        },
        // pixelflux prints its encoder settings on stdout once the stream starts.
        onLine: (l) => { if (/Stream settings active|Encoder:/.test(l)) settingsLines.push(l.trim()); },
      });
      server.settingsLines = settingsLines;
      await waitFor(() => up, 30000, 'selkies to listen').catch((e) => {
        throw new Error(`${e.message}; selkies: ${server.errTail.join(' | ')}`);
      });
      const url = `http://127.0.0.1:${port}/`;
      log(`selkies ${url} ${args.join(' ')}`);
      return { server, url };
    },
    // Selkies' first frame comes well before the stream flows (a keyframe, then seconds with
    // none decoded were seen): wait for 30 decoded frames.
    async ready(page) {
      await page.waitForFunction(async () => {
        const v = document.querySelector('video#stream');
        if (!v || !v.videoWidth || v.paused) return false;
        for (const pc of window.__latencyPcs ?? []) {
          if (pc.connectionState !== 'connected') continue;
          let frames = 0;
          (await pc.getStats()).forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') frames = Math.max(frames, s.framesDecoded ?? 0);
          });
          if (frames >= 30) return true;
        }
        return false;
      }, null, { timeout: 30000, polling: 200 });
    },
    remoteSdp: () => {
      const pc = [...(window.__latencyPcs ?? [])].reverse().find((p) => p.connectionState === 'connected');
      return pc?.remoteDescription?.sdp;
    },
  },
};

async function runOnce(o) {
  children.length = 0;
  const log = (...a) => { if (!o.quiet) console.error('#', ...a); };
  const bench = path.join(o.binDir, 'edgedesk-bench');
  if (!existsSync(bench)) throw new Error(`${bench} is missing: cargo build --release -p edgedesk-signaling -p edgedesk-host -p edgedesk-bench`);
  const target = TARGETS[o.target];
  target.check(o);

  const display = await startXvfb(o.width, o.height);
  log(`Xvfb ${display} ${o.width}x${o.height}`);

  const drawn = new Map(); // code → ms on CLOCK_MONOTONIC
  let layout = null;
  const stim = start(bench, ['stimulus', '--display', display, '--fps', String(o.fps), '--print-drawn'], {
    onLine: (l) => {
      const p = l.split(' ');
      if (p[0] === 'drawn') drawn.set(Number(p[1]), Number(BigInt(p[2])) / 1e6);
      else if (p[0] === 'layout') layout = { x: +p[1], y: +p[2], w: +p[3], h: +p[4], width: +p[5], height: +p[6] };
    },
  });
  await waitFor(() => layout, 10000, 'the stimulus layout').catch((e) => {
    throw new Error(`${e.message}; stimulus: ${stim.errTail.join(' | ')}`);
  });

  const { server, url } = await target.start(o, display, log);

  const browser = await launchChromium({ args: [...target.chromiumArgs, ...o.chromiumArgs] });
  const consoleTail = [];
  try {
    const page = await browser.newPage({ viewport: o.viewport });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      consoleTail.push(m.text().slice(0, 300));
      if (consoleTail.length > 30) consoleTail.shift();
    });
    if (target.initScript) await page.addInitScript(target.initScript);
    await page.goto(url);
    await target.ready(page);
    const sdp = await page.evaluate(target.remoteSdp);
    const extmaps = (sdp ?? '').split(/\r?\n/).filter((l) => l.startsWith('a=extmap:'));
    const sync0 = await clockOffset(page);
    await page.evaluate(installMeter, { rect: layout, readLumaSrc: readLuma.toString(), videoSelector: target.videoSelector });
    await new Promise((r) => setTimeout(r, o.warmup * 1000));
    const stats0 = await pageStats(page);
    const groups = { server: server.pid, stimulus: stim.pid, xvfb: xvfbPid(), chromium: chromiumPid() };
    const cpu0 = cpuTimes(groups);
    const self0 = process.cpuUsage();
    const t0 = await page.evaluate(() => performance.now());
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const t1 = await page.evaluate(() => performance.now());
    const cpu1 = cpuTimes(groups);
    const self1 = process.cpuUsage(self0);
    cpu1.harness = (self1.user + self1.system) / 1e6;
    cpu0.harness = 0;
    // getStats is cached for a few ms: wait a little so the second read is fresh.
    await new Promise((r) => setTimeout(r, 100));
    const stats1 = await pageStats(page);
    const meter = await page.evaluate(() => {
      window.__meter.running = false;
      return window.__meter;
    });
    const sync1 = await clockOffset(page);
    await page.close();

    const result = analyse({ o, layout, drawn, meter, t0, t1, sync0, sync1, stats0, stats1, extmaps, cpu0, cpu1 });
    result.pageErrors = pageErrors;
    result.videoSwaps = meter.videoSwaps;
    if (meter.videoSwaps) console.log(`note: the page replaced its <video> ${meter.videoSwaps} time(s) during the run`);
    if (server.settingsLines) result.serverSettings = [...server.settingsLines];
    if (o.raw) {
      result.raw = { offsetMs: (sync0.offset + sync1.offset) / 2, samples: meter.samples, drawn: [...drawn.entries()] };
    }
    printReport(result);
    if (result.serverSettings?.length) console.log(`server: ${result.serverSettings.join(' | ')}`);
    return result;
  } catch (e) {
    e.consoleTail = consoleTail;
    throw e;
  } finally {
    await browser.close();
    await stopAll();
  }
}

/** CPU seconds (user + system) of the given pids with everything below them: every live
 *  process in their process group (our children are group leaders) or descended from them
 *  (Chromium's zygote-forked renderers leave its group), from /proc/PID/stat. */
function cpuTimes(named) {
  const out = {};
  const procs = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readProc(`/proc/${d}/stat`);
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      // fields[0] = state, [2] = pgrp, [11] = utime, [12] = stime (clock ticks, 100 Hz)
      procs.push({ pid: Number(d), ppid: Number(fields[1]), pgrp: Number(fields[2]), cpu: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      /* gone */
    }
  }
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const under = (p, root) => {
    for (let q = p, n = 0; q && n < 64; q = byPid.get(q.ppid), n++) if (q.pid === root || q.pgrp === root) return true;
    return false;
  };
  for (const [name, pid] of Object.entries(named)) {
    out[name] = pid ? procs.filter((p) => under(p, pid)).reduce((a, p) => a + p.cpu, 0) : NaN;
  }
  out.at = process.hrtime.bigint();
  const cpu = readProc('/proc/stat').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  out.total = cpu.reduce((x, y) => x + y, 0);
  out.busy = out.total - cpu[3] - (cpu[4] ?? 0); // minus idle and iowait
  return out;
}

/** Chromium's browser process: our child whose name says so. */
function chromiumPid() {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readProc(`/proc/${d}/stat`);
      const comm = f.slice(f.indexOf('(') + 1, f.lastIndexOf(')'));
      const ppid = Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && /chrom/i.test(comm)) return Number(d);
    } catch {
      /* gone */
    }
  }
  return null;
}

/** Busy CPU of the whole machine between two cpuTimes() reads, % of one core. */
function machineBusy(a, b) {
  return ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length * 100;
}

function readProc(p) {
  return String(readFileSync(p));
}

function analyse({ o, layout, drawn, meter, t0, t1, sync0, sync1, stats0, stats1, extmaps, cpu0, cpu1 }) {
  const off = (sync0.offset + sync1.offset) / 2;
  const toMono = (pageMs) => pageMs + off;
  const firstDrawn = Math.min(...drawn.values());
  const window = meter.samples.filter((s) => s.now >= t0 && s.now <= t1);
  const seconds = (t1 - t0) / 1000;
  const read = window.filter((s) => s.code !== null);
  const seen = new Set();
  const displayed = [];
  const presentedLat = [];
  const expectedMinusNow = [];
  const hostNet = [];
  const browserSide = [];
  const processing = [];
  let unknownCodes = 0;
  for (const s of read) {
    if (seen.has(s.code)) continue; // the first callback showing each code
    seen.add(s.code);
    const d = drawn.get(s.code);
    if (d === undefined) {
      unknownCodes++;
      continue;
    }
    displayed.push(toMono(s.now) - d);
    presentedLat.push(toMono(s.presentationTime) - d);
    expectedMinusNow.push(s.expectedDisplayTime - s.now);
    if (Number.isFinite(s.receiveTime)) {
      hostNet.push(toMono(s.receiveTime) - d);
      browserSide.push(s.now - s.receiveTime);
    }
    if (Number.isFinite(s.processingDuration)) processing.push(s.processingDuration * 1000);
  }
  // Codes drawn during the window (by the stimulus' clock) and how many of them were shown.
  const m0 = toMono(t0);
  const m1 = toMono(t1);
  const drawnInWindow = [...drawn.entries()].filter(([, t]) => t >= m0 - 30 && t <= m1 - 30).map(([c]) => c);
  const shownInWindow = drawnInWindow.filter((c) => seen.has(c)).length;
  // Between two callbacks `k` rendering steps passed (Δnow in frame intervals) and `dp` frames
  // were presented to the compositor: more frames than steps means dp − k of them were replaced
  // before any step showed them (surely not displayed: two arrivals in one interval). Fewer
  // callbacks than steps (main thread late) hides frames from rVFC that the compositor may
  // still have shown, so the frames shown lie between the distinct codes seen and
  // presented − surely lost.
  let surelyLost = 0;
  let mainSkips = 0;
  const interval = 1000 / 60;
  for (let i = 1; i < window.length; i++) {
    const dp = window[i].presentedFrames - window[i - 1].presentedFrames;
    const k = Math.max(1, Math.round((window[i].now - window[i - 1].now) / interval));
    surelyLost += Math.max(0, dp - k);
    if (k > 1 && dp > 1) mainSkips += Math.min(dp, k) - 1;
  }
  const presented = window.length
    ? (window[window.length - 1].presentedFrames - window[0].presentedFrames) / seconds
    : 0;
  const per = (a, b, key, count) => {
    if (!a || !b) return NaN;
    const n = b[count] - a[count];
    return n > 0 ? ((b[key] - a[key]) / n) * 1000 : NaN;
  };
  const d = (k) => (stats0 && stats1 ? stats1[k] - stats0[k] : NaN);
  const cpuPct = (name) => ((cpu1[name] - cpu0[name]) / (Number(cpu1.at - cpu0.at) / 1e9)) * 100;
  return {
    settings: {
      target: o.target, size: `${o.width}x${o.height}`, fps: o.fps, seconds, bitrate: o.bitrate,
      playoutDelay: o.playoutDelay ?? 'default (0)', viewport: `${o.viewport.width}x${o.viewport.height}`,
      chromiumArgs: o.chromiumArgs, codeRect: layout,
    },
    clock: {
      offsetStartMs: sync0.offset, offsetEndMs: sync1.offset, driftMs: sync1.offset - sync0.offset,
      uncertaintyMs: Math.max(sync0.uncertaintyMs, sync1.uncertaintyMs),
    },
    answerExtmaps: extmaps,
    readPath: meter.path,
    readErrors: meter.errors,
    callbacks: window.length,
    callbacksPerSecond: window.length / seconds,
    presentedFps: presented,
    shownFpsUpperBound: presented - surelyLost / seconds,
    replacedPerSecond: surelyLost / seconds,
    mainThreadSkipsPerSecond: mainSkips / seconds,
    codesRead: read.length,
    distinctCodesShown: seen.size,
    distinctCodesPerSecond: seen.size / seconds,
    drawnInWindow: drawnInWindow.length,
    shownOfDrawn: drawnInWindow.length ? shownInWindow / drawnInWindow.length : NaN,
    unknownCodes,
    codesBeforeFirstDrawn: firstDrawn,
    readMs: summary(window.map((s) => s.readMs)),
    glassToGlassDisplayed: summary(displayed),
    glassToGlassPresented: summary(presentedLat),
    expectedDisplayMinusNow: summary(expectedMinusNow),
    drawnToReceived: summary(hostNet),
    receivedToDisplayed: summary(browserSide),
    processingDurationMs: summary(processing),
    chromium: {
      framesReceived: d('framesReceived'),
      framesDecoded: d('framesDecoded'),
      framesDropped: d('framesDropped'),
      decodedFps: d('framesDecoded') / seconds,
      jitterBufferDelayMsPerFrame: per(stats0, stats1, 'jitterBufferDelay', 'jitterBufferEmittedCount'),
      jitterBufferTargetDelayMsPerFrame: per(stats0, stats1, 'jitterBufferTargetDelay', 'jitterBufferEmittedCount'),
      jitterBufferMinimumDelayMsPerFrame: per(stats0, stats1, 'jitterBufferMinimumDelay', 'jitterBufferEmittedCount'),
      processingDelayMsPerFrame: per(stats0, stats1, 'totalProcessingDelay', 'framesDecoded'),
      decodeMsPerFrame: per(stats0, stats1, 'totalDecodeTime', 'framesDecoded'),
      assemblyMsPerFrame: per(stats0, stats1, 'totalAssemblyTime', 'framesAssembledFromMultiplePackets'),
      interFrameMsMean: per(stats0, stats1, 'totalInterFrameDelay', 'framesDecoded'),
      freezes: d('freezeCount'),
      packetsLost: d('packetsLost'),
      nacks: d('nackCount'),
      plis: d('pliCount'),
      mbps: (d('bytesReceived') * 8) / seconds / 1e6,
      decoder: stats1?.decoderImplementation,
      frame: stats1 ? `${stats1.frameWidth}x${stats1.frameHeight}` : null,
    },
    series: { displayed, presented: presentedLat, hostNet, browserSide, processing },
    cpuPercent: (() => {
      const c = { server: cpuPct('server'), stimulus: cpuPct('stimulus'), xvfb: cpuPct('xvfb'), chromium: cpuPct('chromium'), harness: cpuPct('harness'), machine: machineBusy(cpu0, cpu1) };
      // Whatever else ran on the machine meanwhile (another build, …): it competes for the cores.
      c.other = c.machine - c.server - c.stimulus - c.xvfb - (c.chromium || 0) - c.harness;
      return c;
    })(),
  };
}

function printReport(r) {
  const g = (name, s) => console.log(`${name.padEnd(34)} p50 ${f1(s.p50).padStart(6)}  p90 ${f1(s.p90).padStart(6)}  p99 ${f1(s.p99).padStart(6)}  max ${f1(s.max).padStart(6)}  (n=${s.n}) ms`);
  const c = r.chromium;
  console.log(`browser latency: ${r.settings.target} ${r.settings.size}@${r.settings.fps} ${r.settings.bitrate}${r.settings.target === 'edgedesk' ? ` playout-delay ${r.settings.playoutDelay}` : ''}, ${r.settings.seconds.toFixed(1)} s`);
  console.log(`answer extmaps: ${r.answerExtmaps.map((l) => l.slice(9)).join(' | ') || '(none)'}`);
  console.log(`clock: page→monotonic offset ±${f1(r.clock.uncertaintyMs)} ms, drift over the run ${r.clock.driftMs.toFixed(2)} ms; frame read via ${r.readPath}`);
  g('glass-to-glass (displayed)', r.glassToGlassDisplayed);
  g('glass-to-glass (presented)', r.glassToGlassPresented);
  g('  drawn → received (host+net)', r.drawnToReceived);
  g('  received → displayed (browser)', r.receivedToDisplayed);
  g('  rVFC processingDuration', r.processingDurationMs);
  console.log(`shown fps between ${f1(r.distinctCodesPerSecond)} (distinct codes in rVFC) and ${f1(r.shownFpsUpperBound)} (presented − replaced unseen: ${f1(r.replacedPerSecond)}/s; main-thread rendering steps missed ${f1(r.mainThreadSkipsPerSecond)}/s)`);
  console.log(`presented fps ${f1(r.presentedFps)} (rVFC callbacks ${f1(r.callbacksPerSecond)}/s, distinct codes shown ${f1(r.distinctCodesPerSecond)}/s, ${(r.shownOfDrawn * 100).toFixed(1)} % of drawn codes shown)`);
  console.log(`chromium per frame: jitter buffer ${f1(c.jitterBufferDelayMsPerFrame)} ms (target ${f1(c.jitterBufferTargetDelayMsPerFrame)}, minimum ${f1(c.jitterBufferMinimumDelayMsPerFrame)}), processing ${f1(c.processingDelayMsPerFrame)} ms, decode ${f1(c.decodeMsPerFrame)} ms, assembly ${f1(c.assemblyMsPerFrame)} ms`);
  console.log(`chromium: ${f1(c.decodedFps)} decoded fps, received ${c.framesReceived}, decoded ${c.framesDecoded}, dropped ${c.framesDropped}, freezes ${c.freezes}, lost ${c.packetsLost}, nacks ${c.nacks}, plis ${c.plis}, ${f1(c.mbps)} Mbit/s, ${c.frame} ${c.decoder ?? ''}`);
  console.log(`cpu (% of one core): ${r.settings.target} ${f1(r.cpuPercent.server)}, stimulus ${f1(r.cpuPercent.stimulus)}, Xvfb ${f1(r.cpuPercent.xvfb)}, Chromium ${f1(r.cpuPercent.chromium)}, harness ${f1(r.cpuPercent.harness)}, other processes ${f1(r.cpuPercent.other)}, whole machine ${f1(r.cpuPercent.machine)} of ${os.cpus().length * 100}; frame read p50 ${f1(r.readMs.p50)} ms; unreadable ${r.callbacks - r.codesRead} of ${r.callbacks} ${JSON.stringify(r.readErrors)}`);
}

function selfCheck(r) {
  const fail = [];
  if (!(r.clock.uncertaintyMs < 3)) fail.push(`clock mapping too uncertain (±${r.clock.uncertaintyMs} ms)`);
  if (!(Math.abs(r.clock.driftMs) < 1)) fail.push(`page clock drifts against CLOCK_MONOTONIC (${r.clock.driftMs} ms)`);
  if (!(r.codesRead >= 0.9 * r.callbacks && r.callbacks > 0)) fail.push(`only ${r.codesRead} of ${r.callbacks} frames read`);
  if (r.unknownCodes) fail.push(`${r.unknownCodes} codes the stimulus never drew`);
  const g = r.glassToGlassDisplayed;
  if (!(g.n > 0 && g.p50 > 0 && g.max < 1000)) fail.push(`implausible glass-to-glass ${JSON.stringify(g)}`);
  if (!(r.glassToGlassPresented.p50 > 0) || !(r.drawnToReceived.p50 > 0)) fail.push('a frame arrived before it was drawn: clock mapping is wrong');
  if (fail.length) {
    console.log(`SELF-CHECK FAILED: ${fail.join('; ')}`);
    process.exitCode = 1;
  } else {
    console.log('self-check ok');
  }
}

main().catch((e) => {
  console.error(`browser-latency: ${e.stack ?? e}`);
  killAll();
  process.exit(1);
});
