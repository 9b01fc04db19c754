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
