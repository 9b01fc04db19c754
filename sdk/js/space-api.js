// space-api for the browser: a small, dependency-free ES module client for this server, with the
// surface of the official `space-api` 0.12.1. Served by the gateway at /v1/api/sdk/space-api.js:
//
//   import { API, cond, and, or } from '/v1/api/sdk/space-api.js';
//   const api = new API('todo-app');           // same origin; or new API('todo-app', 'http://host:4122')
//   const db = api.DB('sqlite');               // or api.Mongo() / api.Postgres() / api.MySQL()
//   const { status, data } = await db.signIn(email, pass); api.setToken(data.token);
//   db.liveQuery('todos').where(cond('userId', '==', data.user.id)).subscribe((docs) => render(docs));
//
// Reference and differences from space-api: docs/js-client.md.

import { DB, request } from './db.js';
import { LiveQuery, Socket, attachRealtime } from './realtime.js';

export { DB, Get, Insert, Update, Delete, Aggregate, Batch, cond, and, or, generateFind } from './db.js';
export { Cache, LiveQuery, Subscription } from './realtime.js';

/** The server's base URL: `url` as given, or this page's origin for `'/'` / nothing. */
function baseUrl(url) {
  if (!url || url === '/') return globalThis.location ? globalThis.location.origin : 'http://localhost:4122';
  return url.replace(/\/+$/, '');
}

/** The entry point: one per project and server. */
export class API {
  /**
   * @param {string} projectId the `<project>` in `/v1/api/<project>/...`
   * @param {string} [url='/'] the server (`http(s)://host:port`); `'/'` = the page's origin
   */
  constructor(projectId, url = '/') {
    this.projectId = projectId;
    this.httpBase = baseUrl(url);
    this.wsBase = this.httpBase.replace(/^http/, 'ws');
    /** @type {string | null} */
    this.token = null;
    /** @type {Map<string, import('./realtime.js').Subscription>} live queries by id */
    this._queries = new Map();
    this.socket = new Socket(this);
    attachRealtime(this);
  }

  /**
   * The user's JWT: sent as `Authorization: Bearer` and in every WebSocket message. Live queries
   * and services already running keep going; new requests use the new token.
   * @param {string | null} token
   */
  setToken(token) {
    this.token = token || null;
  }

  /** @param {string} projectId */
  setProjectId(projectId) {
    this.projectId = projectId;
  }

  /** A database by its config alias. @param {string} alias @returns {DB} */
  DB(alias) {
    return new DB(this, alias);
  }

  /** The `mongo` alias. @returns {DB} */
  Mongo() {
    return new DB(this, 'mongo');
  }

  /** The `sql-postgres` alias. @returns {DB} */
  Postgres() {
    return new DB(this, 'sql-postgres');
  }

  /** The `sql-mysql` alias. @returns {DB} */
  MySQL() {
    return new DB(this, 'sql-mysql');
  }

  /**
   * Call a function of a service. Resolves `{status: 200, data: {result}}`; `{status, data: {error}}`
   * on failure (403 rule, 500 the function raised, 503 no instance, 504 timeout).
   * @param {string} service
   * @param {string} func
   * @param {any} params
   * @param {number} [timeout=5000] milliseconds
   * @returns {Promise<import('./db.js').Result>}
   */
  call(service, func, params, timeout = 5000) {
    const path = `/functions/${encodeURIComponent(service)}/${encodeURIComponent(func)}`;
    return request(this, 'POST', path, { params, timeout });
  }

  /**
   * A service whose functions run in this page and are called through the mesh (needs a
   * `register` rule on the server).
   * @param {string} name
   * @returns {Service}
   */
  Service(name) {
    return new Service(this, name);
  }

  /**
   * Follow the WebSocket (an extension of space-api): `fn('open')` after every (re)connect,
   * `fn('closed', {code, reason})` when it drops (it reconnects by itself). Returns a function
   * that stops following.
   * @param {(state: 'open' | 'closed', info?: {code: number, reason: string}) => void} fn
   * @returns {() => void}
   */
  onConnectionChange(fn) {
    this.socket.onState.add(fn);
    return () => this.socket.onState.delete(fn);
  }

  /** Close the WebSocket (live queries and services stop receiving until a new one starts). */
  close() {
    this.socket.close();
  }

  /** @internal */
  _liveQuery(db, col) {
    return new LiveQuery(db, col);
  }
}

/**
 * `api.Service('echo').registerFunc('say', (params, auth, cb) => cb('response', params)).start()`.
 */
export class Service {
  /** @param {API} api @param {string} name */
  constructor(api, name) {
    this.api = api;
    this.name = name;
    /** @type {Map<string, (params: any, auth: any, cb: (kind: string, result: any) => void) => void>} */
    this.funcs = new Map();
    this._register = () => this._send();
  }

  /**
   * @param {string} name
   * @param {(params: any, auth: any, cb: (kind: 'response' | 'error', result: any) => void) => void} fn
   * @returns {this}
   */
  registerFunc(name, fn) {
    this.funcs.set(name, fn);
    return this;
  }

  /** Register on the socket (and again after every reconnect). @returns {this} */
  start() {
    const socket = this.api.socket;
    const previous = socket.handlers.get('service-request');
    const services = previous && previous.services ? previous.services : new Map();
    services.set(this.name, this);
    const route = (data) => {
      const svc = services.get(data.service);
      if (svc) svc._invoke(data);
    };
    route.services = services;
    socket.handlers.set('service-request', route);
    socket.onOpen.add(this._register);
    if (socket.open) this._send();
    else socket.connect();
    return this;
  }

  _send() {
    this.api.socket.request('service-register', { service: this.name, project: this.api.projectId })
      .then((ack) => {
        if (!ack.ack) console.error(`service ${this.name}: registration refused: ${ack.error}`);
      }, () => {});
  }

  _invoke(data) {
    const fn = this.funcs.get(data.func);
    const reply = (extra) => this.api.socket.send('service-request', { id: data.id, ...extra });
    if (!fn) {
      reply({ error: `no function ${data.func} in service ${this.name}` });
      return;
    }
    let done = false;
    const cb = (kind, result) => {
      if (done) return;
      done = true;
      if (kind === 'response') reply({ params: result });
      else reply({ error: typeof result === 'string' ? result : JSON.stringify(result) });
    };
    try {
      fn(data.params, data.auth && Object.keys(data.auth).length ? data.auth : null, cb);
    } catch (err) {
      cb('error', String(err && err.message ? err.message : err));
    }
  }
}
