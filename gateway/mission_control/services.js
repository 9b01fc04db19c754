// The Services tab: what runs now (NATS micro discovery: GET /v1/api/{project}/services), calls, errors and
// latency per function (this gateway's /metrics, when it has them), and trying a function with JSON params
// as a chosen caller (POST /v1/api/config/projects/{project}/functions/{service}/{func}).

import { SessionExpired, api, enc, projectPath } from './api.js';
import { callerPicker } from './caller.js';
import { $, card, debounce, field, h, parseJson, pretty, setText, show } from './dom.js';
import { fmt, scrape, total } from './metrics.js';

const EVERY_MS = 5000;
let ctx = null;
let picker = null;
let timer = 0;
let seq = 0;
let open = false;
let last = [];

const els = {};

function build() {
  picker = callerPicker(ctx, 'try');
  els.metrics = h('div', { id: 'functions-metrics' });
  els.service = h('input', { id: 'try-service', list: 'try-services', autocomplete: 'off', required: true });
  els.func = h('input', { id: 'try-func', list: 'try-funcs', autocomplete: 'off', required: true });
  els.services = h('datalist', { id: 'try-services' });
  els.funcs = h('datalist', { id: 'try-funcs' });
  els.params = h('textarea', { id: 'try-params', class: 'editor compact', spellcheck: 'false', value: '{}',
    'aria-label': 'Params (JSON)' });
  els.timeout = h('input', { id: 'try-timeout', type: 'number', min: 1, value: 5000, 'aria-label': 'Timeout (ms)' });
  els.run = h('button', { type: 'submit', class: 'btn primary', id: 'try-run', text: 'Call' });
  els.result = h('div', { id: 'try-result', class: 'verdict', role: 'status', hidden: true });
  const form = h('form', { id: 'try-form', class: 'stack', novalidate: true, onsubmit: (e) => { e.preventDefault(); call(); } },
    h('div', { class: 'row' }, field('Service', els.service), field('Function', els.func), field('Timeout (ms)', els.timeout)),
    els.services, els.funcs,
    field('Params (JSON)', els.params, 'What the function gets as params; Ctrl+Enter calls.'),
    picker.el,
    h('div', { class: 'editor-bar' }, els.run, h('span', { class: 'muted small', text: 'The function rule decides, as for any caller.' })),
    els.result);
  els.params.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); call(); }
  });
  els.service.addEventListener('input', debounce(fillFunctions, 100));
  $('services-extra').replaceChildren(
    card('Functions', 'Calls, errors and latency as this gateway saw them (from /metrics), since it started.', els.metrics),
    card('Try a function', 'Calls it through its rule, as the chosen caller, and shows what it answered.', form));
}

function fillFunctions() {
  const svc = last.find((s) => s.name === els.service.value.trim());
  els.funcs.replaceChildren(...(svc?.functions || []).map((f) => h('option', { value: f })));
}

async function call() {
  setText(els.result, '');
  els.result.className = 'verdict';
  const service = els.service.value.trim();
  const func = els.func.value.trim();
  const params = parseJson(els.params.value, { object: false });
  const as = picker.value();
  const problem = (!service || !func) ? 'Name the service and the function.' : params.error || as.error;
  if (problem) {
    els.result.className = 'verdict denied';
    setText(els.result, problem);
    return;
  }
  els.run.disabled = true;
  try {
    const reply = await api(projectPath(ctx.projectId(), `functions/${enc(service)}/${enc(func)}`), {
      method: 'POST', body: { params: params.value, as, timeout: Number(els.timeout.value) || undefined },
    });
    els.result.hidden = false;
    els.result.className = reply.ok ? 'verdict allowed' : 'verdict denied';
    els.result.replaceChildren(
      h('strong', { text: reply.ok ? `${reply.status} OK` : `${reply.status} ${reply.error}` }),
      h('span', { class: 'muted small', text: ` · ${reply.ms} ms` }),
      reply.ok ? h('pre', { class: 'json', id: 'try-output', text: pretty(reply.result) }) : null);
  } catch (err) {
    if (err instanceof SessionExpired) return;
    els.result.className = 'verdict denied';
    setText(els.result, err.message);
  } finally {
    els.run.disabled = false;
  }
}

function stop() {
  clearTimeout(timer);
  timer = 0;
  seq += 1; // a reply still on its way is dropped
}

async function refresh() {
  clearTimeout(timer);
  const mine = ++seq;
  const project = ctx.projectId();
  if (!project) return;
  const button = $('services-refresh');
  button.disabled = true;
  button.textContent = 'Refreshing…';
  try {
    const [reply, scraped] = await Promise.all([api(`/v1/api/${enc(project)}/services`), scrape()]);
    if (mine !== seq) return;
    last = Array.isArray(reply.services) ? reply.services : [];
    renderServices(last);
    renderMetrics(project, last, scraped);
    els.services.replaceChildren(...last.map((s) => h('option', { value: s.name })));
    if (!els.service.value && last[0]) {
      els.service.value = last[0].name;
      els.func.value = last[0].functions?.[0] || '';
    }
    fillFunctions();
    setText($('services-error'), '');
    $('services-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof SessionExpired || mine !== seq) return;
    setText($('services-error'), `Cannot list the services: ${err.message}`);
  } finally {
    if (mine === seq) {
      button.disabled = false;
      button.textContent = 'Refresh';
      if (open && !$('app-view').hidden) timer = setTimeout(refresh, EVERY_MS);
    }
  }
}

function renderServices(services) {
  $('services-body').replaceChildren(...services.map((s) => {
    const instances = Array.isArray(s.instances) ? s.instances : [];
    const kinds = [...new Set(instances.map((i) => i.kind).filter(Boolean))].join(', ');
    const requests = instances.reduce((sum, i) => sum + (Number(i.requests) || 0), 0);
    return h('tr', { 'data-service': s.name },
      h('td', {}, h('span', { class: 'mono strong', text: s.name }),
        h('div', { class: 'muted small', text: [kinds, `${requests} request${requests === 1 ? '' : 's'}`].filter(Boolean).join(' · ') })),
      h('td', {}, h('span', { class: 'chips' }, (Array.isArray(s.functions) ? s.functions : []).map((f) => h('span', { class: 'chip mono', text: f })))),
      h('td', { class: 'num' }, h('span', { class: instances.length ? 'count live' : 'count', text: String(instances.length) })));
  }));
  show($('services-table'), services.length > 0);
  show($('services-empty'), services.length === 0);
}

function renderMetrics(project, services, scraped) {
  if (!scraped.families) {
    els.metrics.replaceChildren(h('p', { class: 'muted degraded', text: scraped.status === 404
      ? 'This server has no /metrics endpoint, so calls, errors and latency are not shown.'
      : `The metrics could not be read (/metrics answered ${scraped.status || 'nothing'}).` }));
    return;
  }
  if (!scraped.families.has('sc_function_calls_total')) {
    els.metrics.replaceChildren(h('p', { class: 'muted degraded', text: 'Not reported by this server: /metrics has no sc_function_calls_total.' }));
    return;
  }
  const names = new Set();
  for (const s of services) for (const f of s.functions || []) names.add(`${s.name}\u0000${f}`);
  for (const sample of scraped.families.get('sc_function_calls_total')) {
    if (sample.labels.project === project) names.add(`${sample.labels.service}\u0000${sample.labels.function}`);
  }
  const rows = [...names].sort().map((key) => {
    const [service, fn] = key.split('\u0000');
    const f = { project, service, function: fn };
    const calls = total(scraped, 'sc_function_calls_total', f) || 0;
    const ok = total(scraped, 'sc_function_calls_total', { ...f, outcome: 'ok' }) || 0;
    const count = total(scraped, 'sc_function_call_seconds_count', f);
    const sum = total(scraped, 'sc_function_call_seconds_sum', f);
    const avg = count ? (sum / count) * 1000 : null;
    return h('tr', { 'data-function': `${service}.${fn}` },
      h('td', { class: 'mono', text: `${service}.${fn}` }),
      h('td', { class: 'metric', text: String(calls) }),
      h('td', { class: calls - ok ? 'metric bad' : 'metric', text: String(calls - ok) }),
      h('td', { class: 'metric', text: avg === null ? '—' : `${fmt(avg, 2)} ms` }));
  });
  els.metrics.replaceChildren(rows.length === 0
    ? h('p', { class: 'muted', text: 'No function has been called through this gateway yet.' })
    : h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Function', 'Calls', 'Errors', 'Avg latency'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows))));
}

export default {
  tab: 'services',
  init(context) {
    ctx = context;
    build();
    $('services-refresh').addEventListener('click', () => refresh());
  },
  reset(project) {
    stop();
    last = [];
    $('services-body').replaceChildren();
    show($('services-table'), false);
    show($('services-empty'), false);
    $('services-updated').textContent = '';
    els.metrics.replaceChildren();
    setText(els.result, '');
    picker.reset(project);
  },
  open(_project, opts = {}) {
    open = true;
    if (opts.service) els.service.value = opts.service;
    if (opts.func) els.func.value = opts.func;
    stop();
    refresh();
  },
  close() {
    open = false;
    stop();
  },
};
