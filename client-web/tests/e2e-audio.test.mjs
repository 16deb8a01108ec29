// tests/e2e-audio.test.mjs — the desktop's sound in headless Chromium: an app of the session
// (a shell script looping `pacat` of a generated 1 kHz tone, started with `--app`, so it
// finds the session's own PulseAudio through PULSE_SERVER) plays; the page's <audio> plays the
// Opus track; WebAudio finds the tone's frequency in what arrives and getStats sees its level.
// A browser that blocks autoplay gets the one-time "click for sound" hint, and a click starts
// the sound. Needs the binaries built. Run: cd client-web && node --test tests/e2e-audio.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, readFileSync, rmSync, chmodSync } from 'node:fs';
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

/** A page of a browser that lets sound autoplay, connected to `url`, and the host's answer. */
async function playing(t, url) {
  const browser = await launchChromium({ args: ['--autoplay-policy=no-user-gesture-required'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  const answer = await page.evaluate(() => window.edgedesk.pc.remoteDescription.sdp);
  return { page, answer };
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
  const { page, answer } = await playing(t, url);
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
  const { page, answer } = await playing(t, url);
  assert.match(answer, /m=audio 0 /);
  await new Promise((r) => setTimeout(r, 1000));
  const s = await audioStats(page);
  assert.ok(!s || !s.packetsReceived, `no audio packets (${s?.packetsReceived})`);
  await page.close();
});

/** The loudest sample (0..32767) of the last `secs` of a mono s16le recording. */
function peakOfTail(file, secs) {
  const data = readFileSync(file);
  const from = Math.max(0, data.length - Math.round(secs * 48000) * 2) & ~1;
  let peak = 0;
  for (let i = from; i + 1 < data.length; i += 2) peak = Math.max(peak, Math.abs(data.readInt16LE(i)));
  return peak;
}

test('a controlling viewer\'s microphone reaches an app recording in the session; a view-only viewer\'s does not', async (t) => {
  const rec = path.join(dir, 'rec.raw');
  const recorder = path.join(dir, 'record.sh');
  // The app records from the session's default source, as a call or a recorder would.
  writeFileSync(recorder, `#!/bin/sh\nexec parec --raw --format=s16le --rate=48000 --channels=1 --latency-msec=20 > '${rec}'\n`);
  chmodSync(recorder, 0o755);
  const s = startProcess(EDGEDESK_BIN, ['up', '--listen', '127.0.0.1:0', '--display-kind', 'xvfb', '--size', '320x240',
    '--fps', '15', '--bitrate', '500k', '--wm', '', '--app', recorder, '--audio', 'both']);
  t.after(s.kill);
  const url = (await s.waitLine((l) => l.startsWith('Open: '), 30000)).slice(6);
  const key = (await s.waitLine((l) => l.startsWith('Operator key: '), 30000)).slice('Operator key: '.length).trim();
  const base = new URL(url).origin;
  const minted = await fetch(`${base}/api/v1/sessions/default/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'view', ttl_secs: 600 }),
  }).then((r) => r.json());
  // Chromium's fake microphone: a beep, every second or so.
  const browser = await launchChromium({ args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ permissions: ['microphone'] });

  // View-only: the answer takes no microphone (no Mic button); one forced on anyway is not heard.
  const viewer = await context.newPage();
  await viewer.goto(minted.join_url);
  await waitForState(viewer, 'connected', 15000);
  assert.equal(await viewer.evaluate(() => window.edgedesk.connection.microphoneAccepted), false);
  assert.equal(await viewer.evaluate(() => document.getElementById('btn-mic').hidden), true);
  assert.match(await viewer.evaluate(() => window.edgedesk.pc.remoteDescription.sdp), /m=audio [^\r\n]*\r?\n(?:[^m][^\r\n]*\r?\n)*a=sendonly/);
  await viewer.evaluate(async () => {
    const m = await navigator.mediaDevices.getUserMedia({ audio: true });
    await window.edgedesk.connection.setMicrophone(m.getAudioTracks()[0]);
  });
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(existsSync(rec), 'the recording app runs');
  const quiet = peakOfTail(rec, 2);
  assert.ok(quiet < 300, `the view-only viewer's microphone was heard (peak ${quiet})`);

  // Controlling: Mic asks for the microphone; the app hears the beeps.
  const page = await context.newPage();
  await page.goto(url);
  await waitForState(page, 'connected', 15000);
  await page.waitForFunction(() => !document.getElementById('btn-mic').hidden, null, { timeout: 5000 });
  await page.click('#btn-mic', { force: true });
  await page.waitForFunction(() => document.getElementById('btn-mic').getAttribute('aria-pressed') === 'true', null, { timeout: 5000 });
  let peak = 0;
  const end = Date.now() + 10000;
  while (Date.now() < end && peak < 2000) {
    await new Promise((r) => setTimeout(r, 500));
    peak = peakOfTail(rec, 1.5);
  }
  assert.ok(peak >= 2000, `the app did not hear the controlling viewer's microphone (peak ${peak})`);
  // Mic off: silence again.
  await page.click('#btn-mic', { force: true });
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(peakOfTail(rec, 1.5) < 300, 'the microphone stopped');
});
