// HTTP for Mission Control: the admin token (sessionStorage, this tab only; never localStorage, a cookie or
// the URL), JSON calls to the admin API, and the change stream. A 401 from the admin API ends the session.

export const TOKEN_KEY = 'missionControl.token';
export const USER_KEY = 'missionControl.user';
const LOGIN = '/v1/api/config/login';

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** Thrown after the session ended (the page is back on the login screen); callers just stop. */
export class SessionExpired extends Error {}

const listeners = { expired: () => {} };

export function onSessionExpired(fn) { listeners.expired = fn; }

export function token() { return sessionStorage.getItem(TOKEN_KEY); }

export function setSession(value, user) {
  sessionStorage.setItem(TOKEN_KEY, value);
  sessionStorage.setItem(USER_KEY, user);
}

export function dropSession() { sessionStorage.removeItem(TOKEN_KEY); }

/** When the admin token expires (ms since the epoch), from its payload; null when unknown. */
export function sessionEnds() {
  const t = token();
  if (!t) return null;
  try {
    const payload = JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : null;
  } catch {
    return null;
  }
}

function headers(path, body) {
  const out = {};
  const t = token();
  if (t && path !== LOGIN) out.Authorization = `Bearer ${t}`;
  if (body !== undefined) out['Content-Type'] = 'application/json';
  return out;
}

/** A JSON call. `query` is added as URL parameters (never a secret). */
export async function api(path, { method = 'GET', body, query, signal } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== ''));
    if ([...params].length) url += `?${params}`;
  }
  let res;
  try {
    res = await fetch(url, {
      method, headers: headers(path, body), cache: 'no-store', credentials: 'omit', signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('The server cannot be reached. Is it running?', 0);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : {}; } catch { data = null; }
  if (res.status === 401 && path !== LOGIN) {
    listeners.expired();
    throw new SessionExpired();
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status} ${res.statusText}`;
    throw new ApiError(message, res.status);
  }
  return data ?? {};
}

/** A plain GET for /metrics and /v1/api/health: `{status, text, json}`; never ends the session. */
export async function probe(path) {
  try {
    const res = await fetch(path, { headers: headers(path), cache: 'no-store', credentials: 'omit' });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    return { status: res.status, text, json };
  } catch {
    return { status: 0, text: '', json: null };
  }
}

/** Follow an NDJSON stream (the change stream): `onLine` gets each parsed line. Resolves when it ends. */
export async function follow(path, onLine, signal) {
  const res = await fetch(path, { headers: headers(path), cache: 'no-store', credentials: 'omit', signal });
  if (res.status === 401) {
    listeners.expired();
    throw new SessionExpired();
  }
  if (!res.ok || !res.body) throw new ApiError(`HTTP ${res.status}`, res.status);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      try { onLine(JSON.parse(line)); } catch { /* not a line of ours */ }
    }
  }
}

/** The admin API of one project. */
export function projectPath(project, rest) {
  return `/v1/api/config/projects/${encodeURIComponent(project)}/${rest}`;
}

export const enc = encodeURIComponent;
