// The JSON WebSocket (reconnecting), live queries and their client-side merge.
// Wire format: Space Cloud §3 (`realtime-subscribe` / `realtime-feed` / `realtime-unsubscribe`),
// plus this server's resume: a subscription keeps the newest change-log `cursor` it was sent (ack
// of a snapshot, feeds that carry one) and resubscribes with `options.cursor`, the exact position,
// which the server prefers to the `options.resumeFrom` (ms) sent beside it for a server without
// cursors (and alone when none was sent). The ack says `resumed` (the missed changes follow as
// feeds) or `reset` (a fresh snapshot in `docs`, which replaces the cache). Close code 4401 (the
// live query's token expired) pauses the subscriptions that used that token until the app sets
// another one (`api.setToken`): they then resume by cursor. See docs/js-client.md.

import { whereToFind } from './db.js';

/**
 * @typedef {{id: string, docId: string, type: 'initial'|'insert'|'update'|'delete', payload: any,
 *            time: number, group: string, dbType: string, cursor?: string}} Feed
 * @typedef {{time: number, payload: any, isDeleted: boolean}} Row
 * @typedef {{code: number, reason: string}} ErrorInfo
 */

const REQUEST_TIMEOUT_MS = 10000;
/** Close code of a connection whose live query's token expired (the server's `TOKEN_EXPIRED`). */
export const TOKEN_EXPIRED = 4401;
/** Close code of a connection whose live queries missed changes the log lost: resubscribing gives `reset`. */
export const LOG_GAP = 4410;
/** Close code of a socket too slow to keep up. */
export const SLOW_CONSUMER = 4008;

/** The claims of a JWT, read without checking it (only to tell expiry and user apart); null if not one. */
function jwtClaims(token) {
  if (typeof token !== 'string') return null;
  const part = token.split('.')[1];
  if (!part || typeof atob !== 'function') return null;
  try {
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/')));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Whether a token is known to be still valid here: a JWT whose `exp` is in the future. */
function tokenValid(token) {
  const claims = jwtClaims(token);
  return Boolean(claims && typeof claims.exp === 'number' && claims.exp * 1000 > Date.now());
}

/** Whose token it is (`id`, else `sub`; null when it cannot be read). */
function tokenUser(token) {
  const claims = jwtClaims(token);
  if (!claims) return null;
  const who = claims.id !== undefined ? claims.id : claims.sub;
  return who === undefined || who === null ? null : String(who);
}

/** A refusal that a new token can cure (the server's "Auth: invalid or expired token", a 401). */
function tokenRefused(ack) {
  return ack.status === 401 || /expired token/i.test(String(ack.error || ''));
}

/** A random id (crypto where there is one). */
export function randomId() {
  if (globalThis.crypto && globalThis.crypto.randomUUID) return globalThis.crypto.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/**
 * The cache of one live query: rows keyed by docId with the `time` of their last change; deleted
 * rows stay as tombstones so an older change arriving late cannot bring them back (§3.4).
 * Pure data, no I/O: tests drive it directly.
 */
export class Cache {
  constructor() {
    /** @type {Map<string, Row>} */
    this.rows = new Map();
    /** The largest feed time seen: what a resume asks to continue from. */
    this.maxTime = 0;
  }

  /** Drop everything (a reset). */
  clear() {
    this.rows.clear();
    this.maxTime = 0;
  }

  /**
   * Apply one feed. `initial`, `insert` and `update` upsert the doc unless the cached row is newer;
   * `delete` makes (or keeps) a tombstone unless the cached row is newer. Ties are applied.
   * @param {Feed} feed
   * @returns {boolean} whether the visible snapshot changed
   */
  apply(feed) {
    const time = Number(feed.time) || 0;
    if (time > this.maxTime) this.maxTime = time;
    const id = String(feed.docId);
    const row = this.rows.get(id);
    if (row && row.time > time) return false;
    if (feed.type === 'delete') {
      this.rows.set(id, { time, payload: row ? row.payload : feed.payload, isDeleted: true });
      return Boolean(row && !row.isDeleted);
    }
    this.rows.set(id, { time, payload: feed.payload, isDeleted: false });
    return true;
  }

  /** The non-deleted documents, in the order they first appeared. @returns {any[]} */
  docs() {
    const out = [];
    for (const row of this.rows.values()) if (!row.isDeleted) out.push(row.payload);
    return out;
  }
}

/**
 * `{_id: docId}` or `{id: docId}` for a delete that carries no payload: the id field of the
 * cached doc if there is one, else `_id` on an alias named mongo.
 */
function deletedDoc(feed, row) {
  if (feed.payload) return feed.payload;
  const known = row && row.payload;
  const field = known && '_id' in known ? '_id' : known && 'id' in known ? 'id' : feed.dbType === 'mongo' ? '_id' : 'id';
  return { [field]: feed.docId };
}

/**
 * The socket: one per API, opened on first use, reopened after any close with a backoff
 * (0.5 s doubling to 10 s, with jitter); on every open it re-subscribes live queries and
 * re-registers services. Frames are routed by `id` (request replies) then by `type` (pushes).
 */
export class Socket {
  /** @param {import('./space-api.js').API} api */
  constructor(api) {
    this.api = api;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.open = false;
    this.closedByUser = false;
    this.attempt = 0;
    this.timer = null;
    /** @type {Map<string, {resolve: Function, reject: Function, timer: any}>} */
    this.pending = new Map();
    /** @type {Map<string, (data: any) => void>} pushes by type */
    this.handlers = new Map();
    /** @type {Set<() => void>} run on every open */
    this.onOpen = new Set();
    /** @type {Set<(state: 'open' | 'closed', info?: {code: number, reason: string}) => void>} */
    this.onState = new Set();
  }

  get url() {
    return `${this.api.wsBase}/v1/api/${encodeURIComponent(this.api.projectId)}/socket/json`;
  }

  /** Open the socket if it is not open or opening. */
  connect() {
    if (this.ws || this.timer) return;
    this.closedByUser = false;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.open = true;
      this.attempt = 0;
      for (const fn of [...this.onState]) fn('open');
      for (const fn of [...this.onOpen]) fn();
    };
    ws.onmessage = (ev) => this._receive(ev.data);
    ws.onclose = (ev) => {
      this.ws = null;
      this.open = false;
      this.lastClose = { code: ev.code, reason: ev.reason };
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`socket closed (${ev.code})`));
        this.pending.delete(id);
      }
      for (const fn of [...this.onState]) fn('closed', this.lastClose);
      if (!this.closedByUser) this._retry();
    };
    ws.onerror = () => {}; // onclose follows and handles it
  }

  _retry() {
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  /** Close for good (until the next `connect`). */
  close() {
    this.closedByUser = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.ws.close(1000, 'closed by the client');
  }

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const waiting = frame.id && this.pending.get(frame.id);
    if (waiting) {
      this.pending.delete(frame.id);
      clearTimeout(waiting.timer);
      waiting.resolve(frame.data || {});
      return;
    }
    const handler = this.handlers.get(frame.type);
    if (handler) handler(frame.data || {});
  }

  /** Send a frame (the token goes into `data`, as space-api does); false if not open. */
  send(type, data, id = randomId()) {
    if (!this.ws || !this.open) return false;
    this.ws.send(JSON.stringify({ id, type, data: { ...data, token: this.api.token || '' } }));
    return true;
  }

  /**
   * A request: resolves the reply's `data`, rejects when the socket closes or after 10 s.
   * @returns {Promise<any>}
   */
  request(type, data) {
    const id = randomId();
    return new Promise((resolve, reject) => {
      if (!this.send(type, data, id)) {
        reject(new Error('socket not open'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${type} within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }
}

/**
 * `db.liveQuery(col).where(...).options({...}).subscribe(onSnapshot, onError)`.
 */
export class LiveQuery {
  /** @param {import('./db.js').DB} db @param {string} col */
  constructor(db, col) {
    this.db = db;
    this.col = col;
    /** @type {Record<string, any> | undefined} */
    this.find = undefined;
    this.opts = { changesOnly: false };
  }

  /** @param {...import('./db.js').Condition} conditions @returns {this} */
  where(...conditions) {
    this.find = whereToFind(conditions);
    return this;
  }

  /**
   * `{changesOnly}`: no cache, `onSnapshot([], type, changedDoc)` per change (implies `skipInitial`);
   * `{skipInitial}`: start from an empty snapshot.
   * @param {{changesOnly?: boolean, skipInitial?: boolean}} opts @returns {this}
   */
  options(opts) {
    this.opts = { ...this.opts, ...opts };
    if (this.opts.changesOnly) this.opts.skipInitial = true;
    return this;
  }

  /**
   * Start. `onSnapshot(docs, type, changedDoc)` runs after the initial snapshot (`type`
   * `initial`, `changedDoc` `{}`) and after every change (`insert`/`update`/`delete`).
   * `onError(message)` runs when the server refuses the subscription (it then stops).
   * `onError(message, {code: 4401, reason})` runs when its token expired (the server closed the
   * socket with 4401, or refused a resubscribe with that token): the subscription is paused, not
   * stopped (`sub.waitingForToken`), and resumes by itself, missing nothing, once the app sets a
   * new token (`api.setToken`).
   * @param {(docs: any[], type: string, changed: any) => void} onSnapshot
   * @param {(error: string, info?: ErrorInfo) => void} [onError]
   * @returns {Subscription}
   */
  subscribe(onSnapshot, onError = () => {}) {
    return new Subscription(this, onSnapshot, onError);
  }
}

/**
 * A running live query: keeps its snapshot correct across reconnects. It remembers the newest
 * change-log cursor it was sent (the ack of a snapshot; the feeds that carry one, at least the last
 * of each batch) and resumes from it; without one (a server that sends none) from the largest feed
 * time seen (`resumeFrom`).
 */
export class Subscription {
  /**
   * @param {LiveQuery} query
   * @param {(docs: any[], type: string, changed: any) => void} onSnapshot
   * @param {(error: string, info?: ErrorInfo) => void} onError
   */
  constructor(query, onSnapshot, onError) {
    this.query = query;
    this.api = query.db.api;
    this.socket = this.api.socket;
    this.id = randomId();
    this.onSnapshot = onSnapshot;
    this.onError = onError;
    this.cache = new Cache();
    this.subscribed = false; // an ack has been received at least once
    this.stopped = false;
    /** @type {string | null} the newest change-log position received: what a resume asks for */
    this.cursor = null;
    /** The token the last subscribe was sent with. */
    this.sentToken = '';
    /** Paused after its token expired (4401): resubscribes when the app sets another token. */
    this.waitingForToken = false;
    this.attempt = 0;
    /** @type {Feed[] | null} feeds that arrive while a subscribe awaits its ack */
    this.buffer = null;
    this._resubscribe = () => this._subscribe();
    this.api._queries.set(this.id, this);
    this.socket.onOpen.add(this._resubscribe);
    if (this.socket.open) this._subscribe();
    else this.socket.connect();
  }

  /** The current documents. @returns {any[]} */
  getSnapshot() {
    return this.cache.docs();
  }

  /** Stop: tell the server (if connected) and forget everything. */
  unsubscribe() {
    if (this.stopped) return;
    this._stop();
    const q = this.query;
    this.socket.request('realtime-unsubscribe', { group: q.col, id: this.id, dbType: q.db.alias, options: q.opts })
      .catch(() => {});
  }

  _stop() {
    this.stopped = true;
    this.socket.onOpen.delete(this._resubscribe);
    this.api._queries.delete(this.id);
  }

  _subscribe() {
    if (this.stopped || this.waitingForToken) return;
    const q = this.query;
    const options = { ...q.opts };
    const token = this.api.token || '';
    if (this.subscribed && tokenUser(token) !== tokenUser(this.sentToken)) {
      // Another user now: what this one may read is not what the last one could; start afresh.
      this.subscribed = false;
      this.cursor = null;
    }
    // After a reconnect: ask for what was missed instead of a whole new snapshot, from the exact
    // position where there is one (the server then ignores `resumeFrom`, there for one that knows
    // no cursors).
    if (this.subscribed) {
      options.resumeFrom = this.cache.maxTime;
      if (this.cursor) options.cursor = this.cursor;
    }
    const data = { id: this.id, group: q.col, dbType: q.db.alias, project: this.api.projectId, options };
    if (q.find !== undefined) data.where = q.find;
    this.buffer = [];
    this.sentToken = token;
    const attempt = ++this.attempt;
    this.socket.request('realtime-subscribe', data).then(
      (ack) => {
        if (attempt === this.attempt) this._ack(ack);
      },
      () => {
        if (attempt === this.attempt) this.buffer = null; // the socket closed: the next open subscribes again
      },
    );
  }

  _ack(ack) {
    if (this.stopped) return;
    const buffered = this.buffer || [];
    this.buffer = null;
    if (!ack.ack) {
      if (this.subscribed && this.sentToken && tokenRefused(ack)) {
        // A resubscribe with a token that expired meanwhile: wait for a new one instead of ending.
        this._waitForToken(ack.error || 'token expired');
        return;
      }
      this._stop();
      this.onError(ack.error || 'subscription refused');
      return;
    }
    this.subscribed = true;
    const changesOnly = this.query.opts.changesOnly;
    if (!ack.resumed) {
      // A fresh snapshot (first subscribe, `reset`, or a server that cannot resume): it replaces the cache.
      this.cache.clear();
      for (const feed of ack.docs || []) this.cache.apply(feed);
      if (!changesOnly) this.onSnapshot(this.cache.docs(), 'initial', {});
      this.cursor = null; // the cursor of the old snapshot means nothing for this one
    }
    if (typeof ack.cursor === 'string' && ack.cursor) this.cursor = ack.cursor;
    for (const feed of buffered) this._feed(feed);
  }

  /** The socket closed: a 4401 pauses this subscription if its token is the one that expired. */
  _closed(info) {
    if (this.stopped || this.waitingForToken || !info || info.code !== TOKEN_EXPIRED) return;
    const token = this.api.token || '';
    // The app may have set a fresh token already (it is sent on the next subscribe), and a socket
    // closed for another live query's token says nothing of a token still valid.
    if (!this.sentToken || token !== this.sentToken || tokenValid(token)) return;
    this._waitForToken(info.reason || 'token expired');
  }

  _waitForToken(reason) {
    this.waitingForToken = true;
    this.buffer = null;
    this.onError(reason, { code: TOKEN_EXPIRED, reason });
  }

  /** The app set a token: a subscription paused for its expired one subscribes again (and resumes). */
  _tokenChanged() {
    if (this.stopped || !this.waitingForToken) return;
    this.waitingForToken = false;
    if (this.socket.open) this._subscribe();
    else if (!this.socket.closedByUser) this.socket.connect();
  }

  /** One `realtime-feed` for this query. @param {Feed} feed */
  _feed(feed) {
    if (this.stopped) return;
    if (this.buffer) {
      this.buffer.push(feed);
      return;
    }
    const before = this.cache.rows.get(String(feed.docId));
    const changed = feed.type === 'delete' ? deletedDoc(feed, before) : feed.payload;
    if (typeof feed.cursor === 'string' && feed.cursor) this.cursor = feed.cursor;
    if (this.query.opts.changesOnly) {
      const time = Number(feed.time) || 0;
      if (time > this.cache.maxTime) this.cache.maxTime = time;
      this.onSnapshot([], feed.type, changed);
      return;
    }
    if (this.cache.apply(feed)) this.onSnapshot(this.cache.docs(), feed.type, changed);
  }
}

/**
 * Route `realtime-feed` pushes of a socket to their subscriptions, tell them of closes (4401) and
 * of a new token: `api.token` becomes an accessor, so `api.setToken(t)` (or `api.token = t`) wakes
 * the subscriptions paused for an expired one.
 * @param {import('./space-api.js').API} api
 */
export function attachRealtime(api) {
  api.socket.handlers.set('realtime-feed', (data) => {
    const sub = api._queries.get(data.id);
    if (sub) sub._feed(data);
  });
  api.socket.onState.add((state, info) => {
    if (state === 'closed') for (const sub of [...api._queries.values()]) sub._closed(info);
  });
  let token = api.token;
  Object.defineProperty(api, 'token', {
    configurable: true,
    enumerable: true,
    get: () => token,
    set: (value) => {
      if (value === token) return;
      token = value;
      for (const sub of [...api._queries.values()]) sub._tokenChanged();
    },
  });
}
