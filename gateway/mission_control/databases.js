// The Databases tab: each alias (type, connected or not, latency, as this gateway and the db workers see
// it) and its collections (realtime, typed or schemaless, document count); adding or changing an alias,
// with its connection tested before it is saved; removing one (its data stays in the database).
//   GET    /v1/api/config/projects/{project}/databases
//   POST   .../databases/{alias}/test      PUT .../databases/{alias}      DELETE .../databases/{alias}
// and GET /v1/api/health for the workers' view of each alias, when the server has it.

import { SessionExpired, api, enc, probe, projectPath } from './api.js';
import { $, card, field, h, isObject, select, setText } from './dom.js';

const TYPES = ['sqlite', 'postgres', 'mysql', 'mongo'];
let ctx = null;
let seq = 0;
const els = {};

function build() {
  els.list = h('div', { id: 'databases-list' }, h('p', { class: 'muted', text: 'Loading…' }));
  els.alias = h('input', { id: 'db-alias', autocomplete: 'off', required: true, placeholder: 'e.g. main' });
  els.type = select(TYPES, 'sqlite', { id: 'db-type' });
  els.conn = h('input', { id: 'db-conn', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'postgresql://user:pass@host:5432/db, or $DATABASE_URL' });
  els.database = h('input', { id: 'db-database', autocomplete: 'off', placeholder: 'Mongo only, when the URI names none' });
  els.test = h('button', { type: 'button', class: 'btn ghost', id: 'db-test', text: 'Test connection', onclick: () => submit(false) });
  els.save = h('button', { type: 'submit', class: 'btn primary', id: 'db-save', text: 'Test and save' });
  els.result = h('div', { id: 'db-result', class: 'result', role: 'status', hidden: true });
  const form = h('form', { id: 'db-form', class: 'stack', novalidate: true, onsubmit: (e) => { e.preventDefault(); submit(true); } },
    h('div', { class: 'row' }, field('Alias', els.alias), field('Type', els.type)),
    field('Connection', els.conn, 'A $VARIABLE is read from the server\'s environment. A relative SQLite path is relative to the config file.'),
    field('Database', els.database),
    h('div', { class: 'editor-bar' }, els.save, els.test),
    els.result);
  $('panel-databases').replaceChildren(
    card('Databases', 'Each alias of modules.crud, asked now. Counts are of the configured collections.', els.list),
    card('Add or change a database', 'The connection is tested from this gateway first; nothing is saved if it fails. An existing alias keeps its collections and rules.', form));
}

function spec() {
  const body = { type: els.type.value, conn: els.conn.value.trim() };
  if (els.database.value.trim()) body.database = els.database.value.trim();
  return body;
}

function say(ok, text) {
  els.result.className = ok ? 'result ok' : 'result error';
  setText(els.result, text);
}

async function submit(saveIt) {
  const alias = els.alias.value.trim();
  if (!alias || !els.conn.value.trim()) {
    say(false, 'Give the alias and the connection.');
    return;
  }
  const button = saveIt ? els.save : els.test;
  button.disabled = true;
  setText(els.result, '');
  const project = ctx.projectId();
  try {
    if (saveIt) {
      const reply = await api(projectPath(project, `databases/${enc(alias)}`), { method: 'PUT', body: spec() });
      await ctx.reload(project);
      say(true, `Saved and applied: ${alias} answered in ${reply.latencyMs} ms.`);
    } else {
      const reply = await api(projectPath(project, `databases/${enc(alias)}/test`), { method: 'POST', body: spec() });
      say(reply.ok, reply.ok ? `Connected in ${reply.latencyMs} ms.` : `Cannot connect: ${reply.error}`);
    }
  } catch (err) {
    if (!(err instanceof SessionExpired)) say(false, err.message);
  } finally {
    button.disabled = false;
  }
}

function edit(alias) {
  const raw = ctx.project()?.modules?.crud?.[alias];
  const db = isObject(raw) ? raw : {};
  els.alias.value = alias;
  els.type.value = TYPES.includes(db.type) ? db.type : ({ 'sql-postgres': 'postgres', 'sql-mysql': 'mysql' }[db.type || alias] || 'sqlite');
  els.conn.value = typeof db.conn === 'string' ? db.conn : '';
  els.database.value = typeof db.database === 'string' ? db.database : '';
  setText(els.result, '');
  els.conn.focus();
}

function remove(alias) {
  ctx.confirm({
    title: `Remove ${alias}?`,
    message: `This takes ${alias} out of the config; the project stops serving it at once. Its data stays in the database.`,
    ok: 'Remove',
    action: async () => {
      await api(projectPath(ctx.projectId(), `databases/${enc(alias)}`), { method: 'DELETE' });
      await ctx.reload(ctx.projectId());
    },
  });
}

function status(db, workers) {
  const parts = [];
  if (!db.enabled) return h('span', { class: 'state off', text: 'disabled' });
  if (db.connected === true) parts.push(h('span', { class: 'state on', text: `connected · ${db.latencyMs} ms` }));
  else if (db.connected === false) parts.push(h('span', { class: 'state bad', text: 'not connected' }), h('div', { class: 'small error-text', text: db.error }));
  else parts.push(h('span', { class: 'state off', text: 'unknown (no collection to ask)' }));
  if (workers) parts.push(h('div', { class: 'muted small', text: `workers: ${workers.state}${workers.reason ? ` (${workers.reason})` : ''}` }));
  return h('div', {}, parts);
}

function render(dbs, health) {
  if (dbs.length === 0) {
    els.list.replaceChildren(h('p', { class: 'muted', text: 'No database configured. Add one below.' }));
    return;
  }
  const seen = new Map((Array.isArray(health?.databases) ? health.databases : [])
    .filter((d) => d.project === ctx.projectId()).map((d) => [d.alias, d]));
  els.list.replaceChildren(...dbs.map((db) => h('div', { class: 'db', 'data-alias': db.alias },
    h('div', { class: 'db-head' },
      h('div', {}, h('span', { class: 'mono strong', text: db.alias }), ' ', h('span', { class: 'tag', text: db.type })),
      status(db, seen.get(db.alias)),
      h('div', { class: 'head-actions' },
        h('button', { type: 'button', class: 'btn ghost small', text: 'Change', onclick: () => edit(db.alias) }),
        h('button', { type: 'button', class: 'btn danger small', text: 'Remove', onclick: () => remove(db.alias) }))),
    (db.collections || []).length === 0
      ? h('p', { class: 'muted small', text: db.default ? 'No collection listed: every collection uses the default rules.' : 'No collection listed.' })
      : h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
        h('thead', {}, h('tr', {}, ['Collection', 'Storage', 'Realtime', 'Documents', ''].map((t) => h('th', { text: t })))),
        h('tbody', {}, db.collections.map((c) => h('tr', { 'data-collection': c.name },
          h('td', { class: 'mono strong', text: c.name }),
          h('td', { text: c.typed ? 'typed table' : 'schemaless' }),
          h('td', {}, h('span', { class: c.realtime ? 'state on' : 'state off', text: c.realtime ? 'on' : 'off' })),
          h('td', { class: 'metric', text: c.count === null || c.count === undefined ? (c.error ? 'error' : '—') : String(c.count), title: c.error || null }),
          h('td', {}, db.enabled ? h('button', { type: 'button', class: 'btn ghost small', text: 'Browse',
            onclick: () => ctx.go('data', { alias: db.alias, col: c.name }) }) : null)))))))));
}

async function load() {
  const mine = ++seq;
  const project = ctx.projectId();
  try {
    const [reply, health] = await Promise.all([api(projectPath(project, 'databases')), probe('/v1/api/health')]);
    if (mine !== seq) return;
    render(reply.databases || [], health.json);
  } catch (err) {
    if (err instanceof SessionExpired || mine !== seq) return;
    els.list.replaceChildren(h('p', { class: 'error', text: `Cannot read the databases: ${err.message}` }));
  }
}

export default {
  tab: 'databases',
  init(context) {
    ctx = context;
    build();
  },
  reset() {
    seq += 1;
    els.list.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
  },
  open() { load(); },
  close() { seq += 1; },
};
