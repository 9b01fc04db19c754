// The Data tab: browse a collection of any database alias with a `where` (a small builder, or raw JSON),
// a sort and pages; open a document, edit or delete it, insert one. Every write goes through the same core
// as the API, as the admin (POST /v1/api/config/projects/{project}/data/{alias}/{col}/{read|create|update|delete}),
// and the grid follows the collection's change stream (GET .../data/{alias}/{col}/changes): it reloads when
// anyone writes.

import { SessionExpired, api, enc, follow, projectPath } from './api.js';
import {
  $, collections, debounce, enabledAliases, field, h, isObject, parseJson, pretty, preview, select, setText,
} from './dom.js';

const OPS = [['$eq', '='], ['$ne', '≠'], ['$gt', '>'], ['$gte', '≥'], ['$lt', '<'], ['$lte', '≤'], ['$in', 'in'], ['$nin', 'not in']];
const SIZES = [10, 25, 50, 100];

let ctx = null;
const els = {};
const st = {
  project: null, alias: '', col: '', raw: false, conditions: [], sort: null, skip: 0, limit: 25,
  docs: [], count: 0, idField: 'id', seq: 0, changed: new Set(), live: null, retry: 0, open: false,
  editing: null, // the document open in the dialog (null: a new one)
};

// ---------------------------------------------------------------- layout

function build() {
  els.alias = select([], undefined, { id: 'data-alias', 'aria-label': 'Database' });
  els.col = h('input', { id: 'data-col', list: 'data-cols', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'collection', 'aria-label': 'Collection' });
  els.cols = h('datalist', { id: 'data-cols' });
  els.open = h('button', { type: 'submit', class: 'btn primary', id: 'data-open', text: 'Open' });
  els.conditions = h('div', { id: 'data-conditions', class: 'conditions' });
  els.where = h('textarea', { id: 'data-where', class: 'editor compact short', spellcheck: 'false', hidden: true,
    'aria-label': 'Where (JSON)', value: '{}' });
  els.mode = h('button', { type: 'button', class: 'btn ghost small', id: 'data-where-mode', text: 'Raw JSON', onclick: toggleRaw });
  els.add = h('button', { type: 'button', class: 'btn ghost small', id: 'data-add-condition', text: '+ Condition',
    onclick: () => { addCondition(); els.conditions.lastElementChild?.querySelector('input')?.focus(); } });
  els.sortField = h('input', { id: 'data-sort', autocomplete: 'off', placeholder: 'field', 'aria-label': 'Sort by' });
  els.sortDir = select([['1', 'ascending'], ['-1', 'descending']], '1', { id: 'data-sort-dir', 'aria-label': 'Sort direction' });
  els.size = select(SIZES.map((n) => [String(n), `${n} per page`]), '25', { id: 'data-size', 'aria-label': 'Page size' });
  els.error = h('p', { class: 'error', id: 'data-error', role: 'alert', hidden: true });
  els.live = h('span', { class: 'live-state', id: 'data-live', text: '' });
  els.flash = h('span', { class: 'muted small', id: 'data-flash', role: 'status' });
  els.range = h('span', { class: 'muted small', id: 'data-range' });
  els.prev = h('button', { type: 'button', class: 'btn ghost small', id: 'data-prev', text: '← Prev', onclick: () => page(-1) });
  els.next = h('button', { type: 'button', class: 'btn ghost small', id: 'data-next', text: 'Next →', onclick: () => page(1) });
  els.insert = h('button', { type: 'button', class: 'btn ghost', id: 'data-insert', text: 'Insert document', onclick: () => openDoc(null) });
  els.grid = h('div', { class: 'table-wrap grid-wrap', id: 'data-grid' });

  const form = h('form', { id: 'data-form', class: 'stack', novalidate: true, onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'row' }, field('Database', els.alias), field('Collection', els.col), els.cols),
    h('div', { class: 'where' }, h('div', { class: 'where-head' }, h('span', { class: 'label', text: 'Where' }), els.add, els.mode),
      els.conditions, els.where),
    h('div', { class: 'row' }, field('Sort by', els.sortField), field('Direction', els.sortDir), field('Page', els.size)),
    h('div', { class: 'editor-bar' }, els.open, els.insert, els.live, els.flash));
  $('panel-data').replaceChildren(
    h('div', { class: 'card' }, form),
    h('div', { class: 'card' }, els.error,
      h('div', { class: 'pager' }, els.range, h('span', { class: 'spacer' }), els.prev, els.next),
      els.grid));
  els.alias.addEventListener('change', () => { fillCols(); });
  els.size.addEventListener('change', apply);

  $('doc-close').addEventListener('click', () => $('doc-dialog').close());
  $('doc-save').addEventListener('click', saveDoc);
  $('doc-delete').addEventListener('click', deleteDoc);
  $('doc-editor').addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') { e.preventDefault(); saveDoc(); }
  });
}

function fillCols() {
  const project = ctx.project();
  els.cols.replaceChildren(...collections(project, els.alias.value).map((c) => h('option', { value: c })));
}

// ---------------------------------------------------------------- where

function parseValue(text, op) {
  const t = text.trim();
  if (op === '$in' || op === '$nin') {
    if (t.startsWith('[')) { const p = parseJson(t, { object: false }); return p.error ? p : { value: p.value }; }
    return { value: t ? t.split(',').map((x) => parseValue(x, '$eq').value) : [] };
  }
  if (t === '') return { value: '' };
  try { return { value: JSON.parse(t) }; } catch { return { value: text }; }
}

function addCondition(cond = { field: '', op: '$eq', value: '' }) {
  const fieldIn = h('input', { class: 'cond-field', value: cond.field, placeholder: 'field', 'aria-label': 'Field', autocomplete: 'off' });
  const opSel = select(OPS, cond.op, { class: 'cond-op', 'aria-label': 'Operator' });
  const valueIn = h('input', { class: 'cond-value', value: cond.value, placeholder: 'value (JSON or text)', 'aria-label': 'Value', autocomplete: 'off' });
  const row = h('div', { class: 'condition' }, fieldIn, opSel, valueIn,
    h('button', { type: 'button', class: 'btn ghost small', text: '×', 'aria-label': 'Remove condition',
      onclick: () => { row.remove(); } }));
  els.conditions.append(row);
}

function builderWhere() {
  const find = {};
  for (const row of els.conditions.querySelectorAll('.condition')) {
    const name = row.querySelector('.cond-field').value.trim();
    if (!name) continue;
    const op = row.querySelector('.cond-op').value;
    const parsed = parseValue(row.querySelector('.cond-value').value, op);
    if (parsed.error) return { error: `${name}: ${parsed.error}` };
    find[name] = { ...(isObject(find[name]) ? find[name] : {}), [op]: parsed.value };
  }
  return { value: find };
}

function toggleRaw() {
  if (!st.raw) {
    const built = builderWhere();
    els.where.value = pretty(built.value || {});
  } else {
    const parsed = parseJson(els.where.value);
    if (parsed.error) { setText(els.error, parsed.error); return; }
    const simple = Object.entries(parsed.value).every(([k, v]) => !k.startsWith('$') &&
      (!isObject(v) || Object.keys(v).every((op) => OPS.some(([o]) => o === op))));
    if (!simple) { setText(els.error, 'The builder shows field/operator conditions only ($or, $and and other operators are not): keep editing it as JSON.'); return; }
    els.conditions.replaceChildren();
    for (const [name, cond] of Object.entries(parsed.value)) {
      for (const [op, v] of Object.entries(isObject(cond) ? cond : { $eq: cond })) {
        addCondition({ field: name, op, value: typeof v === 'string' ? v : JSON.stringify(v) });
      }
    }
  }
  st.raw = !st.raw;
  els.where.hidden = !st.raw;
  els.conditions.hidden = st.raw;
  els.add.hidden = st.raw;
  els.mode.textContent = st.raw ? 'Builder' : 'Raw JSON';
  setText(els.error, '');
}

function where() {
  return st.raw ? parseJson(els.where.value) : builderWhere();
}

// ---------------------------------------------------------------- reading

function apply() {
  st.skip = 0;
  st.limit = Number(els.size.value) || 25;
  const name = els.sortField.value.trim();
  st.sort = name ? { [name]: Number(els.sortDir.value) } : null;
  const changedTarget = st.alias !== els.alias.value || st.col !== els.col.value.trim();
  st.alias = els.alias.value;
  st.col = els.col.value.trim();
  if (changedTarget) st.changed.clear();
  if (changedTarget || !st.live) startLive();
  load();
}

function page(step) {
  const next = st.skip + step * st.limit;
  if (next < 0 || (step > 0 && next >= st.count)) return;
  st.skip = next;
  load();
}

async function load({ quiet = false } = {}) {
  if (!st.alias || !st.col) {
    els.grid.replaceChildren(h('p', { class: 'muted', text: 'Pick a database and a collection.' }));
    els.range.textContent = '';
    return;
  }
  const w = where();
  if (w.error) { setText(els.error, w.error); return; }
  const mine = ++st.seq;
  const options = { skip: st.skip, limit: st.limit };
  if (st.sort) options.sort = st.sort;
  try {
    const reply = await api(projectPath(ctx.projectId(), `data/${enc(st.alias)}/${enc(st.col)}/read`),
      { method: 'POST', body: { find: w.value, options } });
    if (mine !== st.seq) return;
    st.docs = Array.isArray(reply.result) ? reply.result : [];
    st.count = Number(reply.count) || 0;
    st.idField = reply.idField || 'id';
    if (!quiet) setText(els.error, '');
    render();
  } catch (err) {
    if (err instanceof SessionExpired || mine !== st.seq) return;
    setText(els.error, err.message);
  }
}

function columns(docs, id) {
  const seen = new Set([id]);
  for (const d of docs) for (const k of Object.keys(d)) seen.add(k);
  return [...seen].slice(0, 12);
}

function render() {
  const cols = columns(st.docs, st.idField);
  const from = st.count === 0 ? 0 : st.skip + 1;
  els.range.textContent = `${from}–${st.skip + st.docs.length} of ${st.count}`;
  els.prev.disabled = st.skip === 0;
  els.next.disabled = st.skip + st.docs.length >= st.count;
  if (st.docs.length === 0) {
    els.grid.replaceChildren(h('p', { class: 'muted', id: 'data-empty', text: 'No document matches.' }));
    return;
  }
  const sortedBy = st.sort ? Object.keys(st.sort)[0] : null;
  const head = h('tr', {}, cols.map((c) => h('th', {},
    h('button', { type: 'button', class: 'th-sort', text: c + (c === sortedBy ? (st.sort[c] > 0 ? ' ↑' : ' ↓') : ''),
      title: `Sort by ${c}`, onclick: () => sortBy(c) }))));
  const rows = st.docs.map((doc) => {
    const id = doc[st.idField];
    const tr = h('tr', { tabindex: 0, class: st.changed.has(String(id)) ? 'doc changed' : 'doc', 'data-id': String(id),
      onclick: () => openDoc(doc), onkeydown: (e) => { if (e.key === 'Enter') openDoc(doc); } },
    cols.map((c) => h('td', { class: c === st.idField ? 'mono strong' : 'mono', text: preview(doc[c]) })));
    return tr;
  });
  els.grid.replaceChildren(h('table', { class: 'table grid', id: 'data-table' }, h('thead', {}, head), h('tbody', {}, rows)));
}

function sortBy(c) {
  const dir = st.sort && st.sort[c] === 1 ? -1 : 1;
  els.sortField.value = c;
  els.sortDir.value = String(dir);
  st.sort = { [c]: dir };
  st.skip = 0;
  load();
}

// ---------------------------------------------------------------- live

function stopLive() {
  if (st.live) st.live.abort();
  st.live = null;
  clearTimeout(st.retry);
}

const reloadSoon = debounce(() => load({ quiet: true }), 250);

function startLive() {
  stopLive();
  if (!st.open || !st.alias || !st.col) { els.live.textContent = ''; return; }
  const controller = new AbortController();
  st.live = controller;
  let wait = 1000;
  const target = `${st.alias}/${st.col}`;
  const path = projectPath(ctx.projectId(), `data/${enc(st.alias)}/${enc(st.col)}/changes`);
  const run = async () => {
    try {
      await follow(path, (line) => {
        if (line.type === 'ready') {
          els.live.className = 'live-state on';
          els.live.textContent = 'live';
          wait = 1000;
        } else if (['insert', 'update', 'delete', 'overflow'].includes(line.type)) {
          if (line.id !== undefined) st.changed.add(String(line.id));
          els.flash.textContent = `${target} changed at ${new Date().toLocaleTimeString()}`;
          reloadSoon();
        }
      }, controller.signal);
    } catch (err) {
      if (controller.signal.aborted || err instanceof SessionExpired) return;
      els.live.className = 'live-state off';
      els.live.textContent = `not live: ${err.message || 'the change stream failed'}; retrying`;
      wait = Math.min(wait * 2, 30000);
    }
    if (!controller.signal.aborted) st.retry = setTimeout(run, wait);
  };
  els.live.className = 'live-state';
  els.live.textContent = 'connecting…';
  run();
}

// ---------------------------------------------------------------- one document

function openDoc(doc) {
  st.editing = doc;
  const isNew = doc === null;
  $('doc-title').textContent = isNew ? `New document in ${st.col}` : `${st.col} / ${doc[st.idField]}`;
  $('doc-hint').textContent = isNew
    ? `Leave out ${st.idField} to have one generated.`
    : `Edit the JSON and save: changed fields are set, removed ones unset. ${st.idField} cannot change. Ctrl+S saves.`;
  $('doc-editor').value = pretty(isNew ? {} : doc);
  $('doc-delete').hidden = isNew;
  $('doc-save').textContent = isNew ? 'Insert' : 'Save';
  setText($('doc-error'), '');
  $('doc-dialog').showModal();
  $('doc-editor').focus();
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function saveDoc() {
  const parsed = parseJson($('doc-editor').value);
  if (parsed.error) { setText($('doc-error'), parsed.error); return; }
  const doc = st.editing;
  const base = projectPath(ctx.projectId(), `data/${enc(st.alias)}/${enc(st.col)}`);
  let request;
  if (doc === null) {
    request = [`${base}/create`, { op: 'one', doc: parsed.value }];
  } else {
    const next = parsed.value;
    const id = doc[st.idField];
    if (st.idField in next && !same(next[st.idField], id)) { setText($('doc-error'), `${st.idField} cannot change.`); return; }
    const set = Object.fromEntries(Object.entries(next).filter(([k, v]) => k !== st.idField && !same(v, doc[k])));
    const unset = Object.fromEntries(Object.keys(doc).filter((k) => k !== st.idField && !(k in next)).map((k) => [k, '']));
    const update = {};
    if (Object.keys(set).length) update.$set = set;
    if (Object.keys(unset).length) update.$unset = unset;
    if (!Object.keys(update).length) { setText($('doc-error'), 'Nothing changed.'); return; }
    request = [`${base}/update`, { op: 'one', find: { [st.idField]: id }, update }];
  }
  $('doc-save').disabled = true;
  try {
    await api(request[0], { method: 'POST', body: request[1] });
    $('doc-dialog').close();
    await load();
  } catch (err) {
    if (!(err instanceof SessionExpired)) setText($('doc-error'), err.message);
  } finally {
    $('doc-save').disabled = false;
  }
}

async function deleteDoc() {
  const doc = st.editing;
  if (!doc) return;
  const id = doc[st.idField];
  const done = await ctx.confirm({
    title: 'Delete this document?',
    message: `${st.col} / ${id} is deleted for good, as a delete through the API would.`,
    action: () => api(projectPath(ctx.projectId(), `data/${enc(st.alias)}/${enc(st.col)}/delete`),
      { method: 'POST', body: { op: 'one', find: { [st.idField]: id } } }),
  });
  if (done) {
    $('doc-dialog').close();
    await load();
  }
}

// ---------------------------------------------------------------- the view

export default {
  tab: 'data',
  init(context) {
    ctx = context;
    build();
  },
  reset(project) {
    if (!project) return;
    const same = st.project === project.id;
    st.project = project.id;
    const list = enabledAliases(project);
    const keep = same && list.includes(els.alias.value) ? els.alias.value : list[0] || '';
    els.alias.replaceChildren(...list.map((a) => h('option', { value: a, text: a })));
    els.alias.value = keep;
    fillCols();
    if (!same) {
      stopLive();
      Object.assign(st, { alias: '', col: '', skip: 0, docs: [], count: 0, sort: null });
      st.changed.clear();
      els.col.value = collections(project, keep)[0] || '';
      els.conditions.replaceChildren();
      els.where.value = '{}';
      els.sortField.value = '';
      els.grid.replaceChildren();
      els.range.textContent = '';
      els.flash.textContent = '';
      setText(els.error, '');
    }
  },
  open(_project, opts = {}) {
    st.open = true;
    if (opts.alias) els.alias.value = opts.alias;
    if (opts.col) els.col.value = opts.col;
    fillCols();
    if (els.col.value) apply();
    else load();
  },
  close() {
    st.open = false;
    stopLive();
    els.live.textContent = '';
  },
};
