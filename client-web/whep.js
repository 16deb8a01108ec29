// whep.js — the HTTP half of WHEP (WebRTC-HTTP Egress Protocol, IETF draft; WHIP = RFC 9725).
//
//   POST   {endpoint}  application/sdp offer          → 201 + Location + ETag + Link + answer
//   PATCH  {resource}  application/trickle-ice-sdpfrag (If-Match: ETag)   — late ICE candidates
//   DELETE {resource}                                 — leave
//
// No WebRTC objects here: callers pass SDP strings in and get SDP strings back, so the parsing
// helpers (Link, Retry-After, sdpfrag) run under plain node in the unit tests. Every failure of
// POST is thrown as a WhepError whose `kind` the reconnect policy (reconnect.js) understands.

/** Error from a WHEP request. `kind` is one of:
 *  'unauthorized' (401/403), 'not-found' (404), 'busy' (503), 'bad-request' (400),
 *  'unsupported' (415), 'server' (other 5xx), 'network' (no HTTP answer),
 *  'protocol' (an answer we cannot use: unexpected status, no Location, empty SDP). */
export class WhepError extends Error {
  constructor(kind, message, { status = 0, retryAfterMs = null, body = '' } = {}) {
    super(message);
    this.name = 'WhepError';
    this.kind = kind;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
    this.body = body;
  }
}

const KIND_BY_STATUS = { 400: 'bad-request', 401: 'unauthorized', 403: 'unauthorized', 404: 'not-found', 415: 'unsupported', 503: 'busy' };

/** Maps an HTTP status that is not 201 to a WhepError kind. */
export function kindForStatus(status) {
  return KIND_BY_STATUS[status] ?? (status >= 500 ? 'server' : 'protocol');
}

function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * POSTs an offer. Resolves to { resourceUrl, etag, answerSdp, iceServers }.
 * `resourceUrl` is absolute (Location resolved against the final URL, so a 307 redirect to
 * another node works: fetch follows it and keeps the body).
 */
export async function whepPost(endpoint, token, offerSdp, { timeoutMs = 10000, fetchImpl = fetch } = {}) {
  let res;
  try {
    res = await fetchImpl(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', ...authHeaders(token) },
      body: offerSdp,
      signal: AbortSignal.timeout(timeoutMs),
      cache: 'no-store',
    });
  } catch (err) {
    throw new WhepError('network', `server unreachable (${err.name === 'TimeoutError' ? 'timed out' : err.message})`);
  }
  const body = await res.text().catch(() => '');
  if (res.status !== 201) {
    const retryAfterMs = parseRetryAfter(res.headers.get('Retry-After'), Date.now());
    throw new WhepError(kindForStatus(res.status), `HTTP ${res.status}`, { status: res.status, retryAfterMs, body: body.replace(/\s+/g, ' ').trim().slice(0, 200) });
  }
  const location = res.headers.get('Location');
  if (!location) throw new WhepError('protocol', 'answer without a Location header', { status: 201 });
  if (!body.startsWith('v=')) throw new WhepError('protocol', 'answer body is not SDP', { status: 201 });
  return {
    resourceUrl: new URL(location, res.url || endpoint).href,
    etag: res.headers.get('ETag'),
    answerSdp: body,
    iceServers: parseLinkIceServers(res.headers.get('Link')),
  };
}

/**
 * Asks the endpoint for its ICE servers (OPTIONS with the token: TURN credentials are only
 * given to an authorised request). Best effort: [] when the server is slow, down or has none.
 */
export async function whepOptions(endpoint, token, { timeoutMs = 1000, fetchImpl = fetch } = {}) {
  try {
    const res = await fetchImpl(endpoint, {
      method: 'OPTIONS',
      headers: authHeaders(token),
      signal: AbortSignal.timeout(timeoutMs),
      cache: 'no-store',
    });
    return res.ok ? parseLinkIceServers(res.headers.get('Link')) : [];
  } catch {
    return [];
  }
}

/** Sends late ICE candidates. Best effort: resolves to true on 2xx, false otherwise (a server
 *  without trickle answers 405/501 and still connects through the candidates in the offer). */
export async function whepPatch(resourceUrl, token, etag, sdpfrag, { fetchImpl = fetch } = {}) {
  try {
    const res = await fetchImpl(resourceUrl, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...(etag ? { 'If-Match': etag } : {}), ...authHeaders(token) },
      body: sdpfrag,
      cache: 'no-store',
    });
    return res.ok;
  } catch {
    return false;
  }
}

/** Leaves. Best effort and fire-and-forget; `keepalive` lets it outlive a closing page. */
export function whepDelete(resourceUrl, token, { fetchImpl = fetch } = {}) {
  return fetchImpl(resourceUrl, { method: 'DELETE', headers: authHeaders(token), keepalive: true, cache: 'no-store' })
    .then((res) => res.ok, () => false);
}

/**
 * Parses `Link` header(s) into RTCIceServer objects. fetch joins repeated headers with ", ".
 *   <stun:stun.example.net>; rel="ice-server"
 *   <turn:turn.example.net?transport=udp>; rel="ice-server"; username="u"; credential="p"; credential-type="password"
 * Links with another rel are ignored.
 */
export function parseLinkIceServers(header) {
  if (!header) return [];
  const servers = [];
  for (const [, url, paramText] of header.matchAll(/<([^>]*)>([^<]*)/g)) {
    const params = {};
    for (const [, key, quoted, bare] of paramText.matchAll(/;\s*([A-Za-z0-9_-]+)\s*(?:=\s*(?:"([^"]*)"|([^;,\s]*)))?/g)) {
      params[key.toLowerCase()] = quoted ?? bare ?? '';
    }
    if (!(params.rel ?? '').split(/\s+/).includes('ice-server')) continue;
    if (!/^(stun|stuns|turn|turns):/i.test(url)) continue;
    const server = { urls: url };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

/** Retry-After as milliseconds from `nowMs`: delta-seconds or an HTTP-date; null if absent/bad. */
export function parseRetryAfter(value, nowMs) {
  if (value == null) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/**
 * Builds an RFC 8840 SDP fragment for PATCH from the local description: ICE credentials, the
 * first (bundle-tagged) media section's m= line and mid, the candidates, end-of-candidates.
 * `candidates` are RTCIceCandidate.candidate strings ("candidate:…").
 */
export function buildSdpFragment(localSdp, candidates, { endOfCandidates = true } = {}) {
  const lines = localSdp.split(/\r?\n/);
  const firstM = lines.findIndex((l) => l.startsWith('m='));
  const section = firstM < 0 ? [] : lines.slice(firstM + 1, nextMediaIndex(lines, firstM + 1));
  const pick = (prefix) => section.find((l) => l.startsWith(prefix)) ?? lines.find((l) => l.startsWith(prefix));
  const out = [pick('a=ice-ufrag:'), pick('a=ice-pwd:')];
  if (firstM >= 0) out.push(lines[firstM], pick('a=mid:'));
  for (const c of candidates) out.push(`a=${c}`);
  if (endOfCandidates) out.push('a=end-of-candidates');
  return out.filter(Boolean).join('\r\n') + '\r\n';
}

function nextMediaIndex(lines, from) {
  const i = lines.findIndex((l, idx) => idx >= from && l.startsWith('m='));
  return i < 0 ? lines.length : i;
}
