// params.js — reads what the page was opened with: the session name (?session=NAME, default
// "default") and the join token (#token=… preferred: a URL fragment never reaches the server or
// its logs; ?token=… accepted too). Pure, so node tests can call it with any URL.

/** @param {string|URL} href  @returns {{session: string, token: string, endpoint: string}} */
export function readLaunchParams(href) {
  const url = new URL(href);
  const fragment = new URLSearchParams(url.hash.replace(/^#/, ''));
  const session = url.searchParams.get('session')?.trim() || 'default';
  const token = fragment.get('token') ?? url.searchParams.get('token') ?? '';
  // Relative to the page, so the client also works when mounted under a path prefix.
  const endpoint = new URL(`whep/${encodeURIComponent(session)}`, new URL('./', url)).href;
  return { session, token: token.trim(), endpoint };
}
