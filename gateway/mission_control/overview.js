// The Overview tab: the project's id, name, secret (masked), sign-in providers, databases, collections
// (realtime, rule type per operation) and function rules, from the config (GET /v1/api/config/projects).

import { $, card, h, isObject, masked, ruleBadge, table } from './dom.js';

/** Every function rule in either shape: v0.11/12 `services.<svc>.functions.<fn>.rule`, v0.9/10 `rules.<svc>.<fn>`. */
export function functionRules(functions) {
  const rows = [];
  if (!isObject(functions)) return rows;
  if (isObject(functions.services)) {
    for (const [svc, spec] of Object.entries(functions.services)) {
      if (!isObject(spec)) continue;
      if (spec.register) rows.push({ service: svc, fn: '(register)', rule: spec.register });
      for (const [fn, fspec] of Object.entries(isObject(spec.functions) ? spec.functions : {})) {
        rows.push({ service: svc, fn, rule: isObject(fspec) ? fspec.rule : undefined });
      }
    }
  }
  if (isObject(functions.rules)) {
    for (const [svc, fns] of Object.entries(functions.rules)) {
      for (const [fn, rule] of Object.entries(isObject(fns) ? fns : {})) rows.push({ service: svc, fn, rule });
    }
  }
  return rows;
}

function render(project) {
  const modules = isObject(project.modules) ? project.modules : {};
  const crud = isObject(modules.crud) ? modules.crud : {};
  const functions = isObject(modules.functions) ? modules.functions : {};
  const auth = isObject(modules.auth) ? modules.auth : {};

  const facts = h('dl', { class: 'facts' },
    h('div', {}, h('dt', { text: 'Id' }), h('dd', { class: 'mono', text: project.id })),
    h('div', {}, h('dt', { text: 'Name' }), h('dd', { text: project.name || project.id })),
    h('div', {}, h('dt', { text: 'Secret' }), h('dd', { class: 'mono secret', text: masked(project.secret) })),
    h('div', {}, h('dt', { text: 'Sign-in' }), h('dd', {
      text: Object.entries(auth).filter(([, v]) => isObject(v) && v.enabled !== false).map(([k]) => k).join(', ') || 'off',
    })));

  const dbRows = Object.entries(crud).map(([alias, db]) => {
    const spec = isObject(db) ? db : {};
    const enabled = spec.enabled !== false;
    const cols = Object.keys(isObject(spec.collections) ? spec.collections : {}).length;
    return { key: `db:${alias}`, cells: [
      h('span', { class: 'mono strong', text: alias }),
      h('span', { class: 'tag', text: String(spec.type || alias) }),
      h('span', { class: 'mono secret', text: masked(spec.conn) }),
      h('span', { class: enabled ? 'state on' : 'state off', text: enabled ? 'enabled' : 'disabled' }),
      String(cols),
    ] };
  });

  const colRows = [];
  for (const [alias, db] of Object.entries(crud)) {
    const cols = isObject(db) && isObject(db.collections) ? db.collections : {};
    for (const [name, spec] of Object.entries(cols)) {
      const s = isObject(spec) ? spec : {};
      const realtime = s.isRealtimeEnabled !== undefined ? s.isRealtimeEnabled !== false : name !== 'users';
      const rules = isObject(s.rules) ? s.rules : {};
      colRows.push({ key: `collection:${alias}.${name}`, cells: [
        h('span', { class: 'mono strong', text: name }),
        h('span', { class: 'mono muted', text: alias }),
        h('span', { class: realtime ? 'state on' : 'state off', text: realtime ? 'realtime on' : 'realtime off' }),
        h('span', { class: 'rules' }, ['create', 'read', 'update', 'delete', 'aggr'].filter((op) => op in rules)
          .map((op) => h('span', { class: 'op' }, h('span', { class: 'op-name', text: op }), ruleBadge(rules[op])))),
      ] });
    }
  }

  const fnRows = functionRules(functions).map((r) => ({ key: `function:${r.service}.${r.fn}`, cells: [
    h('span', { class: 'mono strong', text: r.service }),
    h('span', { class: 'mono', text: r.fn }),
    ruleBadge(r.rule),
  ] }));
  const fnState = functions.enabled === false ? 'Functions are disabled.' : 'Who may call each function.';

  $('panel-overview').replaceChildren(
    card('Project', 'Secrets and connection strings are masked here; the config editor shows the raw config.', facts),
    card('Databases', 'modules.crud: one entry per database alias. The Databases tab shows their state.',
      table(['Alias', 'Type', 'Connection', 'State', 'Collections'], dbRows, 'No database configured.')),
    card('Collections', 'Realtime (live queries) is on unless isRealtimeEnabled is false (users: off unless on).',
      table(['Collection', 'Database', 'Realtime', 'Rules'], colRows, 'No collection configured: every collection falls back to the defaults.')),
    card('Function rules', fnState,
      table(['Service', 'Function', 'Rule'], fnRows, 'No function rules.')),
  );
}

export default {
  tab: 'overview',
  init() {},
  reset(project) { if (project) render(project); },
  open() {},
  close() {},
};
