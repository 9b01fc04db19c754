// The Rules tab: the rule of every collection operation and function, and an editor for one of them (a
// form for the common rule types, JSON for the rest), checked as you type
// (POST /v1/api/config/projects/{project}/rules/validate) and saved through the config write-back:
//   PUT|DELETE .../rules/crud/{alias}/{col}/{op}      PUT|DELETE .../rules/functions/{service}/{func}

import { SessionExpired, api, enc, projectPath } from './api.js';
import {
  $, card, debounce, enabledAliases, field, h, isObject, parseJson, pretty, ruleBadge, select, setText,
} from './dom.js';
import { functionRules } from './overview.js';
import { ruleForm } from './ruleform.js';

const OPS = ['create', 'read', 'update', 'delete', 'aggr'];
let ctx = null;
const els = {};
const st = { project: null, place: null, form: null, json: false, seq: 0 };

function build() {
  els.crud = h('div', { id: 'rules-crud' });
  els.functions = h('div', { id: 'rules-functions' });
  els.editor = h('div', { class: 'card', id: 'rule-editor', hidden: true });
  $('panel-rules').replaceChildren(
    card('Collection rules', 'Pick an operation to edit its rule. A collection that is not listed uses default\'s; no rule denies.', els.crud),
    card('Function rules', 'Who may call each function (no rule denies).', els.functions),
    els.editor);
}

function place(p) {
  return p.kind === 'crud' ? `${p.op} rule of ${p.alias}/${p.col}` : `rule of function ${p.service}.${p.func}`;
}

function savedRule(p) {
  const project = ctx.project();
  if (p.kind === 'crud') {
    const col = project?.modules?.crud?.[p.alias]?.collections?.[p.col];
    return isObject(col) && isObject(col.rules) ? col.rules[p.op] : undefined;
  }
  return functionRules(project?.modules?.functions).find((r) => r.service === p.service && r.fn === p.func)?.rule;
}

function renderLists() {
  const project = ctx.project();
  const aliases = enabledAliases(project);
  els.crud.replaceChildren(...aliases.map((alias) => {
    const db = project.modules.crud[alias];
    const cols = isObject(db?.collections) ? db.collections : {};
    const names = Object.keys(cols).sort((a, b) => (a === 'default') - (b === 'default') || a.localeCompare(b));
    const newCol = h('input', { class: 'new-col', placeholder: 'another collection', autocomplete: 'off', 'aria-label': `Another collection of ${alias}` });
    const newOp = select(OPS, 'read', { class: 'new-op', 'aria-label': 'Operation' });
    const open = h('button', { type: 'button', class: 'btn ghost small', text: 'Edit rule', onclick: () => {
      if (newCol.value.trim()) edit({ kind: 'crud', alias, col: newCol.value.trim(), op: newOp.value });
    } });
    newCol.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); open.click(); } });
    return h('div', { class: 'rules-db', 'data-alias': alias },
      h('h3', {}, h('span', { class: 'mono', text: alias })),
      names.length === 0 ? h('p', { class: 'muted small', text: 'No collection listed: every request is denied until you add a rule.' })
        : h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
          h('thead', {}, h('tr', {}, ['Collection', ...OPS].map((t) => h('th', { text: t })))),
          h('tbody', {}, names.map((col) => {
            const rules = isObject(cols[col]?.rules) ? cols[col].rules : {};
            return h('tr', { 'data-collection': col },
              h('td', { class: 'mono strong', text: col }),
              OPS.map((op) => h('td', {}, h('button', { type: 'button', class: 'rule-cell', 'data-op': op,
                'aria-label': `${op} rule of ${col}`, onclick: () => edit({ kind: 'crud', alias, col, op }) }, ruleBadge(rules[op])))));
          })))),
      h('div', { class: 'row tight' }, newCol, newOp, open));
  }));
  if (aliases.length === 0) els.crud.replaceChildren(h('p', { class: 'muted', text: 'No database configured.' }));

  const rows = functionRules(project?.modules?.functions).filter((r) => r.fn !== '(register)');
  const svc = h('input', { id: 'rules-new-service', placeholder: 'service', autocomplete: 'off', 'aria-label': 'Service' });
  const fn = h('input', { id: 'rules-new-func', placeholder: 'function (or default)', autocomplete: 'off', 'aria-label': 'Function' });
  const open = h('button', { type: 'button', class: 'btn ghost small', id: 'rules-new-function', text: 'Edit rule', onclick: () => {
    if (svc.value.trim() && fn.value.trim()) edit({ kind: 'function', service: svc.value.trim(), func: fn.value.trim() });
  } });
  els.functions.replaceChildren(
    rows.length === 0 ? h('p', { class: 'muted small', text: 'No function rule.' }) : h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
      h('thead', {}, h('tr', {}, ['Service', 'Function', 'Rule'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-function': `${r.service}.${r.fn}` },
        h('td', { class: 'mono strong', text: r.service }), h('td', { class: 'mono', text: r.fn }),
        h('td', {}, h('button', { type: 'button', class: 'rule-cell', 'aria-label': `rule of ${r.service}.${r.fn}`,
          onclick: () => edit({ kind: 'function', service: r.service, func: r.fn }) }, ruleBadge(r.rule)))))))),
    h('div', { class: 'row tight' }, svc, fn, open),
    h('p', { class: 'muted small', text: 'Register rules (who may register a service over a WebSocket) are edited in the config editor.' }));
}

// ---------------------------------------------------------------- the editor

function current() {
  if (st.json) {
    const parsed = parseJson(els.json.value);
    if (parsed.error) throw new Error(parsed.error);
    return parsed.value;
  }
  return st.form.value();
}

const validate = debounce(async () => {
  const mine = ++st.seq;
  let rule;
  try {
    rule = current();
  } catch (err) {
    showProblems([err.message]);
    return;
  }
  try {
    const reply = await api(projectPath(ctx.projectId(), 'rules/validate'), { method: 'POST', body: { rule } });
    if (mine === st.seq) showProblems(reply.problems || []);
  } catch (err) {
    if (!(err instanceof SessionExpired) && mine === st.seq) showProblems([err.message]);
  }
}, 250);

function showProblems(problems) {
  els.problems.replaceChildren(...problems.map((p) => h('li', { text: p })));
  els.problems.hidden = problems.length === 0;
  els.valid.hidden = problems.length !== 0;
}

function setMode(json) {
  if (json === st.json) return;
  if (json) {
    try { els.json.value = pretty(st.form.value()); } catch (err) { showProblems([err.message]); return; }
  } else {
    const parsed = parseJson(els.json.value);
    if (parsed.error) { showProblems([parsed.error]); return; }
    mountForm(parsed.value);
  }
  st.json = json;
  els.formBox.hidden = json;
  els.json.hidden = !json;
  els.formTab.setAttribute('aria-pressed', String(!json));
  els.jsonTab.setAttribute('aria-pressed', String(json));
}

function mountForm(rule) {
  st.form = ruleForm(rule, { aliases: enabledAliases(ctx.project()), onChange: validate });
  els.formBox.replaceChildren(st.form.el);
}

function edit(p) {
  st.place = p;
  st.json = false;
  const saved = savedRule(p);
  const rule = isObject(saved) ? saved : { rule: 'authenticated' };
  els.formBox = h('div', { class: 'rule-form', id: 'rule-form' });
  els.json = h('textarea', { class: 'editor compact', id: 'rule-json', spellcheck: 'false', hidden: true, 'aria-label': 'Rule (JSON)' });
  els.json.addEventListener('input', validate);
  els.formTab = h('button', { type: 'button', class: 'btn ghost small', id: 'rule-mode-form', 'aria-pressed': 'true', text: 'Form', onclick: () => setMode(false) });
  els.jsonTab = h('button', { type: 'button', class: 'btn ghost small', id: 'rule-mode-json', 'aria-pressed': 'false', text: 'JSON', onclick: () => setMode(true) });
  els.problems = h('ul', { class: 'problems', id: 'rule-problems', role: 'alert', hidden: true });
  els.valid = h('p', { class: 'ok-text small', id: 'rule-valid', text: '✓ well formed', hidden: true });
  els.result = h('div', { class: 'result', id: 'rule-result', role: 'status', hidden: true });
  const saveBtn = h('button', { type: 'button', class: 'btn primary', id: 'rule-save', text: 'Save and apply', onclick: save });
  els.editor.replaceChildren(
    h('div', { class: 'card-head' }, h('div', {}, h('h2', { id: 'rule-title', text: `Edit the ${place(p)}` }),
      h('p', { class: 'muted small', text: isObject(saved) ? 'Saved rule shown. Saving applies it at once and writes it to the config file.' : 'There is no rule yet (requests are denied).' })),
    h('div', { class: 'head-actions' }, els.formTab, els.jsonTab)),
    els.formBox, els.json, els.valid, els.problems,
    h('div', { class: 'editor-bar' }, saveBtn,
      h('button', { type: 'button', class: 'btn ghost', id: 'rule-try', text: 'Try in playground', onclick: tryIt }),
      h('button', { type: 'button', class: 'btn danger', id: 'rule-remove', text: 'Remove rule', disabled: !isObject(saved), onclick: removeRule }),
      h('button', { type: 'button', class: 'btn ghost', id: 'rule-close', text: 'Close', onclick: () => { els.editor.hidden = true; } })),
    els.result);
  mountForm(rule);
  els.editor.hidden = false;
  validate();
  els.editor.scrollIntoView({ block: 'nearest' });
  els.editor.querySelector('select, input, textarea')?.focus();
}

function url(p) {
  return p.kind === 'crud'
    ? projectPath(ctx.projectId(), `rules/crud/${enc(p.alias)}/${enc(p.col)}/${enc(p.op)}`)
    : projectPath(ctx.projectId(), `rules/functions/${enc(p.service)}/${enc(p.func)}`);
}

function say(ok, text) {
  els.result.className = ok ? 'result ok' : 'result error';
  setText(els.result, text);
}

async function save() {
  let rule;
  try { rule = current(); } catch (err) { say(false, err.message); return; }
  const p = st.place;
  try {
    const reply = await api(url(p), { method: 'PUT', body: { rule } });
    const copied = reply.copiedFromDefault?.length ? ` (listing it copied default's ${reply.copiedFromDefault.join(', ')}, so those keep working)` : '';
    await ctx.reload(ctx.projectId());
    edit(p);
    say(true, `Saved and applied${copied}.`);
  } catch (err) {
    if (!(err instanceof SessionExpired)) say(false, err.message); // the server's reason, verbatim
  }
}

async function removeRule() {
  const p = st.place;
  const done = await ctx.confirm({
    title: 'Remove this rule?', ok: 'Remove',
    message: `Without the ${place(p)}, every such request is denied.`,
    action: () => api(url(p), { method: 'DELETE' }),
  });
  if (done) {
    await ctx.reload(ctx.projectId());
    edit(p);
    say(true, 'Removed: requests are now denied.');
  }
}

function tryIt() {
  let rule;
  try { rule = current(); } catch (err) { say(false, err.message); return; }
  ctx.go('playground', { target: st.place, rule });
}

export default {
  tab: 'rules',
  init(context) {
    ctx = context;
    build();
  },
  reset(project) {
    if (!project) return;
    if (st.project !== project.id) els.editor.hidden = true;
    st.project = project.id;
    renderLists();
  },
  open() { renderLists(); },
  close() {},
};
