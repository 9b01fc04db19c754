// Unit tests of the browser client (sdk/js) under node: `node --test tests/js/`.
// Run from pytest by tests/js/test_node.py. No server: fetch and WebSocket are fakes.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { API, Cache, and, cond, generateFind, or } from '../../sdk/js/space-api.js';

// ---------------------------------------------------------------- where → find (space-api §8)

test('cond operators translate as space-api 0.12.1', () => {
  assert.deepEqual(generateFind(cond('a', '==', 1)), { a: 1 });
  assert.deepEqual(generateFind(cond('a', '!=', 1)), { a: { $ne: 1 } });
  assert.deepEqual(generateFind(cond('a', '>', 1)), { a: { $gt: 1 } });
  assert.deepEqual(generateFind(cond('a', '<', 1)), { a: { $lt: 1 } });
  assert.deepEqual(generateFind(cond('a', '>=', 1)), { a: { $gte: 1 } });
  assert.deepEqual(generateFind(cond('a', '<=', 1)), { a: { $lte: 1 } });
  assert.deepEqual(generateFind(cond('a', 'in', [1, 2])), { a: { $in: [1, 2] } });
  assert.deepEqual(generateFind(cond('a', 'notIn', [1])), { a: { $nin: [1] } });
  assert.throws(() => cond('a', '=~', 1), /unknown operator/);
});

test('and merges into one object; operator maps on one field merge', () => {
  assert.deepEqual(generateFind(and(cond('a', '==', 1), cond('b', '>', 2))), { a: 1, b: { $gt: 2 } });
  assert.deepEqual(generateFind(and(cond('n', '>', 1), cond('n', '<=', 9))), { n: { $gt: 1, $lte: 9 } });
  assert.deepEqual(generateFind(and(cond('n', '==', 5), cond('n', '>', 1))), { n: { $eq: 5, $gt: 1 } });
});

test('or gives $or; nested and/or; two ors in an and both hold', () => {
  assert.deepEqual(generateFind(or(cond('a', '==', 1), cond('b', '==', 2))), { $or: [{ a: 1 }, { b: 2 }] });
  assert.deepEqual(
    generateFind(and(cond('u', '==', 'x'), or(cond('done', '==', true), cond('n', '>', 3)))),
    { u: 'x', $or: [{ done: true }, { n: { $gt: 3 } }] },
  );
  assert.deepEqual(
    generateFind(and(or(cond('a', '==', 1)), or(cond('b', '==', 2)))),
    { $and: [{ $or: [{ a: 1 }] }, { $or: [{ b: 2 }] }] },
  );
});

// ---------------------------------------------------------------- HTTP bodies

function fakeFetch() {
  const calls = [];
  globalThis.fetch = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
    return { status: 200, text: async () => '{"result":[]}' };
  };
  return calls;
}

test('builders send the space-api bodies to the right URLs', async () => {
  const calls = fakeFetch();
  const api = new API('todo-app', 'http://h:1/');
  api.setToken('T');
  const db = api.DB('sqlite');
  const res = await db.get('todos').where(cond('userId', '==', 'u1'), cond('n', '>', 3))
    .select({ text: 1 }).sort('text', '-n').skip(5).apply();
  assert.deepEqual(res, { status: 200, data: { result: [] } });
  assert.equal(calls[0].url, 'http://h:1/v1/api/todo-app/crud/sqlite/todos/read');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer T');
  assert.equal(calls[0].init.credentials, 'include');
  assert.deepEqual(calls[0].body, {
    op: 'all', find: { userId: 'u1', n: { $gt: 3 } },
    options: { select: { text: 1 }, sort: { text: 1, n: -1 }, skip: 5, limit: 20 },
  });
  await db.get('todos').apply();
  assert.deepEqual(calls[1].body, { op: 'all', find: {}, options: {} });
  await db.getOne('todos').where(cond('id', '==', '1')).apply();
  assert.equal(calls[2].body.op, 'one');
  await db.count('todos').apply();
  assert.equal(calls[3].body.op, 'count');
  await db.insert('todos').doc({ id: '1' }).apply();
  assert.deepEqual(calls[4].body, { op: 'one', doc: { id: '1' } });
  await db.insert('todos').all([{ id: '1' }, { id: '2' }]);
  assert.deepEqual(calls[5].body, { op: 'all', doc: [{ id: '1' }, { id: '2' }] });
  await db.update('todos').where(cond('id', '==', '1')).set({ done: true }).inc({ n: 1 }).remove('x', 'y')
    .currentTimestamp('t').apply();
  assert.deepEqual(calls[6].body, {
    op: 'all', find: { id: '1' },
    update: { $set: { done: true }, $inc: { n: 1 }, $unset: { x: '', y: '' }, $currentDate: { t: { $type: 'timestamp' } } },
  });
  assert.ok(calls[6].url.endsWith('/crud/sqlite/todos/update'));
  await db.upsert('todos').where(cond('id', '==', '2')).set({ a: 1 }).apply();
  assert.equal(calls[7].body.op, 'upsert');
  await db.delete('todos').where(cond('id', '==', '1')).apply();
  assert.deepEqual(calls[8].body, { op: 'all', find: { id: '1' } });
  await db.aggr('todos').pipe([{ $match: { a: 1 } }]).apply();
  assert.deepEqual(calls[9].body, { op: 'all', pipe: [{ $match: { a: 1 } }] });
  assert.ok(calls[9].url.endsWith('/crud/sqlite/todos/aggr'));
  await db.beginBatch().add(db.insert('a').doc({ id: 'x' })).add(db.delete('b').where(cond('id', '==', 'y'))).apply();
  assert.equal(calls[10].url, 'http://h:1/v1/api/todo-app/crud/sqlite/batch');
  assert.deepEqual(calls[10].body, {
    reqs: [{ type: 'create', col: 'a', op: 'one', doc: { id: 'x' } }, { type: 'delete', col: 'b', op: 'all', find: { id: 'y' } }],
  });
  await api.call('todo', 'summary', { a: 1 });
  assert.equal(calls[11].url, 'http://h:1/v1/api/todo-app/functions/todo/summary');
  assert.deepEqual(calls[11].body, { params: { a: 1 }, timeout: 5000 });
  await db.signUp('a@b.c', 'A', 'pw');
  assert.equal(calls[12].url, 'http://h:1/v1/api/todo-app/auth/sqlite/email/signup');
  assert.deepEqual(calls[12].body, { email: 'a@b.c', name: 'A', pass: 'pw', role: 'user' });
  await db.signIn('a@b.c', 'pw');
  assert.deepEqual(calls[13].body, { email: 'a@b.c', pass: 'pw' });
  await db.profile('u 1');
  assert.equal(calls[14].url, 'http://h:1/v1/api/todo-app/auth/sqlite/profile/u%201');
  assert.equal(calls[14].init.method, 'GET');
  await db.editProfile('u1', '', 'New', '');
  assert.equal(calls[15].init.method, 'PUT');
  assert.deepEqual(calls[15].body, { update: { $set: { name: 'New' } } });
  assert.equal(api.Mongo().alias, 'mongo');
  assert.equal(api.Postgres().alias, 'sql-postgres');
  assert.equal(api.MySQL().alias, 'sql-mysql');
});

test('a non-2xx answer resolves {status, data}; a non-JSON body rejects', async () => {
  globalThis.fetch = async () => ({ status: 401, text: async () => '{"error":"Given credentials are not correct"}' });
  const api = new API('p', 'http://h:1');
  assert.deepEqual(await api.DB('sqlite').signIn('a@b.c', 'x'),
    { status: 401, data: { error: 'Given credentials are not correct' } });
  globalThis.fetch = async () => ({ status: 502, text: async () => '<html>' });
  await assert.rejects(api.call('s', 'f', {}));
});

// ---------------------------------------------------------------- merge (§3.4)

const f = (type, docId, time, payload) => ({ id: 'q', docId, type, time, payload, group: 'todos', dbType: 'sqlite' });

test('cache: rows keyed by docId, time decides, ties apply, tombstones stay', () => {
  const c = new Cache();
  c.apply(f('initial', '1', 10, { id: '1', v: 1 }));
  c.apply(f('initial', '2', 10, { id: '2', v: 1 }));
  assert.deepEqual(c.docs().map((d) => d.id), ['1', '2']);
  assert.equal(c.apply(f('update', '1', 9, { id: '1', v: 0 })), false, 'older update ignored');
  assert.equal(c.docs()[0].v, 1);
  assert.equal(c.apply(f('update', '1', 10, { id: '1', v: 2 })), true, 'a tie is applied');
  assert.equal(c.docs()[0].v, 2);
  assert.equal(c.apply(f('delete', '1', 12, null)), true);
  assert.deepEqual(c.docs().map((d) => d.id), ['2']);
  assert.equal(c.apply(f('update', '1', 11, { id: '1', v: 3 })), false, 'late update cannot revive a newer delete');
  assert.equal(c.apply(f('insert', '1', 13, { id: '1', v: 4 })), true, 'newer insert revives');
  assert.deepEqual(c.docs().map((d) => [d.id, d.v]), [['1', 4], ['2', 1]]);
  assert.equal(c.apply(f('delete', '9', 14, null)), false, 'delete of an unknown doc changes nothing visible');
  assert.equal(c.apply(f('insert', '9', 13, { id: '9' })), false, '...but leaves a tombstone');
  assert.equal(c.maxTime, 14);
  assert.equal(c.apply(f('insert', '3', 15, { id: 3 })), true);
  assert.equal(c.rows.has('3'), true);
});

// ---------------------------------------------------------------- live queries over a fake socket

class FakeWebSocket {
  static sockets = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    FakeWebSocket.sockets.push(this);
    setTimeout(() => this.onopen && this.onopen(), 0);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000) { setTimeout(() => this.onclose && this.onclose({ code, reason: '' }), 0); }
  push(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
  last(type) { return [...this.sent].reverse().find((m) => m.type === type); }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, what) {
  for (let i = 0; i < 400; i++) {
    const v = fn();
    if (v) return v;
    await tick(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('live query: initial snapshot, feeds, reconnect with resume, reset, refusal', async () => {
  FakeWebSocket.sockets = [];
  globalThis.WebSocket = FakeWebSocket;
  const api = new API('todo-app', 'http://h:1');
  api.setToken('T');
  const snaps = [];
  const errors = [];
  const sub = api.DB('sqlite').liveQuery('todos').where(cond('userId', '==', 'u1'))
    .subscribe((docs, type, changed) => snaps.push({ docs: docs.map((d) => d.id), type, changed }), (e) => errors.push(e));
  const ws = await waitFor(() => FakeWebSocket.sockets[0], 'socket');
  assert.equal(ws.url, 'ws://h:1/v1/api/todo-app/socket/json');
  const req = await waitFor(() => ws.last('realtime-subscribe'), 'subscribe');
  assert.deepEqual(req.data, {
    id: sub.id, group: 'todos', dbType: 'sqlite', project: 'todo-app', options: { changesOnly: false },
    where: { userId: 'u1' }, token: 'T',
  });
  // a feed that overtakes the ack is applied after it
  ws.push({ id: '', type: 'realtime-feed', data: { ...f('insert', 'b', 105, { id: 'b' }), id: sub.id } });
  ws.push({ id: req.id, type: 'realtime-subscribe', data: { ack: true, id: sub.id, group: 'todos',
    docs: [{ ...f('initial', 'a', 100, { id: 'a' }), id: sub.id }] } });
  await tick();
  assert.deepEqual(snaps, [
    { docs: ['a'], type: 'initial', changed: {} },
    { docs: ['a', 'b'], type: 'insert', changed: { id: 'b' } },
  ]);
  ws.push({ id: '', type: 'realtime-feed', data: { ...f('delete', 'a', 110, null), id: sub.id } });
  assert.deepEqual(snaps.at(-1), { docs: ['b'], type: 'delete', changed: { id: 'a' } });
  ws.push({ id: '', type: 'realtime-feed', data: { ...f('insert', 'z', 1, { id: 'z' }), id: 'someone-else' } });
  assert.equal(snaps.length, 3);

  // the socket drops (e.g. 4008 slow consumer): reconnect, resume from the largest time seen
  ws.close(4008);
  const ws2 = await waitFor(() => FakeWebSocket.sockets[1], 'reconnect');
  const req2 = await waitFor(() => ws2.last('realtime-subscribe'), 'resubscribe');
  assert.equal(req2.data.id, sub.id);
  assert.equal(req2.data.options.resumeFrom, 110);
  assert.equal('cursor' in req2.data.options, false, 'a server that sends no cursor: resume by time');
  ws2.push({ id: req2.id, type: 'realtime-subscribe', data: { ack: true, resumed: true, docs: [] } });
  await tick();
  assert.equal(snaps.length, 3, 'a resume keeps the cache and says nothing');
  ws2.push({ id: '', type: 'realtime-feed', data: { ...f('update', 'c', 120, { id: 'c' }), id: sub.id } });
  assert.deepEqual(snaps.at(-1).docs, ['b', 'c']);

  // away too long: reset replaces the cache with the fresh snapshot
  ws2.close(1006);
  const ws3 = await waitFor(() => FakeWebSocket.sockets[2], 'reconnect 2');
  const req3 = await waitFor(() => ws3.last('realtime-subscribe'), 'resubscribe 2');
  assert.equal(req3.data.options.resumeFrom, 120);
  ws3.push({ id: req3.id, type: 'realtime-subscribe', data: { ack: true, reset: true,
    docs: [{ ...f('initial', 'd', 200, { id: 'd' }), id: sub.id }] } });
  await tick();
  assert.deepEqual(snaps.at(-1), { docs: ['d'], type: 'initial', changed: {} });
  assert.deepEqual(sub.getSnapshot(), [{ id: 'd' }]);

  sub.unsubscribe();
  const un = ws3.last('realtime-unsubscribe');
  assert.deepEqual(un.data, { group: 'todos', id: sub.id, dbType: 'sqlite', options: { changesOnly: false }, token: 'T' });
  ws3.push({ id: un.id, type: 'realtime-unsubscribe', data: { ack: true } });
  ws3.push({ id: '', type: 'realtime-feed', data: { ...f('insert', 'e', 300, { id: 'e' }), id: sub.id } });
  assert.equal(snaps.at(-1).docs.length, 1, 'nothing after unsubscribe');

  // a refused subscription calls onError and stops
  const sub2 = api.DB('sqlite').liveQuery('todos').subscribe(() => assert.fail('no snapshot'), (e) => errors.push(e));
  const req4 = await waitFor(() => ws3.sent.find((m) => m.type === 'realtime-subscribe' && m.data.id === sub2.id), 'sub2');
  assert.equal('where' in req4.data, false, 'no where → no where key');
  ws3.push({ id: req4.id, type: 'realtime-subscribe', data: { ack: false, error: 'Auth: denied', docs: null } });
  await tick();
  assert.deepEqual(errors, ['Auth: denied']);
  assert.equal(api._queries.size, 0);
  api.close();
});

test('changesOnly: no cache, one call per change', async () => {
  FakeWebSocket.sockets = [];
  globalThis.WebSocket = FakeWebSocket;
  const api = new API('p', 'http://h:1');
  const calls = [];
  const sub = api.DB('mongo').liveQuery('todos').options({ changesOnly: true })
    .subscribe((docs, type, changed) => calls.push([docs, type, changed]));
  const ws = await waitFor(() => FakeWebSocket.sockets[0], 'socket');
  const req = await waitFor(() => ws.last('realtime-subscribe'), 'subscribe');
  assert.deepEqual(req.data.options, { changesOnly: true, skipInitial: true });
  ws.push({ id: req.id, type: 'realtime-subscribe', data: { ack: true, docs: [] } });
  await tick();
  ws.push({ id: '', type: 'realtime-feed', data: { ...f('delete', 'x', 5, null), dbType: 'mongo', id: sub.id } });
  assert.deepEqual(calls, [[[], 'delete', { _id: 'x' }]]);
  api.close();
});

// ---------------------------------------------------------------- resume by cursor, against a fake change log

/**
 * A fake of this server's live queries, as gateway/live/manager.py answers: a change log with
 * positions (`<epoch>.<seq>` cursors, opaque to the client); a fresh subscribe's ack carries the
 * cursor its snapshot is as of; live feeds carry the cursor of their change; a resume by cursor (or
 * by time, 5 ticks early) is acked `resumed` and replayed a page at a time, folded per document, the
 * cursor on the last frame of each page, what came meanwhile after it without a cursor; a position
 * the log no longer holds gets `reset` with a fresh snapshot. `expire(token)` closes the sockets of
 * its live queries with 4401; a subscribe with an expired token is refused.
 */
class LogServer {
  constructor({ epoch = '18f', page = 2 } = {}) {
    this.epoch = epoch;
    this.page = page;
    /** @type {Map<string, any>} */
    this.docs = new Map();
    this.log = [];
    this.firstSeq = 1; // the oldest change the log still holds
    this.clock = 1000;
    this.down = false;
    this.sockets = [];
    this.subscribes = [];
    this.expired = new Set();
    this.afterPage = null; // (page number) => void, between replay pages
    const server = this;
    this.WebSocket = class {
      constructor(url) {
        this.url = url;
        this.open = false;
        this.subs = new Map();
        server.sockets.push(this);
        setTimeout(() => {
          if (server.down) {
            if (this.onclose) this.onclose({ code: 1006, reason: '' });
            return;
          }
          this.open = true;
          if (this.onopen) this.onopen();
        }, 0);
      }
      send(text) { server._receive(this, JSON.parse(text)); }
      close(code = 1000, reason = '') { server._close(this, code, reason); }
    };
  }

  cursorOf(seq) { return `${this.epoch}.${seq.toString(16)}`; }

  get position() { return this.log.length; }

  /** The documents, as the client should hold them. */
  state() { return [...this.docs.values()].sort((a, b) => a.id.localeCompare(b.id)); }

  write(kind, id, doc) {
    const before = this.docs.get(id) || null;
    if (kind === 'delete') this.docs.delete(id);
    else this.docs.set(id, doc);
    const change = { seq: this.log.length + 1, id, kind, doc: kind === 'delete' ? null : doc, before, time: ++this.clock };
    this.log.push(change);
    for (const ws of this.sockets) {
      if (!ws.open) continue;
      for (const [qid, sub] of ws.subs) {
        if (sub.syncing) sub.syncing.push(change);
        else this._send(ws, this._frame(qid, change.kind, change, this.cursorOf(change.seq)));
      }
    }
  }

  /** The network fails: every socket drops, new ones are refused. */
  cut() {
    this.down = true;
    for (const ws of this.sockets) if (ws.open) this._close(ws, 1006, '');
  }

  restore() { this.down = false; }

  expire(token) {
    this.expired.add(token);
    for (const ws of this.sockets) {
      if (ws.open && [...ws.subs.values()].some((s) => s.token === token)) {
        this._close(ws, 4401, 'token expired: sign in again and resubscribe');
      }
    }
  }

  /** Subscribes received since `n` of them. */
  subscribesSince(n) { return this.subscribes.slice(n); }

  _frame(qid, type, change, cursor) {
    const payload = type === 'delete' ? { id: change.id } : change.doc;
    const data = { id: qid, docId: change.id, type, payload, time: change.time, group: 'todos', dbType: 'sqlite' };
    if (cursor) data.cursor = cursor;
    return { id: '', type: 'realtime-feed', data };
  }

  _send(ws, frame) {
    setTimeout(() => {
      if (ws.open) ws.onmessage({ data: JSON.stringify(frame) });
    }, 0);
  }

  _close(ws, code, reason) {
    ws.open = false;
    ws.subs.clear();
    setTimeout(() => ws.onclose && ws.onclose({ code, reason }), 0);
  }

  _receive(ws, frame) {
    const data = frame.data;
    const reply = (body) => this._send(ws, { id: frame.id, type: frame.type, data: body });
    if (frame.type === 'realtime-unsubscribe') {
      ws.subs.delete(data.id);
      reply({ group: data.group, id: data.id, ack: true });
      return;
    }
    if (frame.type !== 'realtime-subscribe') return;
    this.subscribes.push(frame);
    const qid = data.id;
    ws.subs.delete(qid);
    if (this.expired.has(data.token)) {
      reply({ group: data.group, id: qid, ack: false, error: 'Auth: invalid or expired token', docs: null });
      return;
    }
    const options = data.options || {};
    const sub = { token: data.token, syncing: null };
    ws.subs.set(qid, sub);
    const ack = { group: data.group, id: qid, ack: true, error: '', docs: [], time: this.clock };
    let start = null;
    if (typeof options.cursor === 'string') {
      const [epoch, seq] = options.cursor.split('.');
      const n = parseInt(seq, 16);
      if (epoch === this.epoch && n <= this.position && n + 1 >= this.firstSeq) start = n;
    } else if (typeof options.resumeFrom === 'number') {
      const from = this.log.find((c) => c.time >= options.resumeFrom - 5);
      const n = from ? from.seq - 1 : this.position;
      if (n + 1 >= this.firstSeq) start = n;
    }
    if (start !== null) {
      reply({ ...ack, resumed: true });
      sub.syncing = [];
      this._replay(ws, qid, sub, start, this.position, 1);
      return;
    }
    if (options.cursor !== undefined || options.resumeFrom !== undefined) ack.reset = true;
    ack.cursor = this.cursorOf(this.position);
    ack.docs = [...this.docs.values()].map((doc) => ({
      id: qid, docId: doc.id, type: 'initial', payload: doc, time: this.clock, group: 'todos', dbType: 'sqlite',
    }));
    reply(ack);
  }

  _replay(ws, qid, sub, after, until, n) {
    if (!ws.open || ws.subs.get(qid) !== sub) return;
    const page = this.log.filter((c) => c.seq > after && c.seq <= until).slice(0, this.page);
    if (page.length === 0) {
      const meanwhile = sub.syncing;
      sub.syncing = null;
      for (const c of meanwhile) this._send(ws, this._frame(qid, c.kind, c, null));
      return;
    }
    const folded = new Map(); // per document: its first and last change in the page
    for (const c of page) {
      const w = folded.get(c.id);
      if (w) w.last = c;
      else folded.set(c.id, { first: c, last: c });
    }
    const told = [];
    for (const { first, last } of folded.values()) {
      if (last.doc) told.push(['update', last]);
      else if (first.before) told.push(['delete', last]);
    }
    told.forEach(([type, c], i) => {
      const cursor = i === told.length - 1 ? this.cursorOf(page.at(-1).seq) : null;
      this._send(ws, this._frame(qid, type, c, cursor));
    });
    setTimeout(() => {
      if (this.afterPage) this.afterPage(n);
      this._replay(ws, qid, sub, page.at(-1).seq, until, n + 1);
    }, 0);
  }
}

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT-shaped token (unsigned: the fake does not check signatures, the client only reads `exp`/`id`). */
const jwt = (claims) => `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}.sig`;
const sorted = (docs) => [...docs].sort((a, b) => a.id.localeCompare(b.id));

function follow(api, col = 'todos') {
  const snaps = [];
  const errors = [];
  const sub = api.DB('sqlite').liveQuery(col).subscribe(
    (docs, type, changed) => snaps.push({ type, changed }),
    (error, info) => errors.push({ error, info }),
  );
  return { sub, snaps, errors };
}

test('resume by cursor: after a cut the client sends options.cursor and ends with exactly the server state',
  async () => {
    const server = new LogServer({ page: 2 });
    globalThis.WebSocket = server.WebSocket;
    for (const id of ['a', 'b', 'c']) server.write('insert', id, { id, n: 0 });
    const api = new API('p', 'http://h:1');
    const { sub, snaps, errors } = follow(api);
    await waitFor(() => snaps.length === 1, 'the initial snapshot');
    assert.deepEqual(sorted(sub.getSnapshot()), server.state());
    assert.equal(sub.cursor, server.cursorOf(3), 'the ack gives the position of its snapshot');
    server.write('update', 'a', { id: 'a', n: 1 });
    await waitFor(() => sub.cursor === server.cursorOf(4), 'the cursor of a live feed');

    server.cut();
    await waitFor(() => !api.socket.open && server.sockets.length >= 2, 'a refused reconnect');
    server.write('delete', 'b', null);
    server.write('insert', 'd', { id: 'd', n: 0 });
    server.write('update', 'c', { id: 'c', n: 5 });
    server.write('insert', 'e', { id: 'e', n: 0 });
    server.write('delete', 'e', null); // born and gone while away: never seen
    server.write('update', 'd', { id: 'd', n: 2 });
    server.write('delete', 'a', null);
    const seen = server.subscribes.length;
    server.afterPage = (n) => {
      if (n === 1) server.cut(); // cut again in the middle of the replay, after its first page
    };
    server.restore();
    const first = await waitFor(() => server.subscribesSince(seen)[0], 'the resubscribe');
    assert.equal(first.data.options.cursor, server.cursorOf(4), 'the newest cursor seen');
    assert.equal(typeof first.data.options.resumeFrom, 'number', 'a time beside it, for a server without cursors');
    await waitFor(() => !api.socket.open, 'the second cut');
    assert.equal(sub.cursor, server.cursorOf(6), 'the cursor of the first replay page (its last frame)');
    server.afterPage = null;
    server.write('insert', 'f', { id: 'f', n: 9 });
    server.restore();
    const again = await waitFor(() => server.subscribesSince(seen)[1], 'the second resubscribe');
    assert.equal(again.data.options.cursor, server.cursorOf(6), 'resumes where the cut replay got to');
    await waitFor(() => JSON.stringify(sorted(sub.getSnapshot())) === JSON.stringify(server.state()), 'caught up');
    assert.deepEqual(sorted(sub.getSnapshot()), [{ id: 'c', n: 5 }, { id: 'd', n: 2 }, { id: 'f', n: 9 }]);
    const deleted = snaps.filter((s) => s.type === 'delete').map((s) => s.changed.id);
    assert.ok(deleted.includes('a') && deleted.includes('b'), `deletes made while away arrive: ${deleted}`);
    assert.equal(snaps.filter((s) => s.type === 'initial').length, 1, 'resumed, never re-read');
    assert.equal(sub.cursor, server.cursorOf(server.position));
    assert.deepEqual(errors, []);

    server.write('update', 'c', { id: 'c', n: 6 }); // and it is live
    await waitFor(() => sub.getSnapshot().some((d) => d.id === 'c' && d.n === 6), 'a live change');
    api.close();
  });

test('4410: the log lost changes; the resubscribe is a reset whose snapshot replaces the cache', async () => {
  const server = new LogServer();
  globalThis.WebSocket = server.WebSocket;
  server.write('insert', 'a', { id: 'a' });
  const api = new API('p', 'http://h:1');
  const { sub, snaps, errors } = follow(api);
  await waitFor(() => snaps.length === 1, 'the initial snapshot');
  const seen = server.subscribes.length;
  server.write('delete', 'a', null);
  server.write('insert', 'b', { id: 'b' });
  server.firstSeq = server.position + 1; // what the client missed is gone from the log
  for (const ws of server.sockets) if (ws.open) server._close(ws, 4410, 'the change log no longer holds what this connection missed: resubscribe');
  await waitFor(() => snaps.length === 2, 'the fresh snapshot');
  assert.equal(server.subscribesSince(seen)[0].data.options.cursor, server.cursorOf(1));
  assert.deepEqual(snaps[1], { type: 'initial', changed: {} });
  assert.deepEqual(sub.getSnapshot(), [{ id: 'b' }]);
  assert.equal(sub.cursor, server.cursorOf(3), 'the reset ack gives the new position');
  assert.deepEqual(errors, []);
  api.close();
});

test('4401: the expired token is not sent again; a new token resumes the subscription, nothing missed', async () => {
  const server = new LogServer();
  globalThis.WebSocket = server.WebSocket;
  for (const id of ['a', 'b']) server.write('insert', id, { id, n: 0 });
  const api = new API('p', 'http://h:1');
  const short = jwt({ id: 'u1', exp: (Date.now() + 150) / 1000 });
  api.setToken(short);
  const states = [];
  api.onConnectionChange((state, info) => states.push([state, info && info.code]));
  const { sub, snaps, errors } = follow(api);
  await waitFor(() => snaps.length === 1, 'the initial snapshot');
  server.write('update', 'a', { id: 'a', n: 1 });
  await waitFor(() => snaps.length === 2, 'a live change');
  await tick(200); // the token's exp passes
  const seen = server.subscribes.length;
  server.expire(short);
  await waitFor(() => errors.length === 1, 'the expiry surfaced');
  assert.deepEqual(errors[0], {
    error: 'token expired: sign in again and resubscribe',
    info: { code: 4401, reason: 'token expired: sign in again and resubscribe' },
  });
  assert.equal(sub.waitingForToken, true);
  assert.equal(api._queries.has(sub.id), true, 'paused, not stopped');
  await waitFor(() => api.socket.open, 'the socket reopened');
  assert.deepEqual(states.slice(-2), [['closed', 4401], ['open', undefined]]);
  server.write('delete', 'b', null);
  server.write('insert', 'c', { id: 'c', n: 0 });
  server.write('update', 'a', { id: 'a', n: 2 });
  api.setToken(short); // the same token again changes nothing
  await tick(50);
  assert.deepEqual(server.subscribesSince(seen), [], 'no resubscribe with the expired token');
  assert.deepEqual(sorted(sub.getSnapshot()), [{ id: 'a', n: 1 }, { id: 'b', n: 0 }]);

  const fresh = jwt({ id: 'u1', exp: Date.now() / 1000 + 3600 });
  api.setToken(fresh);
  const req = await waitFor(() => server.subscribesSince(seen)[0], 'the resubscribe');
  assert.equal(req.data.token, fresh);
  assert.equal(req.data.options.cursor, server.cursorOf(3));
  await waitFor(() => JSON.stringify(sorted(sub.getSnapshot())) === JSON.stringify(server.state()), 'caught up');
  assert.equal(sub.waitingForToken, false);
  assert.equal(snaps.filter((s) => s.type === 'initial').length, 1, 'resumed, not re-read');
  assert.equal(errors.length, 1);
  server.write('insert', 'd', { id: 'd', n: 0 });
  await waitFor(() => sub.getSnapshot().some((d) => d.id === 'd'), 'live again');
  assert.equal(server.subscribesSince(seen).length, 1);
  api.close();
});

test('a token that expired while away: one refused resubscribe, then a new token resumes', async () => {
  const server = new LogServer();
  globalThis.WebSocket = server.WebSocket;
  server.write('insert', 'a', { id: 'a', n: 0 });
  const api = new API('p', 'http://h:1');
  const token = jwt({ id: 'u1', exp: Date.now() / 1000 + 3600 }); // the client's clock cannot tell
  api.setToken(token);
  const { sub, snaps, errors } = follow(api);
  await waitFor(() => snaps.length === 1, 'the initial snapshot');
  const seen = server.subscribes.length;
  server.cut();
  server.expired.add(token);
  server.write('update', 'a', { id: 'a', n: 1 });
  server.write('insert', 'b', { id: 'b', n: 0 });
  server.restore();
  await waitFor(() => errors.length === 1, 'the refusal surfaced');
  assert.deepEqual(errors[0], { error: 'Auth: invalid or expired token',
    info: { code: 4401, reason: 'Auth: invalid or expired token' } });
  assert.equal(sub.waitingForToken, true);
  await tick(100);
  assert.equal(server.subscribesSince(seen).length, 1, 'no loop of refused resubscribes');

  api.setToken(jwt({ id: 'u1', exp: Date.now() / 1000 + 3600, n: 2 }));
  await waitFor(() => JSON.stringify(sorted(sub.getSnapshot())) === JSON.stringify(server.state()), 'caught up');
  assert.equal(server.subscribesSince(seen)[1].data.options.cursor, server.cursorOf(1));
  assert.equal(snaps.filter((s) => s.type === 'initial').length, 1);

  // another user's token: no resume of what the last one could read, a fresh snapshot
  server.expire(api.token);
  await waitFor(() => errors.length === 2, 'the second expiry');
  server.write('insert', 'c', { id: 'c', n: 0 });
  api.setToken(jwt({ id: 'u2', exp: Date.now() / 1000 + 3600 }));
  await waitFor(() => snaps.filter((s) => s.type === 'initial').length === 2, 'a fresh snapshot');
  const last = server.subscribesSince(seen).at(-1);
  assert.equal('cursor' in last.data.options || 'resumeFrom' in last.data.options, false);
  assert.deepEqual(sorted(sub.getSnapshot()), server.state());
  api.close();
});
