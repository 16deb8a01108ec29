// console.js — the operator console: log in with the operator key (kept in this tab only,
// sessionStorage), watch the sessions with a refreshing thumbnail each, create one, end one,
// mint and copy a control or view link. Talks to /api/v1 with `Authorization: Bearer <key>`.
//
// Test handle: window.edgedeskConsole = { refresh(), sessions } (the last list fetched).

const $ = (id) => document.getElementById(id);
const KEY_ITEM = 'edgedesk-operator-key';
const LIST_MS = 2000;
const THUMB_MS = 5000;

let key = sessionStorage.getItem(KEY_ITEM);
let sessions = [];
const thumbs = new Map(); // id → {url, at}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) {
    logout('The operator key was refused.');
    throw new Error('unauthorized');
  }
  if (!res.ok) throw new Error((await res.text()) || `${res.status}`);
  const type = res.headers.get('Content-Type') || '';
  if (type.startsWith('application/json')) return res.json();
  if (type.startsWith('image/')) return res.blob();
  return null;
}

function logout(message = '') {
  key = null;
  sessionStorage.removeItem(KEY_ITEM);
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
}

function uptime(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

async function thumbnail(id, img) {
  const t = thumbs.get(id);
  if (t && Date.now() - t.at < THUMB_MS) {
    img.src = t.url;
    return;
  }
  try {
    const blob = await api('GET', `/api/v1/sessions/${encodeURIComponent(id)}/screenshot?width=320`);
    if (t) URL.revokeObjectURL(t.url);
    const url = URL.createObjectURL(blob);
    thumbs.set(id, { url, at: Date.now() });
    img.src = url;
  } catch {
    /* not running (yet): no picture */
  }
}

function render() {
  const rows = sessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.id = s.id;
    const img = document.createElement('img');
    img.alt = `${s.id} thumbnail`;
    if (s.state === 'running') thumbnail(s.id, img);
    const live = s.state === 'running' || s.state === 'starting';
    const cells = [
      img,
      Object.assign(document.createElement('code'), { textContent: s.id }),
      Object.assign(document.createElement('span'), {
        className: `state state-${s.state}`,
        textContent: s.state + (s.reason ? `: ${s.reason}` : ''),
      }),
      document.createTextNode(`${s.spec.width}×${s.spec.height} @${s.spec.fps}`),
      document.createTextNode(uptime(s.created_unix_ms)),
    ];
    const links = document.createElement('span');
    for (const role of ['control', 'view']) {
      const b = Object.assign(document.createElement('button'), { type: 'button', textContent: role === 'control' ? 'Control link' : 'View link' });
      b.className = `mint-${role}`;
      b.disabled = !live;
      b.addEventListener('click', () => mint(s.id, role));
      links.append(b, ' ');
    }
    const end = Object.assign(document.createElement('button'), { type: 'button', textContent: 'End', className: 'end' });
    end.disabled = !live;
    end.addEventListener('click', async () => {
      end.disabled = true;
      await api('DELETE', `/api/v1/sessions/${encodeURIComponent(s.id)}`).catch(() => {});
      refresh();
    });
    for (const c of [...cells, links, end]) {
      const td = document.createElement('td');
      td.append(c);
      tr.append(td);
    }
    return tr;
  });
  $('sessions').replaceChildren(...rows);
}

async function mint(id, role) {
  const t = await api('POST', `/api/v1/sessions/${encodeURIComponent(id)}/tokens`, { role });
  $('link-role').textContent = role === 'control' ? 'Control' : 'View-only';
  $('link-url').textContent = t.join_url;
  $('link-url').href = t.join_url;
  $('link-out').hidden = false;
}

async function refresh() {
  if (!key) return;
  try {
    sessions = await api('GET', '/api/v1/sessions');
    render();
  } catch {
    /* shown through logout() or kept until the next refresh */
  }
}

async function start() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  try {
    const [node] = await api('GET', '/api/v1/nodes');
    $('node').textContent = `${node.id}: ${node.sessions} of ${node.capacity} sessions`;
  } catch {
    return;
  }
  refresh();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  key = $('key').value.trim();
  sessionStorage.setItem(KEY_ITEM, key);
  $('login-error').textContent = '';
  start();
});
$('logout').addEventListener('click', () => logout());
$('create').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('create-error').textContent = '';
  const body = { size: $('c-size').value, fps: Number($('c-fps').value), command: $('c-command').value };
  const ttl = Number($('c-ttl').value);
  if (ttl > 0) body.ttl_secs = ttl;
  try {
    await api('POST', '/api/v1/sessions', body);
    refresh();
  } catch (err) {
    $('create-error').textContent = err.message;
  }
});
$('link-copy').addEventListener('click', () => navigator.clipboard?.writeText($('link-url').textContent).catch(() => {}));

setInterval(refresh, LIST_MS);
if (key) start();

window.edgedeskConsole = Object.freeze({ refresh, get sessions() { return sessions; } });
