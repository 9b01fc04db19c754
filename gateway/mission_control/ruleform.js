// A form for one security rule, nested for and/or: allow, deny, authenticated, match, and, or,
// protected, query and func get fields; any other rule (force, remove, …) is edited as JSON in place.
// `ruleForm(rule, options).value()` gives the rule back (or throws with what is wrong).

import { h, isObject, parseJson, pretty, select } from './dom.js';

const KINDS = [
  ['allow', 'allow: anyone'], ['deny', 'deny: no one'], ['authenticated', 'authenticated: any valid token'],
  ['match', 'match: compare two values'], ['and', 'and: every clause'], ['or', 'or: any clause'],
  ['protected', 'protected: fields an update may not write'], ['query', 'query: a document must exist'],
  ['func', 'func: a service decides'], ['json', 'other (JSON)'],
];
const FORM_KINDS = new Set(KINDS.map(([k]) => k).filter((k) => k !== 'json'));
const TYPES = ['string', 'number', 'bool', 'date'];
const EVALS = {
  string: ['==', '!=', 'in', 'notIn'],
  number: ['==', '!=', '>', '>=', '<', '<=', 'in', 'notIn'],
  bool: ['==', '!=', 'in', 'notIn'],
  date: ['==', '!=', '>', '>=', '<', '<=', 'in', 'notIn'],
};

export const isRef = (v) => typeof v === 'string' && (v === 'args' || /^(args[.[]|utils\.)/.test(v));

/** A match operand as the admin types it: a variable stays a string; a literal is read as its type. */
export function operand(text, type, list) {
  const t = text.trim();
  if (isRef(t)) return t;
  if (list) {
    try { const v = JSON.parse(t); if (Array.isArray(v)) return v; } catch { /* below */ }
    return t.split(',').map((x) => operand(x, type, false)).filter((x) => x !== '');
  }
  if (type === 'number' && t !== '' && Number.isFinite(Number(t))) return Number(t);
  if (type === 'bool' && (t === 'true' || t === 'false')) return t === 'true';
  return text;
}

export function shown(value) {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  return JSON.stringify(value);
}

function defaults(kind, old) {
  switch (kind) {
    case 'match': return { rule: 'match', type: 'string', eval: '==', f1: 'args.auth.id', f2: '' };
    case 'and': case 'or': return { rule: kind, clauses: isObject(old) && Array.isArray(old.clauses) ? old.clauses : [{ rule: 'authenticated' }] };
    case 'protected': return { rule: 'protected', fields: [] };
    case 'query': return { rule: 'query', db: '', col: '', find: {} };
    case 'func': return { rule: 'func', service: '', func: '' };
    case 'json': return isObject(old) ? old : { rule: 'force', field: 'args.doc.owner', value: 'args.auth.id' };
    default: return { rule: kind };
  }
}

/** One rule node. `options.aliases`: the project's databases (for query rules); `onChange` after any edit. */
export function ruleForm(rule, options) {
  const { onChange = () => {}, aliases = [], depth = 0 } = options;
  let current = isObject(rule) ? rule : { rule: 'allow' };
  const kindOf = (r) => (FORM_KINDS.has(r.rule) ? r.rule : 'json');
  const kind = select(KINDS, kindOf(current), { class: 'rule-kind', 'aria-label': 'Rule type' });
  const body = h('div', { class: 'rule-body' });
  const el = h('div', { class: `rule-node depth-${Math.min(depth, 4)}` }, kind, body);
  let read = () => ({ rule: kind.value });

  const input = (value, attrs) => {
    const i = h('input', { value, autocomplete: 'off', spellcheck: 'false', ...attrs });
    i.addEventListener('input', onChange);
    return i;
  };
  const labelled = (text, control) => h('label', { class: 'mini' }, h('span', { text }), control);

  function draw() {
    const r = current;
    const k = kindOf(r);
    body.replaceChildren();
    if (k === 'match') {
      const type = select(TYPES, TYPES.includes(r.type) ? r.type : 'string', { class: 'match-type', 'aria-label': 'Compare as' });
      const op = select(EVALS[type.value], r.eval, { class: 'match-eval', 'aria-label': 'Comparison' });
      const f1 = input(shown(r.f1), { class: 'match-f1', placeholder: 'args.auth.id or a value', 'aria-label': 'First value' });
      const f2 = input(shown(r.f2), { class: 'match-f2', placeholder: 'args.find.owner or a value', 'aria-label': 'Second value' });
      type.addEventListener('change', () => {
        const keep = op.value;
        op.replaceChildren(...EVALS[type.value].map((o) => h('option', { value: o, text: o })));
        op.value = EVALS[type.value].includes(keep) ? keep : '==';
        onChange();
      });
      op.addEventListener('change', onChange);
      body.append(h('div', { class: 'row tight' }, labelled('First', f1), labelled('is', op), labelled('Second', f2), labelled('as', type)));
      read = () => {
        const list = op.value === 'in' || op.value === 'notIn';
        return { rule: 'match', type: type.value, eval: op.value, f1: operand(f1.value, type.value, false), f2: operand(f2.value, type.value, list) };
      };
    } else if (k === 'and' || k === 'or') {
      const list = h('ol', { class: 'clauses' });
      const nodes = [];
      const addClause = (clause) => {
        const child = ruleForm(clause, { ...options, depth: depth + 1 });
        const item = h('li', { class: 'clause' }, child.el,
          h('button', { type: 'button', class: 'btn ghost small remove-clause', text: 'Remove clause', onclick: () => {
            nodes.splice(nodes.indexOf(child), 1);
            item.remove();
            onChange();
          } }));
        nodes.push(child);
        list.append(item);
      };
      for (const clause of Array.isArray(r.clauses) ? r.clauses : []) addClause(clause);
      body.append(list, h('button', { type: 'button', class: 'btn ghost small add-clause', text: '+ Clause',
        onclick: () => { addClause({ rule: 'authenticated' }); onChange(); } }));
      read = () => ({ rule: k, clauses: nodes.map((n) => n.value()) });
    } else if (k === 'protected') {
      const fields = input((Array.isArray(r.fields) ? r.fields : []).join(', '), { class: 'protected-fields',
        placeholder: 'owner, profile.role', 'aria-label': 'Protected fields' });
      body.append(labelled('Fields no update may write (comma-separated document paths)', fields));
      read = () => ({ rule: 'protected', fields: fields.value.split(',').map((f) => f.trim()).filter(Boolean) });
    } else if (k === 'query') {
      const db = select(aliases.map((a) => [a, a]), r.db || aliases[0], { class: 'query-db', 'aria-label': 'Database' });
      db.addEventListener('change', onChange);
      const col = input(r.col || '', { class: 'query-col', placeholder: 'collection', 'aria-label': 'Collection' });
      const find = h('textarea', { class: 'editor compact short query-find', spellcheck: 'false', value: pretty(isObject(r.find) ? r.find : {}),
        'aria-label': 'Find (JSON; variables like args.auth.id)' });
      find.addEventListener('input', onChange);
      body.append(h('div', { class: 'row tight' }, labelled('Database', db), labelled('Collection', col)),
        labelled('Find: a document matching this must exist', find));
      read = () => {
        const parsed = parseJson(find.value);
        if (parsed.error) throw new Error(`query find: ${parsed.error}`);
        return { rule: 'query', db: db.value, col: col.value.trim(), find: parsed.value };
      };
    } else if (k === 'func') {
      const service = input(r.service || '', { class: 'func-service', placeholder: 'service', 'aria-label': 'Service' });
      const func = input(r.func || '', { class: 'func-func', placeholder: 'function', 'aria-label': 'Function' });
      body.append(h('div', { class: 'row tight' }, labelled('Service', service), labelled('Function', func)),
        h('p', { class: 'muted small', text: 'The function gets the request (without the token) and allows it by answering {"ack": true}.' }));
      read = () => ({ rule: 'func', service: service.value.trim(), func: func.value.trim() });
    } else if (k === 'json') {
      const text = h('textarea', { class: 'editor compact short rule-json', spellcheck: 'false', value: pretty(r),
        'aria-label': 'Rule (JSON)' });
      text.addEventListener('input', onChange);
      body.append(text);
      read = () => {
        const parsed = parseJson(text.value);
        if (parsed.error) throw new Error(parsed.error);
        return parsed.value;
      };
    } else {
      read = () => ({ rule: k });
    }
  }

  kind.addEventListener('change', () => {
    let old = null;
    try { old = read(); } catch { old = null; }
    current = defaults(kind.value, old);
    draw();
    onChange();
  });
  draw();
  return { el, value: () => read() };
}
