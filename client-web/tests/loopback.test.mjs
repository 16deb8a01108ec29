// tests/loopback.test.mjs — the whole client over real WebRTC, with a second headless Chromium
// standing in for the edgedesk server: the fake WHEP endpoint hands each offer to a "sender"
// page that answers with a canvas stream (left half red, right half green) and keeps the data
// channel. Checks frames, pixels, stats, the input channel, DELETE and reconnect.
//
// Only the sender runs with --disable-features=WebRtcHideLocalIpsWithMdns (like a server, it
// offers a real host candidate); the client runs with Chromium's defaults (.local candidates),
// so ICE must come up through a peer-reflexive candidate, exactly as against the Rust server.
//
// The WHEP answers advertise a STUN server (Link: rel="ice-server") run by this test that answers
// late (400 ms) with a made-up public address: the client uses it from its second attempt on, so
// the reconnect's server-reflexive candidate misses the offer (sent with the first host
// candidate, at most 50 ms after gathering starts) and must arrive by
// PATCH (trickle-ice-sdpfrag). Chromium stops gathering once ICE connects, so the answer is held
// back long enough (≥ 300 ms + the sender's own gathering) for the candidate to come first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import {
  launchChromium, openClient, waitForState, waitForFrames, readVideoPixel, readVideoSize, watchPage, serveClientWeb,
} from './lib.mjs';

const SENDER_HTML = `<!doctype html><meta charset="utf-8"><title>sender</title><script>
window.peers = [];
window.received = [];
window.answer = async (offerSdp) => {
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 360;
  const ctx = canvas.getContext('2d');
  const draw = () => {
    ctx.fillStyle = 'rgb(220,30,30)'; ctx.fillRect(0, 0, 320, 360);
    ctx.fillStyle = 'rgb(30,200,60)'; ctx.fillRect(320, 0, 320, 360);
    ctx.fillStyle = 'rgb(' + (Date.now() % 256) + ',0,0)'; ctx.fillRect(0, 0, 8, 8); // keep frames coming
  };
  draw();
  setInterval(draw, 33);
  const stream = canvas.captureStream(30);
  const pc = new RTCPeerConnection();
  pc.ondatachannel = (ev) => { ev.channel.onmessage = (m) => window.received.push(String(m.data)); };
  await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
  pc.addTrack(stream.getVideoTracks()[0], stream);
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
    setTimeout(resolve, 2000);
  });
  window.peers.push(pc);
  return pc.localDescription.sdp;
};
</script>`;

let clientBrowser;
let senderBrowser;
let sender;
let server;
let stun;
const log = []; // { method, url, at, headers, body }

/** A STUN server (RFC 5389 Binding only) that answers after `delayMs` with a fixed mapped address. */
async function startSlowStun(delayMs, mapped = { ip: '198.51.100.7', port: 40000 }) {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001 || msg.readUInt32BE(4) !== 0x2112a442) return;
    const res = Buffer.alloc(32);
    res.writeUInt16BE(0x0101, 0); // Binding success
    res.writeUInt16BE(12, 2); // attributes length
    msg.copy(res, 4, 4, 20); // magic cookie + transaction id
    res.writeUInt16BE(0x0020, 20); // XOR-MAPPED-ADDRESS
    res.writeUInt16BE(8, 22);
    res.writeUInt16BE(0x0001, 24); // IPv4
    res.writeUInt16BE(mapped.port ^ 0x2112, 26);
    const ip = mapped.ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
    res.writeUInt32BE((ip ^ 0x2112a442) >>> 0, 28);
    setTimeout(() => socket.send(res, rinfo.port, rinfo.address), delayMs);
  });
  await new Promise((resolve) => socket.bind(0, '0.0.0.0', resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

before(async () => {
  clientBrowser = await launchChromium();
  senderBrowser = await launchChromium({ args: ['--disable-features=WebRtcHideLocalIpsWithMdns'] });
  let viewers = 0;
  stun = await startSlowStun(400);
  server = await serveClientWeb(async (req, res, body) => {
    log.push({ method: req.method, url: req.url, at: Date.now(), headers: req.headers, body: body.toString() });
    if (req.url === '/test/sender.html') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(SENDER_HTML);
    } else if (req.method === 'POST' && req.url === '/whep/loop') {
      const answer = await sender.evaluate((offer) => window.answer(offer), body.toString());
      await new Promise((r) => setTimeout(r, 300)); // a server takes a moment; see the STUN note above
      viewers += 1;
      res.writeHead(201, {
        'Content-Type': 'application/sdp',
        Location: `/whep/loop/viewer-${viewers}`,
        ETag: `"v${viewers}"`,
        Link: `<stun:127.0.0.1:${stun.port}>; rel="ice-server"`,
      }).end(answer);
    } else if (req.method === 'DELETE' || req.method === 'PATCH') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  sender = await senderBrowser.newPage();
  await sender.goto(`${server.baseUrl}/test/sender.html`);
});

after(async () => {
  await clientBrowser?.close();
  await senderBrowser?.close();
  await server?.close();
  stun?.close();
});

test('plays the stream, reports stats, opens "input", reconnects when the server drops it', async (t) => {
  const page = await clientBrowser.newPage({ viewport: { width: 1280, height: 720 } });
  t.after(() => page.close());
  const watched = watchPage(page);

  await openClient(page, server.baseUrl, 'loop', 'tok');
  await waitForState(page, 'connected', 10000);
  await waitForFrames(page, 20, 10000);

  assert.deepEqual(await readVideoSize(page), [640, 360]);
  await page.waitForFunction(() => document.getElementById('notice').hidden, null, { timeout: 2000 });
  const [left, right] = [await readVideoPixel(page, 160, 180), await readVideoPixel(page, 480, 180)];
  assert.ok(left[0] > 170 && left[1] < 80 && left[2] < 80, `left half is red, got ${left}`);
  assert.ok(right[1] > 150 && right[0] < 90 && right[2] < 110, `right half is green, got ${right}`);

  // Low-latency receive settings and the codec preference took.
  const receiver = await page.evaluate(() => {
    const r = window.edgedesk.pc.getReceivers().find((x) => x.track.kind === 'video');
    return { target: r.jitterBufferTarget };
  });
  assert.equal(receiver.target, 0);

  // Stats: deltas need two samples.
  await page.evaluate(() => window.edgedesk.stats());
  await page.waitForTimeout(1100);
  const s = await page.evaluate(() => window.edgedesk.stats());
  assert.equal(s.width, 640);
  assert.ok(s.fps > 5, `fps ${s.fps}`);
  assert.ok(s.bitrateKbps > 0, `bitrate ${s.bitrateKbps}`);
  assert.ok(s.rttMs != null && s.rttMs >= 0, `rtt ${s.rttMs}`);
  assert.ok(s.decodeMs != null, 'decode time per frame');
  assert.ok(s.codec, 'codec');
  assert.match(s.path, /prflx|host/);

  // The input channel is open and reaches the server side.
  await page.evaluate(() => window.edgedesk.inputChannel.send('hello'));
  await sender.waitForFunction(() => window.received.includes('hello'), null, { timeout: 3000 });

  // Overlay with real figures, for a look: /tmp/edgedesk-connected.png
  await page.keyboard.press('Control+Alt+Shift+KeyS');
  await page.waitForTimeout(1200);
  const overlay = await page.locator('#stats').innerText();
  assert.match(overlay, /640×360/);
  await page.screenshot({ path: '/tmp/edgedesk-connected.png' });

  // The server drops the viewer: the client must DELETE the old resource and come back.
  const postsBefore = log.filter((e) => e.method === 'POST').length;
  await sender.evaluate(() => window.peers.at(-1).close());
  await waitForState(page, 'reconnecting', 5000);
  await waitForState(page, 'connected', 10000);
  await waitForFrames(page, 10, 10000);
  assert.equal(log.filter((e) => e.method === 'POST').length, postsBefore + 1);
  assert.ok(log.some((e) => e.method === 'DELETE' && e.url === '/whep/loop/viewer-1'), 'old resource deleted');
  assert.equal(await page.evaluate(() => window.edgedesk.reconnectCount), 1);
  assert.ok(await page.evaluate(() => window.edgedesk.inputChannel?.readyState === 'open'));
  await page.waitForFunction(() => document.getElementById('notice').hidden, null, { timeout: 2000 });

  // The second attempt used the STUN server from the Link header; its late candidate was trickled.
  // (The first attempt may PATCH too: the offer goes out with the first host candidate, the
  // rest follows.)
  const patch = log.find((e) => e.method === 'PATCH' && e.url === '/whep/loop/viewer-2');
  assert.ok(patch, 'late candidates sent by PATCH');
  assert.equal(patch.headers['content-type'], 'application/trickle-ice-sdpfrag');
  assert.equal(patch.headers['if-match'], '"v2"');
  assert.equal(patch.headers.authorization, 'Bearer tok');
  assert.match(patch.body, /^a=ice-ufrag:/);
  assert.match(patch.body, /a=candidate:.* 198\.51\.100\.7 40000 typ srflx/);
  assert.match(patch.body, /a=end-of-candidates\r\n$/);

  // Leaving the page deletes the current resource.
  await page.goto('about:blank');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(log.some((e) => e.method === 'DELETE' && e.url === '/whep/loop/viewer-2'), 'resource deleted on leave');
  assert.deepEqual(watched.errors, []);
});
