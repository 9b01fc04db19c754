// The Playground tab: would this request, by this caller, be allowed, and why? The rules engine decides
// (POST /v1/api/config/projects/{project}/playground) and explains each step; the request itself never
// runs, and query/func rules are not evaluated unless "run" is ticked.

import { SessionExpired, api, projectPath } from './api.js';
import { callerPicker } from './caller.js';
import {
  $, card, collections, enabledAliases, field, h, parseJson, pretty, select, setText,
} from './dom.js';

const OPS = ['read', 'create', 'update', 'delete', 'aggr'];
const TEMPLATES = {
  read: { find: {} },
  create: { doc: {} },
  update: { find: {}, update: { $set: {} } },
  delete: { find: {} },
  aggr: { pipe: [{ $match: {} }] },
  function: { params: {} },
};

let ctx = null;
let picker = null;
const els = {};
const st = { project: null, draft: null, seq: 0 };

function build() {
  picker = callerPicker(ctx, 'play');
  els.kind = select([['crud', 'A CRUD request'], ['function', 'A function call']], 'crud', { id: 'play-kind', 'aria-label': 'Request kind' });
  els.alias = select([], undefined, { id: 'play-alias', 'aria-label': 'Database' });
  els.col = h('input', { id: 'play-col', list: 'play-cols', autocomplete: 'off', placeholder: 'collection', 'aria-label': 'Collection' });
  els.cols = h('datalist', { id: 'play-cols' });
  els.op = select(OPS, 'read', { id: 'play-op', 'aria-label': 'Operation' });
  els.service = h('input', { id: 'play-service', autocomplete: 'off', placeholder: 'service', 'aria-label': 'Service' });
  els.func = h('input', { id: 'play-func', autocomplete: 'off', placeholder: 'function', 'aria-label': 'Function' });
  els.crudRow = h('div', { class: 'row' }, field('Database', els.alias), field('Collection', els.col), field('Operation', els.op), els.cols);
  els.fnRow = h('div', { class: 'row', hidden: true }, field('Service', els.service), field('Function', els.func));
  els.body = h('textarea', { id: 'play-body', class: 'editor compact', spellcheck: 'false', 'aria-label': 'Request body (JSON)' });
  els.run = h('input', { type: 'checkbox', id: 'play-run' });
  els.draft = h('div', { class: 'notice', id: 'play-draft', hidden: true });
  els.go = h('button', { type: 'submit', class: 'btn primary', id: 'play-go', text: 'Evaluate' });
  els.result = h('div', { id: 'play-result', hidden: true });
  els.error = h('pre', { class: 'result error', id: 'play-error', role: 'alert', hidden: true });
  const form = h('form', { id: 'play-form', class: 'stack', novalidate: true, onsubmit: (e) => { e.preventDefault(); evaluate(); } },
    field('Request', els.kind), els.crudRow, els.fnRow, els.draft,
    field('Body (JSON)', els.body, 'The body the API would get: find / doc / update / pipe, or params for a function. Ctrl+Enter evaluates.'),
    picker.el,
    h('label', { class: 'check' }, els.run, h('span', { text: 'Run query and func rules (they make real reads and calls; nothing else runs)' })),
    h('div', { class: 'editor-bar' }, els.go,
      h('button', { type: 'button', class: 'btn ghost', id: 'play-template', text: 'Template body', onclick: template })),
    els.error);
  $('panel-playground').replaceChildren(
    card('Rules playground', 'Pick a request and a caller: the rules engine says whether it would be allowed, and why. The request is never run.', form),
    els.result);
  els.kind.addEventListener('change', () => { syncKind(); template(); });
  els.op.addEventListener('change', template);
  els.alias.addEventListener('change', fillCols);
  els.body.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); evaluate(); }
  });
}

function fillCols() {
  els.cols.replaceChildren(...collections(ctx.project(), els.alias.value).map((c) => h('option', { value: c })));
}

function syncKind() {
  const fn = els.kind.value === 'function';
  els.crudRow.hidden = fn;
  els.fnRow.hidden = !fn;
}

function template() {
  els.body.value = pretty(TEMPLATES[els.kind.value === 'function' ? 'function' : els.op.value]);
}

function showDraft() {
  els.draft.hidden = !st.draft;
  if (!st.draft) return;
  els.draft.replaceChildren(
    h('strong', { text: 'Trying a draft rule from the rules editor (not saved). ' }),
    h('code', { text: JSON.stringify(st.draft) }), ' ',
    h('button', { type: 'button', class: 'btn ghost small', id: 'play-saved', text: 'Use the saved rule instead',
      onclick: () => { st.draft = null; showDraft(); } }));
}

function target() {
  if (els.kind.value === 'function') {
    return { kind: 'function', service: els.service.value.trim(), func: els.func.value.trim() };
  }
  return { kind: 'crud', alias: els.alias.value, col: els.col.value.trim(), op: els.op.value };
}

async function evaluate() {
  setText(els.error, '');
  const body = parseJson(els.body.value);
  const as = picker.value();
  const problem = body.error || as.error;
  if (problem) { setText(els.error, problem); return; }
  const request = { target: target(), body: body.value, as, run: els.run.checked };
  if (st.draft) request.rule = st.draft;
  const mine = ++st.seq;
  els.go.disabled = true;
  try {
    const reply = await api(projectPath(ctx.projectId(), 'playground'), { method: 'POST', body: request });
    if (mine === st.seq) render(reply);
  } catch (err) {
    if (!(err instanceof SessionExpired) && mine === st.seq) {
      els.result.hidden = true;
      setText(els.error, err.message); // as the API would refuse it: a 400 and why
    }
  } finally {
    els.go.disabled = false;
  }
}

function stepItem(text, check) {
  const skipped = (check.steps || []).find((s) => !s.evaluated && text.endsWith(s.rule));
  return h('li', { class: skipped ? 'step skipped' : 'step' }, h('code', { text }),
    skipped ? h('span', { class: 'tag warn', text: 'not evaluated' }) : null);
}

function render(reply) {
  const verdict = reply.allowed
    ? h('div', { class: 'verdict allowed', id: 'play-verdict' }, h('strong', { text: 'Allowed' }),
      h('span', { text: ` · as ${reply.caller.label}` }))
    : h('div', { class: 'verdict denied', id: 'play-verdict' }, h('strong', { text: `Denied · ${reply.status}` }),
      h('span', { text: ` · ${reply.message}` }), h('div', { class: 'small', text: `as ${reply.caller.label}` }));
  const undecided = !reply.allowed && reply.checks.some((c) => (c.steps || []).some((s) => !s.evaluated));
  const checks = reply.checks.map((c) => h('div', { class: `check-result ${c.allowed ? 'pass' : 'fail'}` },
    h('div', { class: 'check-head' }, h('span', { class: 'strong', text: c.what }),
      h('span', { class: c.allowed ? 'state on' : 'state bad', text: c.allowed ? 'passes' : `fails · ${c.status}` }),
      c.message ? h('span', { class: 'muted small', text: c.message }) : null),
    c.rule ? h('details', {}, h('summary', { text: 'Rule' }), h('pre', { class: 'json', text: pretty(c.rule) })) : null,
    h('div', { class: 'small muted', text: 'Explain (the rules that decided):' }),
    h('ol', { class: 'explain' }, (c.explain || []).map((e) => stepItem(e, c))),
    (c.steps || []).length ? h('div', { class: 'small' }, h('div', { class: 'muted', text: 'query / func rules met:' }),
      h('ul', { class: 'io-steps' }, c.steps.map((s) => h('li', {},
        h('code', { text: s.rule }), ' ',
        s.evaluated ? h('span', { class: 'tag', text: 'found' in s ? (s.found ? 'a document matched' : 'no document') : `answered ${JSON.stringify(s.result)}` })
          : h('span', { class: 'tag warn', text: 'not evaluated' }),
        s.find ? h('code', { class: 'muted', text: ` find ${JSON.stringify(s.find)}` }) : null)))) : null));
  els.result.replaceChildren(card('Decision', 'What the API would answer, and the steps of the rules engine.',
    verdict,
    undecided ? h('p', { class: 'notice', text: 'A query or func rule was not evaluated, so it failed here. Tick "Run query and func rules" to evaluate it for real.' }) : null,
    ...checks,
    h('details', {}, h('summary', { text: 'The request as the rules left it' }), h('pre', { class: 'json', id: 'play-request', text: pretty(reply.request) })),
    reply.caller.claims ? h('details', {}, h('summary', { text: 'The caller\'s claims' }), h('pre', { class: 'json', text: pretty(reply.caller.claims) })) : null));
  els.result.hidden = false;
}

export default {
  tab: 'playground',
  init(context) {
    ctx = context;
    build();
    template();
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
      st.draft = null;
      showDraft();
      els.result.hidden = true;
      setText(els.error, '');
      picker.reset(project);
    }
  },
  open(_project, opts = {}) {
    const t = opts.target;
    if (t) {
      els.kind.value = t.kind;
      syncKind();
      if (t.kind === 'crud') {
        els.alias.value = t.alias;
        fillCols();
        els.col.value = t.col;
        els.op.value = t.op;
      } else {
        els.service.value = t.service;
        els.func.value = t.func;
      }
      template();
      els.result.hidden = true;
    }
    if (opts.rule) st.draft = opts.rule;
    showDraft();
  },
  close() {},
};
