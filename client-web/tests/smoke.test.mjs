// tests/smoke.test.mjs — the client in headless Chromium against a fake WHEP endpoint that
// refuses: 401 must stop for good with "Token refused"; 503 + Retry-After must be honoured.
// Run: cd client-web && node --test tests/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, openClient, waitForState, watchPage, serveClientWeb } from './lib.mjs';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** A fake WHEP endpoint: records each POST and answers with `respond(n)` (n = 1, 2, …). */
function fakeWhep(respond) {
  const posts = [];
  const handler = (req, res, body) => {
    if (req.method !== 'POST' || !req.url.startsWith('/whep/')) {
      res.writeHead(404).end();
      return;
    }
    posts.push({ at: Date.now(), url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], sdp: body.toString() });
    const { status, headers = {} } = respond(posts.length);
    res.writeHead(status, { 'Content-Type': 'text/plain', ...headers }).end(`status ${status}`);
  };
  return { posts, handler };
}

test('401: loads cleanly, offers correctly, shows "Token refused" and does not retry', async (t) => {
  const whep = fakeWhep(() => ({ status: 401 }));
  const server = await serveClientWeb(whep.handler);
  t.after(server.close);
  const page = await browser.newPage();
  t.after(() => page.close());
  const watched = watchPage(page);

  await openClient(page, server.baseUrl, 'demo', 'bad-token');
  await waitForState(page, 'failed', 5000);

  // The offer: right endpoint, bearer token, SDP with recvonly video + audio and the data channel.
  assert.equal(whep.posts.length, 1);
  const [post] = whep.posts;
  assert.equal(post.url, '/whep/demo');
  assert.equal(post.auth, 'Bearer bad-token');
  assert.equal(post.type, 'application/sdp');
  assert.match(post.sdp, /^v=0/);
  assert.match(post.sdp, /m=video [\s\S]*a=recvonly/);
  assert.match(post.sdp, /m=audio /);
  assert.match(post.sdp, /m=application .* webrtc-datachannel/);
  // The browser's own codec list, unreordered: the host picks by its --codecs order.
  for (const name of ['H264', 'VP8', 'VP9', 'AV1']) {
    assert.match(post.sdp, new RegExp(`a=rtpmap:\\d+ ${name}/90000`), `${name} is offered`);
  }
  const firstVideoCodec = /m=video \d+ \S+ (\d+)/.exec(post.sdp)[1];
  assert.match(post.sdp, new RegExp(`a=rtpmap:${firstVideoCodec} VP8/90000`), 'Chromium\'s own order (VP8 first) is kept');

  const shown = await page.evaluate(() => ({
    state: window.edgedesk.state,
    reason: window.edgedesk.reason,
    indicator: document.getElementById('state-text').textContent,
    notice: document.getElementById('notice').innerText,
    pc: window.edgedesk.pc,
  }));
  assert.equal(shown.state, 'failed');
  assert.equal(shown.reason, 'Token refused');
  assert.match(shown.indicator, /token refused/i);
  assert.match(shown.notice, /token refused/i);
  assert.equal(shown.pc, null, 'the failed peer connection is closed');

  // The stats overlay toggles from its shortcut.
  assert.equal(await page.locator('#stats').isVisible(), false);
  await page.keyboard.press('Control+Alt+Shift+KeyS');
  assert.equal(await page.locator('#stats').isVisible(), true);

  await page.waitForTimeout(2500); // longer than the first backoff steps
  assert.equal(whep.posts.length, 1, 'no retry after 401');
  assert.equal(await page.evaluate(() => window.edgedesk.reconnectCount), 0);

  assert.deepEqual(watched.errors, []);
  const foreign = watched.requests.filter((u) => !u.startsWith(server.baseUrl) && !u.startsWith('data:'));
  assert.deepEqual(foreign, [], 'no request leaves the server');
});

test('503 with Retry-After: 1 → "Session full", retried after about a second', async (t) => {
  const whep = fakeWhep((n) => (n === 1 ? { status: 503, headers: { 'Retry-After': '1' } } : { status: 401 }));
  const server = await serveClientWeb(whep.handler);
  t.after(server.close);
  const page = await browser.newPage();
  t.after(() => page.close());
  const watched = watchPage(page);

  await openClient(page, server.baseUrl, 'full', 'tok');
  await waitForState(page, 'reconnecting', 5000);
  const waiting = await page.evaluate(() => ({ reason: window.edgedesk.reason, notice: document.getElementById('notice').innerText }));
  assert.equal(waiting.reason, 'Session full');
  assert.match(waiting.notice, /Retrying in 1 s/);

  await waitForState(page, 'failed', 5000); // the second answer is 401
  assert.equal(whep.posts.length, 2);
  const gap = whep.posts[1].at - whep.posts[0].at;
  assert.ok(gap >= 950 && gap <= 2000, `second POST ${gap} ms after the first, expected ≈ 1000 ms`);
  assert.equal(await page.evaluate(() => window.edgedesk.reconnectCount), 1);
  assert.deepEqual(watched.errors, []);
});
