// reconnect.js — the reconnect policy, as pure functions (no timers, no I/O) so it is unit-tested
// under node. Given why an attempt failed and how many attempts have failed in a row, it says
// whether to try again, after how long, and what to tell the user.
//
//   backoff: 0.5 s, 1 s, 2 s, 4 s, then 5 s for ever (reset once a connection is up)
//   401/403           → give up: "Token refused" (a new token is needed, retrying cannot help)
//   400/415/protocol  → give up: the server and this client disagree (a bug or a version skew)
//   503               → retry after Retry-After (clamped to 0.5–60 s), backoff if absent
//   404, 5xx, network, lost connection → retry with backoff

export const BACKOFF_MS = Object.freeze([500, 1000, 2000, 4000, 5000]);
export const RETRY_AFTER_MIN_MS = 500;
export const RETRY_AFTER_MAX_MS = 60000;

/** Delay before the next attempt after `failures` consecutive failures (0 → first retry). */
export function backoffDelay(failures) {
  return BACKOFF_MS[Math.min(Math.max(failures, 0), BACKOFF_MS.length - 1)];
}

/**
 * Decides what to do after a failure.
 * @param {{kind: string, status?: number, retryAfterMs?: number|null, message?: string, body?: string}} error
 *   a WhepError, or { kind: 'lost', message } for a connection that dropped or never came up.
 * @param {number} failures consecutive failures before this one.
 * @param {{hasToken?: boolean}} context
 * @returns {{retry: boolean, delayMs: number, reason: string, detail: string}}
 *   `reason` is the short headline shown in the state indicator, `detail` a sentence under it.
 */
export function planRetry(error, failures, { hasToken = true } = {}) {
  const backoff = backoffDelay(failures);
  const status = error.status ? ` (HTTP ${error.status})` : '';
  switch (error.kind) {
    case 'unauthorized':
      return giveUp('Token refused', hasToken
        ? 'The server refused the join token: it may have expired, been revoked, or be for another session. Ask for a new link.'
        : 'This link has no join token (#token=…). Ask for a new link.');
    case 'bad-request':
    case 'unsupported':
    case 'protocol':
    {
      const why = error.body || (error.kind === 'protocol' ? error.message : '');
      return giveUp('Connection refused', `The server rejected this client's request${status}${why ? `: ${why}` : ''}. Try reloading the page.`);
    }
    case 'busy': {
      const delayMs = error.retryAfterMs == null
        ? backoff
        : Math.min(Math.max(error.retryAfterMs, RETRY_AFTER_MIN_MS), RETRY_AFTER_MAX_MS);
      return again(delayMs, 'Session full', 'The session has no free viewer slot right now.');
    }
    case 'not-found':
      return again(backoff, 'Session not found', 'No session with this name is running (yet).');
    case 'server':
      return again(backoff, 'Server error', `The server failed to set up the stream${status}.`);
    case 'network':
      return again(backoff, 'Server unreachable', error.message || 'No answer from the server.');
    case 'lost':
    default:
      return again(backoff, 'Connection lost', error.message || 'The stream stopped.');
  }
}

function giveUp(reason, detail) {
  return { retry: false, delayMs: 0, reason, detail };
}

function again(delayMs, reason, detail) {
  return { retry: true, delayMs, reason, detail };
}
