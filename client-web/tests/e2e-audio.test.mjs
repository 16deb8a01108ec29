// tests/e2e-audio.test.mjs — the desktop's sound in headless Chromium: an app of the session
// (a shell script looping `pacat` of a generated 1 kHz tone, started with `--app`, so it
// finds the session's own PulseAudio through PULSE_SERVER) plays; the page's <audio> plays the
// Opus track; WebAudio finds the tone's frequency in what arrives and getStats sees its level.
// A browser that blocks autoplay gets the one-time "click for sound" hint, and a click starts
// the sound. Needs the binaries built. Run: cd client-web && node --test tests/e2e-audio.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, waitForState, startProcess, EDGEDESK_BIN } from './lib.mjs';

let dir;
let script;
before(() => {
  assert.ok(existsSync(EDGEDESK_BIN), `${EDGEDESK_BIN} is missing: run cargo build --workspace --bins first`);
  dir = mkdtempSync(path.join(os.tmpdir(), 'edgedesk-audio-e2e-'));
  // One second of a 1 kHz stereo sine at half scale, s16le 48 kHz, played in a loop.
  const n = 48000;
  const pcm = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) {
    const v = Math.round(0.5 * 32767 * Math.sin((2 * Math.PI * 1000 * i) / 48000));
    pcm.writeInt16LE(v, i * 4);
    pcm.writeInt16LE(v, i * 4 + 2);
  }
  writeFileSync(path.join(dir, 'tone.raw'), pcm);
  script = path.join(dir, 'tone.sh');
  writeFileSync(script, `#!/bin/sh\nwhile :; do pacat --playback --format=s16le --rate=48000 --channels=2 --latency-msec=20 < '${dir}/tone.raw' || sleep 0.2; done\n`);
  chmodSync(script, 0o755);
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

async function server(t, extra = []) {
  const s = startProcess(EDGEDESK_BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '320x240',
    '--fps', '15', '--bitrate', '500k', '--wm', '', '--app', script, ...extra]);
  t.after(s.kill);
  return (await s.waitLine((l) => l.startsWith('Open: '), 30000)).slice(6);
}

/** The audio inbound-rtp stats of the page's connection. */
const audioStats = (page) => page.evaluate(async () => {
  const r = await window.edgedesk.pc.getStats();
  for (const s of r.values()) if (s.type === 'inbound-rtp' && s.kind === 'audio') return s;
  return null;
});

/** The strongest frequency in the played stream (WebAudio analyser on the audio element's stream). */
const peakHz = (page) => page.evaluate(async () => {
  const el = document.getElementById('sound');
  const ctx = new AudioContext();
  await ctx.resume();
  const src = ctx.createMediaStreamSource(el.srcObject);
  const an = ctx.createAnalyser();
  an.fftSize = 4096;
  src.connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  let best = { hz: 0, db: -Infinity };
  for (let i = 0; i < 20 && best.db < -40; i++) {
    await new Promise((r) => setTimeout(r, 100));
    an.getFloatFrequencyData(bins);
    for (let k = 1; k < bins.length; k++) {
      if (bins[k] > best.db) best = { hz: (k * ctx.sampleRate) / an.fftSize, db: bins[k] };
    }
  }
  await ctx.close();
  return best;
});

test('a tone played on the desktop is heard in the browser', async (t) => {
  const url = await server(t);
  const browser = await launchChromium({ args: ['--autoplay-policy=no-user-gesture-required'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  const answer = await page.evaluate(() => window.edgedesk.pc.remoteDescription.sdp);
  assert.match(answer, /m=audio [1-9]\d* [^\r\n]*\r?\n(?:[^m][^\r\n]*\r?\n)*a=rtpmap:\d+ opus\/48000\/2/i);

  // The level of what arrives rises to the tone's (0.5 of full scale ≈ -6 dBFS).
  let s;
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    s = await audioStats(page);
    if (s?.audioLevel > 0.2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(s?.audioLevel > 0.2, `audio level ${s?.audioLevel} (packets ${s?.packetsReceived})`);
  assert.ok(s.totalAudioEnergy > 0);
  assert.equal(await page.evaluate(() => document.getElementById('sound').paused), false);
  assert.equal(await page.evaluate(() => document.getElementById('sound-hint').hidden), true, 'no hint when sound plays');

  const peak = await peakHz(page);
  assert.ok(Math.abs(peak.hz - 1000) < 30, `the strongest frequency is ${peak.hz.toFixed(0)} Hz (${peak.db.toFixed(0)} dB)`);

  // The stats overlay shows the sound's level and jitter.
  await page.click('#btn-stats', { force: true });
  await page.waitForFunction(() => /Sound\s*-?\d+ dBFS/.test(document.getElementById('stats-rows').textContent), null, { timeout: 5000 });
  assert.match(await page.textContent('#stats-rows'), /Sound jitter\s*\d+\.\d ms/);

  // Mute stops it locally and is remembered.
  await page.click('#btn-sound', { force: true });
  assert.equal(await page.evaluate(() => document.getElementById('sound').muted), true);
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('edgedesk.sound')).muted), true);
  await page.close();
});

test('a browser that blocks autoplay asks once for a click, and the click starts the sound', async (t) => {
  const url = await server(t);
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  // Headless Chromium driven by Playwright lets a WebRTC stream play with sound whatever
  // --autoplay-policy says (the page counts as activated from the start), so the refusal
  // desktop browsers give a page nobody has clicked yet is reproduced: play() of an unmuted
  // element rejects with NotAllowedError until the page sees a click or a key.
  await page.addInitScript(() => {
    let active = false;
    for (const type of ['pointerdown', 'keydown']) addEventListener(type, () => { active = true; }, { capture: true });
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function () {
      if (!this.muted && !active) {
        return Promise.reject(new DOMException('play() failed because the user did not interact with the document first', 'NotAllowedError'));
      }
      return play.call(this);
    };
  });
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  await page.waitForFunction(() => !document.getElementById('sound-hint').hidden, null, { timeout: 15000 });
  assert.equal(await page.evaluate(() => window.edgedesk.sound.blocked), true);
  // The picture plays regardless (its element is muted).
  await page.waitForFunction(() => !document.getElementById('screen').paused, null, { timeout: 10000 });
  await page.mouse.click(100, 100);
  await page.waitForFunction(() => !document.getElementById('sound').paused, null, { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById('sound-hint').hidden, null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => window.edgedesk.sound.blocked), false);
  await page.close();
});

test('--audio off: no sound track, the overlay says so', async (t) => {
  const url = await server(t, ['--audio', 'off']);
  const browser = await launchChromium({ args: ['--autoplay-policy=no-user-gesture-required'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  const answer = await page.evaluate(() => window.edgedesk.pc.remoteDescription.sdp);
  assert.match(answer, /m=audio 0 /);
  await new Promise((r) => setTimeout(r, 1000));
  const s = await audioStats(page);
  assert.ok(!s || !s.packetsReceived, `no audio packets (${s?.packetsReceived})`);
  await page.close();
});
