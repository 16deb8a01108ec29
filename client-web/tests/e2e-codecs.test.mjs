// tests/e2e-codecs.test.mjs — every codec Chromium decodes here (H.264, VP8, VP9, AV1), each
// offered alone (`?codec=`): the host answers with that codec, the painted colour shows at its
// place, and the stats overlay names the codec. Without `?codec=` the host's order decides.
// Needs the binaries built (see e2e.test.mjs). Run: cd client-web && node --test tests/e2e-codecs.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { launchChromium, waitForState, waitForFrames, readVideoPixel, startProcess, EDGEDESK_BIN } from './lib.mjs';

const PAINT = path.join(path.dirname(EDGEDESK_BIN), 'edgedesk-paint');
const near = (a, b, tol = 40) => a && a.every((v, i) => Math.abs(v - b[i]) <= tol);

let browser;
before(async () => {
  for (const f of [EDGEDESK_BIN, PAINT]) assert.ok(existsSync(f), `${f} is missing: run cargo build --workspace --bins first`);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

async function server(t, codecs) {
  const args = ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '640x360', '--fps', '30',
    '--bitrate', '2M', '--app', '', '--wm', '', '--codecs', codecs];
  const s = startProcess(EDGEDESK_BIN, args);
  t.after(s.kill);
  const value = async (prefix) => (await s.waitLine((l) => l.startsWith(prefix), 30000)).slice(prefix.length).trim();
  const display = await value('Display: ');
  const xauthority = await value('Xauthority: ');
  const open = await value('Open: ');
  // The session's display has access control: the painter needs its cookie.
  process.env.XAUTHORITY = xauthority;
  const painter = startProcess(PAINT, ['--display', display, '--rect', '400,60,160,120', '--color', 'ff0000']);
  t.after(painter.kill);
  await painter.waitLine((l) => l === 'READY', 10000);
  return { open };
}

async function play(t, url) {
  const page = await browser.newPage();
  t.after(() => page.close());
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  await waitForFrames(page, 1, 15000);
  const end = Date.now() + 10000;
  let px;
  while (Date.now() < end && !near(px, [255, 0, 0])) {
    px = await readVideoPixel(page, 480, 120);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(near(px, [255, 0, 0]), `pixel (480,120) is ${JSON.stringify(px)}`);
  const answer = await page.evaluate(() => window.edgedesk.pc.remoteDescription.sdp);
  const codecs = [...answer.matchAll(/a=rtpmap:\d+ ([^/]+)\/90000/g)].map((m) => m[1]).filter((c) => c !== 'rtx');
  await new Promise((r) => setTimeout(r, 600));
  const stats = await page.evaluate(() => window.edgedesk.stats());
  return { codecs, stats };
}

test('each codec offered alone plays, at its place, and is named in the stats', async (t) => {
  const s = await server(t, 'h264,vp9,av1,vp8');
  for (const [codec, name] of [['h264', 'H264'], ['vp8', 'VP8'], ['vp9', 'VP9'], ['av1', 'AV1']]) {
    const url = new URL(s.open);
    url.searchParams.set('codec', codec);
    const started = Date.now();
    const { codecs, stats } = await play(t, url.href);
    assert.deepEqual(codecs, [name], `the answer holds ${name} only`);
    assert.match(String(stats.codec), new RegExp(`^${name}`, 'i'));
    console.log(`# ${codec}: first red pixel after ${Date.now() - started} ms; ${stats.fps} fps, ${stats.codec}`);
  }
  // No ?codec=: the browser offers everything and the host's first choice wins.
  const { codecs } = await play(t, s.open);
  assert.deepEqual(codecs, ['H264']);
});
