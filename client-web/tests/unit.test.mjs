// tests/unit.test.mjs — the pure parts of the client under plain node (no browser): WHEP header
// parsing and error mapping, the reconnect policy, stats arithmetic, launch parameters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { whepPost, whepOptions, parseLinkIceServers, parseRetryAfter, buildSdpFragment, kindForStatus } from '../whep.js';
import { planRetry, backoffDelay } from '../reconnect.js';
import { summarize, formatRows } from '../stats.js';
import { loadSoundPrefs } from '../audio.js';
import { readLaunchParams } from '../params.js';
import { clientShortcut } from '../shortcuts.js';

test('Link ice-server headers', () => {
  const header = '<stun:stun.example.net>; rel="ice-server", '
    + '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="u:1"; credential="p;w"; credential-type="password", '
    + '<https://example.net/x>; rel="next"';
  assert.deepEqual(parseLinkIceServers(header), [
    { urls: 'stun:stun.example.net' },
    { urls: 'turn:turn.example.net?transport=udp', username: 'u:1', credential: 'p;w' },
  ]);
  assert.deepEqual(parseLinkIceServers(null), []);
  assert.deepEqual(parseLinkIceServers('<stun:a>; rel=ice-server'), [{ urls: 'stun:a' }]);
});

test('Retry-After: seconds, HTTP-date, garbage', () => {
  assert.equal(parseRetryAfter('1', 0), 1000);
  assert.equal(parseRetryAfter(' 0 ', 0), 0);
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

test('trickle sdpfrag from the local description', () => {
  const sdp = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1 2',
    'm=video 9 UDP/TLS/RTP/SAVPF 102', 'a=ice-ufrag:abcd', 'a=ice-pwd:secretsecretsecret', 'a=mid:0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=ice-ufrag:abcd', 'a=mid:1', ''].join('\r\n');
  const frag = buildSdpFragment(sdp, ['candidate:1 1 udp 1 198.51.100.7 5000 typ srflx raddr 0.0.0.0 rport 0']);
  assert.equal(frag, ['a=ice-ufrag:abcd', 'a=ice-pwd:secretsecretsecret', 'm=video 9 UDP/TLS/RTP/SAVPF 102', 'a=mid:0',
    'a=candidate:1 1 udp 1 198.51.100.7 5000 typ srflx raddr 0.0.0.0 rport 0', 'a=end-of-candidates', ''].join('\r\n'));
});

test('whepPost maps answers to results and errors', async () => {
  const fake = (status, headers, body, url = 'http://h/whep/s') => async () => ({
    status, url, headers: new Headers(headers), text: async () => body,
  });
  const ok = await whepPost('http://h/whep/s', 't', 'v=0', {
    fetchImpl: fake(201, { Location: '/whep/s/v1', ETag: '"e1"', Link: '<stun:x>; rel="ice-server"' }, 'v=0\r\n'),
  });
  assert.deepEqual(ok, { resourceUrl: 'http://h/whep/s/v1', etag: '"e1"', answerSdp: 'v=0\r\n', iceServers: [{ urls: 'stun:x' }] });

  const reject = (status, headers = {}, body = '') => whepPost('http://h/whep/s', 't', 'v=0', { fetchImpl: fake(status, headers, body) });
  await assert.rejects(reject(503, { 'Retry-After': '2' }), { kind: 'busy', status: 503, retryAfterMs: 2000 });
  await assert.rejects(reject(401), { kind: 'unauthorized' });
  await assert.rejects(reject(415, {}, '  wrong\n type '), { kind: 'unsupported', body: 'wrong type' });
  await assert.rejects(reject(201, {}, 'v=0'), { kind: 'protocol' });
  await assert.rejects(reject(201, { Location: '/x' }, '<html>'), { kind: 'protocol' });
  await assert.rejects(
    whepPost('http://h/whep/s', 't', 'v=0', { fetchImpl: async () => { throw new TypeError('Failed to fetch'); } }),
    { kind: 'network' },
  );
  assert.deepEqual([400, 401, 403, 404, 415, 500, 502, 503, 302].map(kindForStatus),
    ['bad-request', 'unauthorized', 'unauthorized', 'not-found', 'unsupported', 'server', 'server', 'busy', 'protocol']);
});

test('whepOptions asks with the token and is best effort', async () => {
  let asked;
  const servers = await whepOptions('http://h/whep/s', 'tok', {
    fetchImpl: async (url, init) => {
      asked = { url, method: init.method, auth: init.headers.Authorization };
      return { ok: true, headers: new Headers({ Link: '<turn:t:3478>; rel="ice-server"; username="1:u"; credential="c"; credential-type="password"' }) };
    },
  });
  assert.deepEqual(asked, { url: 'http://h/whep/s', method: 'OPTIONS', auth: 'Bearer tok' });
  assert.deepEqual(servers, [{ urls: 'turn:t:3478', username: '1:u', credential: 'c' }]);
  assert.deepEqual(await whepOptions('http://h/whep/s', 't', { fetchImpl: async () => { throw new TypeError('down'); } }), []);
  assert.deepEqual(await whepOptions('http://h/whep/s', 't', { fetchImpl: async () => ({ ok: false, headers: new Headers() }) }), []);
});

test('reconnect policy', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(backoffDelay), [500, 1000, 2000, 4000, 5000, 5000, 5000]);
  assert.equal(planRetry({ kind: 'unauthorized', status: 401 }, 0).retry, false);
  assert.equal(planRetry({ kind: 'unauthorized', status: 401 }, 0).reason, 'Token refused');
  assert.match(planRetry({ kind: 'unauthorized' }, 0, { hasToken: false }).detail, /no join token/);
  assert.equal(planRetry({ kind: 'bad-request', status: 400 }, 0).retry, false);
  assert.equal(planRetry({ kind: 'unsupported', status: 415 }, 0).retry, false);
  assert.deepEqual(pick(planRetry({ kind: 'busy', status: 503, retryAfterMs: 1000 }, 3)), [true, 1000, 'Session full']);
  assert.deepEqual(pick(planRetry({ kind: 'busy', status: 503, retryAfterMs: 0 }, 0)), [true, 500, 'Session full']);
  assert.deepEqual(pick(planRetry({ kind: 'busy', status: 503, retryAfterMs: 3600e3 }, 0)), [true, 60000, 'Session full']);
  assert.deepEqual(pick(planRetry({ kind: 'busy', status: 503, retryAfterMs: null }, 2)), [true, 2000, 'Session full']);
  assert.deepEqual(pick(planRetry({ kind: 'not-found', status: 404 }, 1)), [true, 1000, 'Session not found']);
  assert.deepEqual(pick(planRetry({ kind: 'network', message: 'x' }, 9)), [true, 5000, 'Server unreachable']);
  assert.deepEqual(pick(planRetry({ kind: 'lost', message: 'x' }, 0)), [true, 500, 'Connection lost']);
});
const pick = (p) => [p.retry, p.delayMs, p.reason];

test('stats summary: deltas between two reports', () => {
  const report = (t, frames, bytes, decode, jb, emitted) => new Map(Object.entries({
    T: { id: 'T', type: 'transport', selectedCandidatePairId: 'P' },
    P: { id: 'P', type: 'candidate-pair', currentRoundTripTime: 0.012, localCandidateId: 'L', remoteCandidateId: 'R' },
    L: { id: 'L', type: 'local-candidate', candidateType: 'host', protocol: 'udp' },
    R: { id: 'R', type: 'remote-candidate', candidateType: 'prflx' },
    C: { id: 'C', type: 'codec', mimeType: 'video/H264', sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' },
    V: { id: 'V', type: 'inbound-rtp', kind: 'video', timestamp: t, codecId: 'C', framesDecoded: frames, bytesReceived: bytes,
      totalDecodeTime: decode, jitterBufferDelay: jb, jitterBufferEmittedCount: emitted, frameWidth: 1920, frameHeight: 1080,
      packetsLost: 3, packetsReceived: 997, framesDropped: 1, freezeCount: 2, totalFreezesDuration: 0.75 },
  }));
  const first = summarize(report(1000, 100, 1e6, 0.2, 1.0, 100));
  assert.equal(first.bitrateKbps, null);
  assert.equal(first.decodeMs, null);
  const s = summarize(report(2000, 160, 1.5e6, 0.26, 1.3, 160), first.raw);
  assert.equal(s.fps, 60);
  assert.equal(s.bitrateKbps, 4000);
  assert.ok(Math.abs(s.decodeMs - 1) < 1e-9);
  assert.ok(Math.abs(s.jitterBufferMs - 5) < 1e-9);
  assert.equal(s.rttMs, 12);
  assert.equal(s.codec, 'H264 42e01f');
  assert.equal(s.path, 'udp host → prflx');
  assert.deepEqual(formatRows(s).find(([k]) => k === 'Bitrate'), ['Bitrate', '4.00 Mbit/s']);
  assert.deepEqual(formatRows(s).find(([k]) => k === 'Packets lost'), ['Packets lost', '3 of 1000']);
  assert.deepEqual(formatRows(s).find(([k]) => k === 'Freezes'), ['Freezes', '2 (0.8 s)']);
  // The host's estimate and encoder bitrate, once its linkStats arrive.
  assert.equal(formatRows(s).find(([k]) => k === 'Estimate / encoder'), undefined);
  s.link = { estimateBps: 2_500_000, encoderBps: 0 };
  assert.deepEqual(formatRows(s).find(([k]) => k === 'Estimate / encoder'), ['Estimate / encoder', '2.50 Mbit/s / –']);
  assert.equal(summarize(new Map()).fps, null); // before any media
});

test('stats summary: the sound stream (level, jitter, buffer, loss)', () => {
  const report = (t, bytes, jb, emitted, level) => new Map(Object.entries({
    V: { id: 'V', type: 'inbound-rtp', kind: 'video', timestamp: t, framesDecoded: 1, bytesReceived: 1 },
    A: { id: 'A', type: 'inbound-rtp', kind: 'audio', timestamp: t, bytesReceived: bytes, packetsReceived: 98, packetsLost: 2,
      jitter: 0.0035, jitterBufferDelay: jb, jitterBufferEmittedCount: emitted, audioLevel: level,
      totalSamplesReceived: 96000, concealedSamples: 960 },
  }));
  const first = summarize(report(1000, 10000, 10, 480000, 0.1));
  assert.equal(first.audio.bitrateKbps, null);
  const s = summarize(report(2000, 14000, 4810, 528000, 0.1), first.raw);
  assert.equal(s.audio.bitrateKbps, 32);
  assert.ok(Math.abs(s.audio.jitterBufferMs - 100) < 1e-6);
  assert.ok(Math.abs(s.audio.levelDb + 20) < 1e-9);
  assert.equal(s.audio.jitterMs, 3.5);
  const rows = formatRows(s);
  assert.deepEqual(rows.find(([k]) => k === 'Sound'), ['Sound', '-20 dBFS, 32 kbit/s']);
  assert.deepEqual(rows.find(([k]) => k === 'Sound jitter'), ['Sound jitter', '3.5 ms (buffer 100 ms)']);
  assert.deepEqual(rows.find(([k]) => k === 'Sound lost'), ['Sound lost', '2 of 100, 1.0 % concealed']);
  assert.equal(formatRows(summarize(report(3000, 1, 1, 1, 0))).find(([k]) => k === 'Sound')[1], 'silent, –');
  // No audio stream (the host sends none): one row says so.
  assert.deepEqual(formatRows(summarize(new Map())).find(([k]) => k === 'Sound'), ['Sound', 'none']);
});

test('sound preferences: saved values, clamped, defaults for junk', () => {
  const store = (v) => ({ getItem: () => v });
  assert.deepEqual(loadSoundPrefs(null), { muted: false, volume: 1 });
  assert.deepEqual(loadSoundPrefs(store('{"muted":true,"volume":0.25}')), { muted: true, volume: 0.25 });
  assert.deepEqual(loadSoundPrefs(store('{"volume":7}')), { muted: false, volume: 1 });
  assert.deepEqual(loadSoundPrefs(store('not json')), { muted: false, volume: 1 });
  assert.deepEqual(loadSoundPrefs(store('null')), { muted: false, volume: 1 });
});

test('launch parameters: session, token from fragment or query, endpoint', () => {
  assert.deepEqual(readLaunchParams('http://h:8080/?session=my%20desk#token=abc.def'),
    { session: 'my desk', token: 'abc.def', endpoint: 'http://h:8080/whep/my%20desk', codec: null, relay: false });
  assert.deepEqual(readLaunchParams('http://h/'), { session: 'default', token: '', endpoint: 'http://h/whep/default', codec: null, relay: false });
  assert.equal(readLaunchParams('http://h/?relay=1').relay, true);
  assert.equal(readLaunchParams('http://h/?relay=0').relay, false);
  assert.equal(readLaunchParams('http://h/?codec=VP9').codec, 'vp9');
  assert.equal(readLaunchParams('http://h/?codec=theora').codec, null);
  assert.equal(readLaunchParams('http://h/?token=q#token=f').token, 'f');
  assert.equal(readLaunchParams('http://h/?token=q').token, 'q');
  assert.equal(readLaunchParams('http://h/desk/index.html?session=a').endpoint, 'http://h/desk/whep/a');
});

test('client shortcuts are Ctrl+Alt+Shift chords only', () => {
  const key = (code, mods = {}) => ({ code, ctrlKey: true, altKey: true, shiftKey: true, metaKey: false, ...mods });
  assert.equal(clientShortcut(key('KeyS')), 'stats');
  assert.equal(clientShortcut(key('KeyF')), 'fullscreen');
  assert.equal(clientShortcut(key('KeyS', { shiftKey: false })), null);
  assert.equal(clientShortcut(key('KeyS', { metaKey: true })), null);
  assert.equal(clientShortcut(key('KeyQ')), null);
  assert.equal(clientShortcut(key('toString')), null);
});

test('index.html preloads exactly the modules app.js imports, directly or not', async () => {
  const { readFileSync } = await import('node:fs');
  const dir = new URL('../', import.meta.url);
  const graph = new Set();
  const visit = (file) => {
    if (graph.has(file)) return;
    graph.add(file);
    const src = readFileSync(new URL(file, dir), 'utf8');
    for (const m of src.matchAll(/^import\s[^'"]*['"]\.\/([\w.-]+\.js)['"]/gm)) visit(m[1]);
  };
  visit('app.js');
  const html = readFileSync(new URL('index.html', dir), 'utf8');
  const preloaded = new Set([...html.matchAll(/<link rel="modulepreload" href="([\w.-]+\.js)">/g)].map((m) => m[1]));
  assert.deepEqual([...preloaded].sort(), [...graph].sort());
});

test('glass-to-glass: RTP timestamps to capture times, clock offsets, medians', async () => {
  const { captureUnixMs, clockOffset, median } = await import('../latency.js');
  const clock = { rtpTimestamp: 4294967000, unixMs: 1000 };
  assert.equal(captureUnixMs(clock, 4294967000), 1000);
  assert.equal(captureUnixMs(clock, 4294967000 + 900), 1010); // no wrap
  assert.equal(captureUnixMs(clock, (4294967000 + 9000) >>> 0), 1100); // across the wrap
  assert.equal(captureUnixMs(clock, 4294967000 - 90), 999); // a frame before the anchor
  assert.deepEqual(clockOffset(100, 110, 5105), { offset: 5000, rtt: 10 });
  assert.equal(median([]), null);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});
