// Conditions, the where → find translation, HTTP requests, and the CRUD / auth builders.
// Mirrors space-api 0.12.1 (lib/db/*.js, lib/utils.js); see docs/js-client.md.

/**
 * @typedef {{type: 'cond', f1: string, op: string, f2: any}} Cond
 * @typedef {{type: 'and' | 'or', clauses: Condition[]}} Clauses
 * @typedef {Cond | Clauses} Condition
 * @typedef {{status: number, data: any}} Result  What every request promise resolves to.
 */

const OPERATORS = {
  '!=': '$ne', '>': '$gt', '<': '$lt', '>=': '$gte', '<=': '$lte', in: '$in', notIn: '$nin',
};

/**
 * One condition: `cond('age', '>=', 18)`. Operators: `== != > < >= <= in notIn`.
 * @param {string} f1 field (dotted paths allowed)
 * @param {string} op
 * @param {any} f2 value
 * @returns {Cond}
 */
export function cond(f1, op, f2) {
  if (op !== '==' && !(op in OPERATORS)) throw new Error(`cond: unknown operator ${JSON.stringify(op)}`);
  return { type: 'cond', f1, op, f2 };
}

/** All of the conditions. @param {...Condition} clauses @returns {Clauses} */
export function and(...clauses) {
  return { type: 'and', clauses };
}

/** Any of the conditions. @param {...Condition} clauses @returns {Clauses} */
export function or(...clauses) {
  return { type: 'or', clauses };
}

const isOperatorMap = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 &&
  Object.keys(v).every((k) => k.startsWith('$'));

/** Merge `extra` into the find object `into` (an `and`): operator maps on one field merge. */
function mergeFind(into, extra) {
  for (const [key, value] of Object.entries(extra)) {
    if (!(key in into)) {
      into[key] = value;
    } else if (key === '$or') {
      // two ors in one and: both must hold
      into.$and = [...(into.$and || []), { $or: into.$or }, { $or: value }];
      delete into.$or;
    } else if (key === '$and') {
      into.$and = [...into.$and, ...value];
    } else {
      const a = isOperatorMap(into[key]) ? into[key] : { $eq: into[key] };
      const b = isOperatorMap(value) ? value : { $eq: value };
      into[key] = { ...a, ...b };
    }
  }
  return into;
}

/**
 * The Mongo-style `find` object for a condition, exactly as space-api 0.12.1 builds it:
 * `==` → `{f: v}`, `!=` → `{f: {$ne: v}}`, `> < >= <=` → `$gt $lt $gte $lte`, `in` → `$in`,
 * `notIn` → `$nin`; `and` merges into one object (operator maps on one field merge), `or` → `{$or: [...]}`.
 * @param {Condition} condition
 * @returns {Record<string, any>}
 */
export function generateFind(condition) {
  switch (condition.type) {
    case 'and':
      return condition.clauses.reduce((acc, c) => mergeFind(acc, generateFind(c)), {});
    case 'or':
      return { $or: condition.clauses.map(generateFind) };
    case 'cond':
      if (condition.op === '==') return { [condition.f1]: condition.f2 };
      return { [condition.f1]: { [OPERATORS[condition.op]]: condition.f2 } };
    default:
      throw new Error('not a condition: use cond(), and() or or()');
  }
}

/** `where(a, b)` = `and(a, b)`; `where()` = `{}`. @param {Condition[]} conditions */
export function whereToFind(conditions) {
  if (conditions.length === 1) return generateFind(conditions[0]);
  return generateFind(and(...conditions));
}

/**
 * A JSON request. Resolves `{status, data}` whatever the status; rejects only when the network
 * fails or the body is not JSON (as space-api does).
 * @param {import('./space-api.js').API} api
 * @param {string} method
 * @param {string} path  below `/v1/api/<project>`
 * @param {any} [body]
 * @returns {Promise<Result>}
 */
export async function request(api, method, path, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (api.token) headers.Authorization = `Bearer ${api.token}`;
  const init = { method, headers, credentials: 'include' };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`${api.httpBase}/v1/api/${encodeURIComponent(api.projectId)}${path}`, init);
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : {} };
}

/** Shared by every CRUD builder: the collection, the endpoint and the batch form. */
class Builder {
  /** @param {DB} db @param {string} col @param {string} kind @param {string} op */
  constructor(db, col, kind, op) {
    this.db = db;
    this.collection = col;
    this.type = kind;
    /** @type {Record<string, any>} the request body */
    this.params = { op };
  }

  /** Send the request. @returns {Promise<Result>} */
  apply() {
    const path = `/crud/${encodeURIComponent(this.db.alias)}/${encodeURIComponent(this.collection)}/${this.type}`;
    return request(this.db.api, 'POST', path, this.body());
  }

  /** @returns {Record<string, any>} */
  body() {
    return this.params;
  }
}

/** `db.get(col)`: read. */
export class Get extends Builder {
  constructor(db, col, op = 'all') {
    super(db, col, 'read', op);
    this.params.find = {};
    this.params.options = {};
  }

  /** @param {...Condition} conditions @returns {this} */
  where(...conditions) {
    this.params.find = whereToFind(conditions);
    return this;
  }

  /** @param {Record<string, 0|1>} select e.g. `{text: 1}` @returns {this} */
  select(select) {
    this.params.options.select = select;
    return this;
  }

  /** `sort('a', '-b')` → `{a: 1, b: -1}`. @param {...string} fields @returns {this} */
  sort(...fields) {
    this.params.options.sort = Object.fromEntries(
      fields.map((f) => (f.startsWith('-') ? [f.slice(1), -1] : [f, 1])));
    return this;
  }

  /** @param {number} n @returns {this} */
  skip(n) {
    this.params.options.skip = n;
    return this;
  }

  /** @param {number} n @returns {this} */
  limit(n) {
    this.params.options.limit = n;
    return this;
  }

  /** Read one document. @returns {Promise<Result>} */
  one() {
    this.params.op = 'one';
    return this.apply();
  }

  /** Read every matching document. @returns {Promise<Result>} */
  all() {
    this.params.op = 'all';
    return this.apply();
  }

  /** Count the matching documents. @returns {Promise<Result>} */
  count() {
    this.params.op = 'count';
    return this.apply();
  }

  /** The distinct values of `key`. @param {string} key @returns {Promise<Result>} */
  distinct(key) {
    this.params.op = 'distinct';
    this.params.options.distinct = key;
    return this.apply();
  }

  body() {
    const options = { ...this.params.options };
    if (options.skip !== undefined && options.limit === undefined) options.limit = 20; // as space-api
    return { ...this.params, options };
  }
}

/** `db.insert(col)`: create. */
export class Insert extends Builder {
  constructor(db, col) {
    super(db, col, 'create', 'one');
  }

  /** @param {Record<string, any>} doc @returns {this} */
  doc(doc) {
    this.params.op = 'one';
    this.params.doc = doc;
    return this;
  }

  /** @param {Record<string, any>[]} docs @returns {this} */
  docs(docs) {
    this.params.op = 'all';
    this.params.doc = docs;
    return this;
  }

  /** Insert one document now. @param {Record<string, any>} doc @returns {Promise<Result>} */
  one(doc) {
    return this.doc(doc).apply();
  }

  /** Insert documents now. @param {Record<string, any>[]} docs @returns {Promise<Result>} */
  all(docs) {
    return this.docs(docs).apply();
  }
}

/** `db.update(col)` (op all), `db.updateOne(col)`, `db.upsert(col)`. */
export class Update extends Builder {
  constructor(db, col, op = 'all') {
    super(db, col, 'update', op);
    this.params.find = {};
    this.params.update = {};
  }

  /** @param {...Condition} conditions @returns {this} */
  where(...conditions) {
    this.params.find = whereToFind(conditions);
    return this;
  }

  _op(name, value) {
    this.params.update[name] = { ...(this.params.update[name] || {}), ...value };
    return this;
  }

  /** `$set`. @param {Record<string, any>} obj @returns {this} */
  set(obj) { return this._op('$set', obj); }
  /** `$push`. @param {Record<string, any>} obj @returns {this} */
  push(obj) { return this._op('$push', obj); }
  /** `$unset` of the fields. @param {...string} fields @returns {this} */
  remove(...fields) { return this._op('$unset', Object.fromEntries(fields.map((f) => [f, '']))); }
  /** `$rename` `{old: 'new'}`. @param {Record<string, string>} obj @returns {this} */
  rename(obj) { return this._op('$rename', obj); }
  /** `$inc`. @param {Record<string, number>} obj @returns {this} */
  inc(obj) { return this._op('$inc', obj); }
  /** `$mul`. @param {Record<string, number>} obj @returns {this} */
  mul(obj) { return this._op('$mul', obj); }
  /** `$max`. @param {Record<string, any>} obj @returns {this} */
  max(obj) { return this._op('$max', obj); }
  /** `$min`. @param {Record<string, any>} obj @returns {this} */
  min(obj) { return this._op('$min', obj); }
  /** `$currentDate` as timestamps. @param {...string} fields @returns {this} */
  currentTimestamp(...fields) {
    return this._op('$currentDate', Object.fromEntries(fields.map((f) => [f, { $type: 'timestamp' }])));
  }
  /** `$currentDate` as dates. @param {...string} fields @returns {this} */
  currentDate(...fields) {
    return this._op('$currentDate', Object.fromEntries(fields.map((f) => [f, { $type: 'date' }])));
  }
}

/** `db.delete(col)` (op all), `db.deleteOne(col)`. */
export class Delete extends Builder {
  constructor(db, col, op = 'all') {
    super(db, col, 'delete', op);
    this.params.find = {};
  }

  /** @param {...Condition} conditions @returns {this} */
  where(...conditions) {
    this.params.find = whereToFind(conditions);
    return this;
  }
}

/** `db.aggr(col)` (op all), `db.aggrOne(col)`. */
export class Aggregate extends Builder {
  constructor(db, col, op = 'all') {
    super(db, col, 'aggr', op);
    this.params.pipe = [];
  }

  /** A Mongo pipeline (`$match $group $sort $skip $limit $project`). @param {object[]} pipe @returns {this} */
  pipe(pipe) {
    this.params.pipe = pipe;
    return this;
  }
}

/** `db.beginBatch()`: creates, updates and deletes in one transaction. */
export class Batch {
  /** @param {DB} db */
  constructor(db) {
    this.db = db;
    /** @type {object[]} */
    this.reqs = [];
  }

  /** @param {Insert | Update | Delete} builder @returns {this} */
  add(builder) {
    if (!['create', 'update', 'delete'].includes(builder.type)) {
      throw new Error('a batch takes insert, update and delete requests');
    }
    this.reqs.push({ type: builder.type, col: builder.collection, ...builder.body() });
    return this;
  }

  /** @returns {Promise<Result>} */
  apply() {
    return request(this.db.api, 'POST', `/crud/${encodeURIComponent(this.db.alias)}/batch`, { reqs: this.reqs });
  }
}

/** One database of the project, by alias (`api.DB('sqlite')`, `api.Mongo()`, ...). */
export class DB {
  /**
   * @param {import('./space-api.js').API} api
   * @param {string} alias the `<alias>` in `/crud/<alias>/...`
   */
  constructor(api, alias) {
    this.api = api;
    this.alias = alias;
  }

  /** @param {string} col */ get(col) { return new Get(this, col, 'all'); }
  /** @param {string} col */ getOne(col) { return new Get(this, col, 'one'); }
  /** @param {string} col */ count(col) { return new Get(this, col, 'count'); }
  /** @param {string} col */ distinct(col) { return new Get(this, col, 'distinct'); }
  /** @param {string} col */ insert(col) { return new Insert(this, col); }
  /** @param {string} col */ update(col) { return new Update(this, col, 'all'); }
  /** @param {string} col */ updateOne(col) { return new Update(this, col, 'one'); }
  /** @param {string} col */ upsert(col) { return new Update(this, col, 'upsert'); }
  /** @param {string} col */ delete(col) { return new Delete(this, col, 'all'); }
  /** @param {string} col */ deleteOne(col) { return new Delete(this, col, 'one'); }
  /** @param {string} col */ aggr(col) { return new Aggregate(this, col, 'all'); }
  /** @param {string} col */ aggrOne(col) { return new Aggregate(this, col, 'one'); }
  beginBatch() { return new Batch(this); }

  /**
   * A live query on a collection (see realtime.js).
   * @param {string} col
   * @returns {import('./realtime.js').LiveQuery}
   */
  liveQuery(col) {
    return this.api._liveQuery(this, col);
  }

  _auth(method, path, body) {
    return request(this.api, method, `/auth/${encodeURIComponent(this.alias)}${path}`, body);
  }

  /**
   * Email sign-in. Resolves `{status: 200, data: {user, token}}`; 404 unknown user, 401 wrong password.
   * Call `api.setToken(data.token)` afterwards.
   * @param {string} email @param {string} pass @returns {Promise<Result>}
   */
  signIn(email, pass) {
    return this._auth('POST', '/email/signin', { email, pass });
  }

  /**
   * Email sign-up. Resolves `{status: 200, data: {user, token}}`; 409 if the email is taken.
   * @param {string} email @param {string} name @param {string} pass @param {string} [role='user']
   * @returns {Promise<Result>}
   */
  signUp(email, name, pass, role = 'user') {
    return this._auth('POST', '/email/signup', { email, name, pass, role });
  }

  /** @param {string} id @returns {Promise<Result>} `{user}` */
  profile(id) {
    return this._auth('GET', `/profile/${encodeURIComponent(id)}`);
  }

  /** @returns {Promise<Result>} `{users}` */
  profiles() {
    return this._auth('GET', '/profiles');
  }

  /**
   * Change email, name and/or password (empty values are left alone).
   * @param {string} id @param {string} [email] @param {string} [name] @param {string} [pass]
   * @returns {Promise<Result>} `{user}`
   */
  editProfile(id, email, name, pass) {
    const set = {};
    if (email) set.email = email;
    if (name) set.name = name;
    if (pass) set.pass = pass;
    return this._auth('PUT', `/edit_profile/${encodeURIComponent(id)}`, { update: { $set: set } });
  }
}
