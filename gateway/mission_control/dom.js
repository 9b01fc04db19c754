// Small DOM helpers. Everything is rendered with textContent (never innerHTML), and no inline style
// attribute is ever set (the Content-Security-Policy allows none).

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'value') el.value = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function show(el, visible) { el.hidden = !visible; }

export function setText(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

export const MASK = '••••••••';

/** A secret or a connection string for display: `$VAR` (read from the environment) is shown, anything else masked. */
export function masked(value) {
  if (typeof value === 'string' && /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(value)) return `${value} (from env)`;
  if (value === undefined || value === null || value === '') return '—';
  return MASK;
}

const SENSITIVE = new Set(['secret', 'conn', 'pass', 'password']);

/** A deep copy with every sensitive key masked (for tooltips of rules and the like). */
export function maskDeep(value) {
  if (Array.isArray(value)) return value.map(maskDeep);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SENSITIVE.has(k) ? masked(v) : maskDeep(v)]));
}

export const RULE_KINDS = ['allow', 'deny', 'authenticated', 'match', 'and', 'or', 'protected', 'query', 'func',
  'force', 'remove'];

export function ruleBadge(rule, attrs = {}) {
  if (!isObject(rule)) return h('span', { class: 'rule rule-none', text: 'no rule', ...attrs });
  const kind = typeof rule.rule === 'string' ? rule.rule : '?';
  const cls = RULE_KINDS.includes(kind) ? `rule rule-${kind}` : 'rule';
  let label = kind;
  if ((kind === 'and' || kind === 'or') && Array.isArray(rule.clauses)) label = `${kind} (${rule.clauses.length})`;
  return h('span', { class: cls, title: JSON.stringify(maskDeep(rule)), text: label, ...attrs });
}

export function card(title, subtitle, ...body) {
  return h('div', { class: 'card' },
    h('div', { class: 'card-head' }, h('div', {}, h('h2', { text: title }),
      subtitle && h('p', { class: 'muted small', text: subtitle }))),
    ...body);
}

export function table(headers, rows, empty, attrs = {}) {
  if (rows.length === 0) return h('p', { class: 'muted', text: empty });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table', ...attrs },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { text: x })))),
    h('tbody', {}, rows.map(({ key, cells }) => h('tr', { 'data-key': key }, cells.map((c) => h('td', {}, c)))))));
}

export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { text: label }), control, hint && h('small', { class: 'muted', text: hint }));
}

export function select(options, value, attrs = {}) {
  const el = h('select', attrs, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, text });
  }));
  if (value !== undefined && value !== null) el.value = value;
  return el;
}

/** A short one-line preview of any JSON value (for grid cells). */
export function preview(value, max = 80) {
  let text;
  if (value === undefined) text = '';
  else if (typeof value === 'string') text = value;
  else text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** JSON from a textarea: `{value}` or `{error}` (with the parser's reason). */
export function parseJson(text, { object = true } = {}) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Not valid JSON: ${err.message}` };
  }
  if (object && !isObject(value)) return { error: 'This must be a JSON object ({...}).' };
  return { value };
}

export const pretty = (value) => JSON.stringify(value, null, 2);

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** The `crud` aliases of a raw project config (enabled or not). */
export function aliases(project) {
  const crud = isObject(project?.modules?.crud) ? project.modules.crud : {};
  return Object.keys(crud);
}

export function enabledAliases(project) {
  const crud = isObject(project?.modules?.crud) ? project.modules.crud : {};
  return Object.entries(crud).filter(([, db]) => !isObject(db) || db.enabled !== false).map(([alias]) => alias);
}

/** Configured collections of an alias (without `default`). */
export function collections(project, alias) {
  const db = project?.modules?.crud?.[alias];
  const cols = isObject(db) && isObject(db.collections) ? db.collections : {};
  return Object.keys(cols).filter((c) => c !== 'default');
}

export function errorText(err) { return err && err.message ? err.message : String(err); }
