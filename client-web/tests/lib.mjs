// tests/lib.mjs — helpers for end-to-end tests of the browser client with headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core; no browser is ever downloaded).
//
//   launchChromium({ args, env })          → playwright Browser with the flags that work here
//   openClient(page, baseUrl, session, token)  opens the client, waits for window.edgedesk
//   waitForState(page, state, timeoutMs)   → waits for window.edgedesk.state === state
//   waitForFrames(page, n, timeoutMs)      → framesDecoded of the video once ≥ n
//   readVideoPixel(page, x, y)             → [r, g, b] of the current frame at (x, y) in video pixels
//   readVideoSize(page)                    → [videoWidth, videoHeight]
//   watchPage(page)                        → { errors, requests }: JS errors and requested URLs
//   serveClientWeb(handler)                → { baseUrl, close() }: client-web/ on 127.0.0.1 with
//                                            every other request passed to handler (a fake WHEP)
//
//   startProcess(cmd, args)               → { child, lines, waitLine(pred, ms), kill() }
//   openConnected(browser, url, viewport)  → a page showing video with its input channel open
//   clientPoint(page, x, y)                → client coordinates of video pixel (x, y)
//   desktopWithXevents(t, size, setup)     → { url, xev, display }: `edgedesk up` on its own Xvfb
//                                            (no WM, no app) with edgedesk-xevents covering it
//   pressedChars(xev, n)                   → the first n characters of its key presses
//
// The page's test handle is documented at the top of app.js (window.edgedesk).

import { chromium } from 'playwright-core';
import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLIENT_WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The edgedesk binary under test (EDGEDESK_BIN, else the debug build) and the X test client. */
export const EDGEDESK_BIN = process.env.EDGEDESK_BIN ?? path.resolve(CLIENT_WEB_DIR, '../target/debug/edgedesk');
export const XEVENTS_BIN = path.join(path.dirname(EDGEDESK_BIN), 'edgedesk-xevents');
export const CHROMIUM_PATH = process.env.EDGEDESK_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/** Launches headless Chromium. `args` are added to CHROMIUM_ARGS (e.g. a --disable-features=…). */
export async function launchChromium({ args = [], ...options } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    ...options,
  });
}

/** Opens the client for `session` with `token` (in the fragment) and waits for its test handle. */
export async function openClient(page, baseUrl, session, token) {
  const base = baseUrl.replace(/\/+$/, '');
  const url = `${base}/?session=${encodeURIComponent(session)}${token ? `#token=${encodeURIComponent(token)}` : ''}`;
  await page.goto(url);
  await page.waitForFunction(() => window.edgedesk !== undefined, null, { timeout: 10000 });
  return page;
}

/** Waits until window.edgedesk.state is `state`; throws with the last state and reason. */
export async function waitForState(page, state, timeoutMs = 10000) {
  try {
    await page.waitForFunction((s) => window.edgedesk?.state === s, state, { timeout: timeoutMs, polling: 50 });
  } catch {
    const now = await page.evaluate(() => ({ state: window.edgedesk?.state, reason: window.edgedesk?.reason }));
    throw new Error(`state did not become ${state} within ${timeoutMs} ms (now ${now.state}: ${now.reason || '-'})`);
  }
}

/**
 * Polls getStats() of the current connection until the video's framesDecoded ≥ n; returns it.
 * Reads the peer connection directly, so it does not disturb the deltas of edgedesk.stats().
 */
export async function waitForFrames(page, n = 1, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last = { frames: 0, state: '?', reason: '' };
  while (Date.now() < deadline) {
    last = await page.evaluate(async () => {
      const h = window.edgedesk;
      let frames = 0;
      if (h?.pc) {
        (await h.pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') frames = Math.max(frames, s.framesDecoded ?? 0);
        });
      }
      return { frames, state: h?.state, reason: h?.reason };
    });
    if (last.frames >= n) return last.frames;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`only ${last.frames} of ${n} frames decoded within ${timeoutMs} ms (state ${last.state}${last.reason ? `: ${last.reason}` : ''})`);
}

/** [videoWidth, videoHeight] of the <video> (0, 0 before the first frame). */
export async function readVideoSize(page) {
  return page.evaluate(() => [window.edgedesk.video.videoWidth, window.edgedesk.video.videoHeight]);
}

/**
 * Draws the current video frame at its intrinsic size and returns [r, g, b] at (x, y) in VIDEO
 * coordinates (not page coordinates: letterboxing and scaling do not matter).
 */
export async function readVideoPixel(page, x, y) {
  return page.evaluate(([px, py]) => {
    const v = window.edgedesk.video;
    const w = v.videoWidth;
    const h = v.videoHeight;
    if (!w || !h) throw new Error('the video has no frame yet');
    if (px < 0 || py < 0 || px >= w || py >= h) throw new Error(`(${px}, ${py}) is outside the ${w}x${h} video`);
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0, w, h);
    const d = ctx.getImageData(px, py, 1, 1).data;
    return [d[0], d[1], d[2]];
  }, [Math.floor(x), Math.floor(y)]);
}

/**
 * Records the page's JavaScript errors (uncaught exceptions, console.error) and every URL it
 * requests. "Failed to load resource" console lines are not errors here: Chromium prints one for
 * every HTTP error status, which the tests provoke on purpose.
 */
export function watchPage(page) {
  const errors = [];
  const requests = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  page.on('request', (req) => requests.push(req.url()));
  return { errors, requests };
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * Serves client-web/ the way the edgedesk server does (GET / → index.html, GET /FILE → a file at
 * the root of client-web/, never tests/, node_modules/ or package*.json) on 127.0.0.1 at an
 * ephemeral port. Every other request goes to `handler(req, res, body)` (body: Buffer), which
 * answers 404 when omitted. Resolves to { baseUrl, close }.
 */
export async function serveClientWeb(handler = (req, res) => res.writeHead(404).end()) {
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const { pathname } = new URL(req.url, 'http://localhost');
    if (req.method === 'GET' || req.method === 'HEAD') {
      const file = await staticFile(pathname);
      if (file) {
        res.writeHead(200, { 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : await readFile(file));
        return;
      }
    }
    try {
      await handler(req, res, body);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

async function staticFile(pathname) {
  const name = pathname === '/' ? 'index.html' : decodeURIComponent(pathname.slice(1));
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.') || /^package(-lock)?\.json$/.test(name)) return null;
  const file = path.join(CLIENT_WEB_DIR, name);
  try {
    return (await stat(file)).isFile() ? file : null;
  } catch {
    return null;
  }
}

/** Spawns a process; `waitLine(pred, ms)` takes (and returns) its first stdout line matching
 *  pred, dropping the lines before it; `lines` holds what is not taken yet. */
export function startProcess(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  async function waitLine(pred, ms = 10000) {
    const end = Date.now() + ms;
    for (;;) {
      const i = lines.findIndex(pred);
      if (i >= 0) return lines.splice(0, i + 1).pop();
      if (child.exitCode !== null) throw new Error(`${cmd} exited (${child.exitCode})`);
      if (Date.now() > end) throw new Error(`no matching line from ${path.basename(cmd)} within ${ms} ms; have ${JSON.stringify(lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return { child, lines, waitLine, kill: () => child.exitCode === null && child.kill('SIGTERM') };
}

/** Client coordinates of video pixel (x, y), through the letterboxed <video>. */
export async function clientPoint(page, x, y) {
  return page.evaluate(([x, y]) => {
    const v = window.edgedesk.video;
    const r = v.getBoundingClientRect();
    const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const left = r.left + (r.width - v.videoWidth * s) / 2;
    const top = r.top + (r.height - v.videoHeight * s) / 2;
    return { x: left + (x + 0.5) * s, y: top + (y + 0.5) * s };
  }, [x, y]);
}

/** Opens the client at `url` in a new page (playwright `options` such as hasTouch) and waits
 *  until it shows video and its input channel is open. */
export async function openConnected(browser, url, viewport, options = {}) {
  const page = await browser.newPage({ viewport, ...options });
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  await waitForFrames(page, 1, 15000);
  await page.waitForFunction(() => window.edgedesk.inputChannel?.readyState === 'open', null, { timeout: 10000 });
  return page;
}

/** edgedesk on its own Xvfb (no WM, no app) with edgedesk-xevents covering it; returns both. */
export async function desktopWithXevents(t, size = [640, 480], setup = () => {}) {
  const server = startProcess(EDGEDESK_BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', `${size[0]}x${size[1]}`, '--fps', '30', '--token', 'input-e2e', '--app', '', '--wm', '']);
  t.after(server.kill);
  const display = (await server.waitLine((l) => l.startsWith('Display: '))).slice(9);
  // The session's display has access control: X clients of the test need its cookie.
  process.env.XAUTHORITY = (await server.waitLine((l) => l.startsWith('Xauthority: '))).slice(12);
  const url = (await server.waitLine((l) => l.startsWith('Open: '))).slice(6);
  setup(display);
  const xev = startProcess(XEVENTS_BIN, ['--display', display, '--rect', `0,0,${size[0]},${size[1]}`]);
  t.after(xev.kill);
  await xev.waitLine((l) => l === 'READY');
  return { url, xev, display };
}

/** The characters the X client got from key presses, until `n` of them came. */
export async function pressedChars(xev, n) {
  const chars = [];
  while (chars.length < n) {
    const line = await xev.waitLine((l) => l.startsWith('key press '));
    const text = line.split(' ').slice(4).join(' ');
    if (text) chars.push(text);
  }
  return chars;
}
