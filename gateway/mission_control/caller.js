// Who a tried request is from (the playground, trying a function): anonymous, a user of the project
// (picked from the users view's search), a pasted token, or hand-written claims. A pasted token stays in
// this form only: it is never stored.

import { SessionExpired, api, enc, projectPath } from './api.js';
import { debounce, enabledAliases, field, h, isObject, parseJson, select } from './dom.js';

let seq = 0;

export function callerPicker(ctx, prefix) {
  const name = `${prefix}-as-${++seq}`;
  const modes = [['anonymous', 'Anonymous'], ['user', 'A user'], ['token', 'A token'], ['claims', 'Claims']];
  const radios = modes.map(([value, text]) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name, value, id: `${prefix}-as-${value}`, checked: value === 'anonymous' }), text));
  const aliasSel = select([], undefined, { id: `${prefix}-user-alias`, 'aria-label': 'Database of the users' });
  const search = h('input', { id: `${prefix}-user-search`, type: 'search', placeholder: 'Search by email, name or id',
    autocomplete: 'off', 'aria-label': 'Search users' });
  const picked = h('select', { id: `${prefix}-user`, size: 5, 'aria-label': 'User' });
  const note = h('p', { class: 'muted small', id: `${prefix}-user-note` });
  const tokenBox = h('textarea', { id: `${prefix}-token`, class: 'editor compact short', spellcheck: 'false',
    autocomplete: 'off', placeholder: 'eyJhbGciOiJIUzI1NiIs…', 'aria-label': 'Token' });
  const claimsBox = h('textarea', { id: `${prefix}-claims`, class: 'editor compact short', spellcheck: 'false',
    autocomplete: 'off', 'aria-label': 'Claims (JSON)', value: '{\n  "id": "user-1",\n  "role": "user"\n}' });
  const panes = {
    anonymous: h('p', { class: 'muted small', text: 'No token: rules see args.auth as empty.' }),
    user: h('div', { class: 'stack' }, h('div', { class: 'row' }, field('Database', aliasSel), field('Search', search)),
      picked, note),
    token: field('Token', tokenBox, 'Checked as the API checks it: an invalid or expired token is a 401.'),
    claims: field('Claims', claimsBox, 'Used as a verified token\'s claims would be.'),
  };
  const el = h('fieldset', { class: 'caller' }, h('legend', { text: 'As' }), h('div', { class: 'radios' }, radios),
    ...Object.values(panes));

  const mode = () => el.querySelector(`input[name="${name}"]:checked`)?.value || 'anonymous';
  const sync = () => {
    for (const [m, pane] of Object.entries(panes)) pane.hidden = m !== mode();
    if (mode() === 'user' && picked.options.length === 0) lookup();
  };
  let lookups = 0;
  async function lookup() {
    const project = ctx.project();
    if (!project || !aliasSel.value) {
      note.textContent = 'No database to look users up in.';
      return;
    }
    const mine = ++lookups;
    try {
      const reply = await api(projectPath(project.id, `users/${enc(aliasSel.value)}`),
        { query: { q: search.value.trim(), limit: 20 } });
      if (mine !== lookups) return;
      const id = reply.idField || 'id';
      const before = picked.value;
      picked.replaceChildren(...(reply.users || []).map((u) => h('option', {
        value: String(u[id]), text: `${u.email || '(no email)'} · ${u.role || 'no role'}${u.disabled ? ' · disabled' : ''}`,
      })));
      if ([...picked.options].some((o) => o.value === before)) picked.value = before;
      else if (picked.options.length) picked.selectedIndex = 0;
      note.textContent = reply.users?.length ? `${reply.total} user${reply.total === 1 ? '' : 's'}` : 'No user found.';
    } catch (err) {
      if (err instanceof SessionExpired || mine !== lookups) return;
      picked.replaceChildren();
      note.textContent = err.message;
    }
  }
  for (const r of radios) r.querySelector('input').addEventListener('change', sync);
  search.addEventListener('input', debounce(lookup, 250));
  aliasSel.addEventListener('change', lookup);

  return {
    el,
    reset(project) {
      const list = enabledAliases(project || {});
      aliasSel.replaceChildren(...list.map((a) => h('option', { value: a, text: a })));
      picked.replaceChildren();
      note.textContent = '';
      search.value = '';
      tokenBox.value = '';
      sync();
    },
    /** The `as` of a request body, or `{error}`. */
    value() {
      switch (mode()) {
        case 'user':
          if (!picked.value) return { error: 'Pick a user (or another kind of caller).' };
          return { user: picked.value, alias: aliasSel.value };
        case 'token':
          if (!tokenBox.value.trim()) return { error: 'Paste a token.' };
          return { token: tokenBox.value.trim() };
        case 'claims': {
          const parsed = parseJson(claimsBox.value);
          if (parsed.error) return { error: `Claims: ${parsed.error}` };
          if (!isObject(parsed.value) || Object.keys(parsed.value).length === 0) return { error: 'Claims must not be empty.' };
          return { claims: parsed.value };
        }
        default:
          return { anonymous: true };
      }
    },
    choose(m) {
      const input = el.querySelector(`input[name="${name}"][value="${m}"]`);
      if (input) input.checked = true;
      sync();
    },
  };
}
