// params.js — reads what the page was opened with: the session name (?session=NAME, default
// "default") and the join token (#token=… preferred: a URL fragment never reaches the server or
// its logs; ?token=… accepted too). Pure, so node tests can call it with any URL.

/** Video codecs `?codec=` may name. */
export const CODECS = ['h264', 'vp8', 'vp9', 'av1', 'h265'];

/**
 * @param {string|URL} href
 * @returns {{session: string, token: string, endpoint: string, codec: string|null, relay: boolean}}
 *   codec: `?codec=` when it names one of CODECS (offer only that one), else null;
 *   relay: `?relay=1` — connect only through the server's TURN relay (a network that blocks
 *   direct UDP, or to test the relay)
 */
export function readLaunchParams(href) {
  const url = new URL(href);
  const fragment = new URLSearchParams(url.hash.replace(/^#/, ''));
  const session = url.searchParams.get('session')?.trim() || 'default';
  const token = fragment.get('token') ?? url.searchParams.get('token') ?? '';
  // Relative to the page, so the client also works when mounted under a path prefix.
  const endpoint = new URL(`whep/${encodeURIComponent(session)}`, new URL('./', url)).href;
  const asked = url.searchParams.get('codec')?.trim().toLowerCase() ?? '';
  const codec = CODECS.includes(asked) ? asked : null;
  const relay = ['1', 'true', 'yes'].includes(url.searchParams.get('relay')?.trim().toLowerCase() ?? '');
  return { session, token: token.trim(), endpoint, codec, relay };
}
