// The Users tab: the email users of a database (never a hash): search, roles, disable or enable, reset a
// password, delete.
//   GET /v1/api/config/projects/{project}/users/{alias}?q=&skip=&limit=
//   POST .../users/{alias}/{id} {role?, disabled?}   DELETE .../users/{alias}/{id}   POST .../users/{alias}/{id}/password

import { SessionExpired, api, enc, projectPath } from './api.js';
import { $, debounce, enabledAliases, field, h, select, setText } from './dom.js';

const PAGE = 25;
let ctx = null;
const els = {};
const st = { project: null, skip: 0, total: 0, seq: 0, idField: 'id', resetting: null };

function build() {
  els.alias = select([], undefined, { id: 'users-alias', 'aria-label': 'Database' });
  els.search = h('input', { id: 'users-search', type: 'search', autocomplete: 'off',
    placeholder: 'An email or name (its beginning), or an id', 'aria-label': 'Search users' });
  els.error = h('p', { class: 'error', id: 'users-error', role: 'alert', hidden: true });
  els.notice = h('div', { class: 'result ok', id: 'users-notice', role: 'status', hidden: true });
  els.range = h('span', { class: 'muted small', id: 'users-range' });
  els.prev = h('button', { type: 'button', class: 'btn ghost small', text: '← Prev', onclick: () => page(-1) });
  els.next = h('button', { type: 'button', class: 'btn ghost small', text: 'Next →', onclick: () => page(1) });
  els.list = h('div', { class: 'table-wrap', id: 'users-list' });
  $('panel-users').replaceChildren(h('div', { class: 'card' },
    h('div', { class: 'card-head' }, h('div', {}, h('h2', { text: 'Users' }),
      h('p', { class: 'muted small', text: 'Email users of this database. Password hashes never leave the server; disabled users cannot sign in and their tokens are refused on every gateway.' }))),
    h('div', { class: 'row' }, field('Database', els.alias), field('Search', els.search)),
    els.error, els.notice,
    h('div', { class: 'pager' }, els.range, h('span', { class: 'spacer' }), els.prev, els.next),
    els.list));
  els.alias.addEventListener('change', () => { st.skip = 0; load(); });
  els.search.addEventListener('input', debounce(() => { st.skip = 0; load(); }, 250));

  $('password-form').addEventListener('submit', (e) => { e.preventDefault(); setPassword(); });
  $('password-cancel').addEventListener('click', () => $('password-dialog').close());
}

function base() { return projectPath(ctx.projectId(), `users/${enc(els.alias.value)}`); }

function page(step) {
  const next = st.skip + step * PAGE;
  if (next < 0 || (step > 0 && next >= st.total)) return;
  st.skip = next;
  load();
}

function notice(text) { setText(els.notice, text); }

async function load() {
  if (!els.alias.value) {
    els.list.replaceChildren(h('p', { class: 'muted', text: 'This project has no database.' }));
    return;
  }
  const mine = ++st.seq;
  try {
    const reply = await api(base(), { query: { q: els.search.value.trim(), skip: st.skip, limit: PAGE } });
    if (mine !== st.seq) return;
    st.total = Number(reply.total) || 0;
    st.idField = reply.idField || 'id';
    setText(els.error, '');
    render(Array.isArray(reply.users) ? reply.users : []);
  } catch (err) {
    if (err instanceof SessionExpired || mine !== st.seq) return;
    els.list.replaceChildren();
    els.range.textContent = '';
    setText(els.error, err.message);
  }
}

async function update(user, body, done) {
  const id = user[st.idField];
  try {
    await api(`${base()}/${enc(id)}`, { method: 'POST', body });
    notice(done);
    await load();
  } catch (err) {
    if (!(err instanceof SessionExpired)) setText(els.error, err.message);
  }
}

function roleEditor(user) {
  const input = h('input', { class: 'role-input', value: user.role || '', 'aria-label': `Role of ${user.email}`, autocomplete: 'off' });
  const save = h('button', { type: 'button', class: 'btn ghost small', text: 'Set', onclick: () => {
    const role = input.value.trim();
    if (!role) { setText(els.error, 'A role must not be empty.'); return; }
    update(user, { role }, `${user.email} now has the role ${role}.`);
  } });
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') save.click(); });
  return h('div', { class: 'inline' }, input, save);
}

function render(users) {
  const from = st.total === 0 ? 0 : st.skip + 1;
  els.range.textContent = `${from}–${st.skip + users.length} of ${st.total}`;
  els.prev.disabled = st.skip === 0;
  els.next.disabled = st.skip + users.length >= st.total;
  if (users.length === 0) {
    els.list.replaceChildren(h('p', { class: 'muted', text: els.search.value.trim() ? 'No user matches.' : 'No user has signed up yet.' }));
    return;
  }
  els.list.replaceChildren(h('table', { class: 'table stack-narrow', id: 'users-table' },
    h('thead', {}, h('tr', {}, ['Email', 'Name', 'Role', 'Status', ''].map((t) => h('th', { text: t })))),
    h('tbody', {}, users.map((u) => {
      const id = String(u[st.idField]);
      const disabled = u.disabled === true;
      return h('tr', { 'data-user': id, 'data-email': u.email || '' },
        h('td', {}, h('div', { class: 'strong', text: u.email || '(no email)' }), h('div', { class: 'mono muted small', text: id })),
        h('td', { text: u.name || '' }),
        h('td', {}, roleEditor(u)),
        h('td', {}, h('span', { class: disabled ? 'state bad' : 'state on', text: disabled ? 'disabled' : 'active' })),
        h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'btn ghost small', text: disabled ? 'Enable' : 'Disable',
            onclick: () => update(u, { disabled: !disabled }, `${u.email} is ${disabled ? 'enabled again' : 'disabled: they cannot sign in, and their tokens are refused'}.`) }),
          h('button', { type: 'button', class: 'btn ghost small', text: 'Reset password', onclick: () => askPassword(u) }),
          h('button', { type: 'button', class: 'btn danger small', text: 'Delete', onclick: () => remove(u) })));
    }))));
}

function askPassword(user) {
  st.resetting = user;
  $('password-user').textContent = user.email || String(user[st.idField]);
  $('password-username').value = user.email || '';
  $('password-new').value = '';
  setText($('password-error'), '');
  $('password-dialog').showModal();
  $('password-new').focus();
}

async function setPassword() {
  const user = st.resetting;
  const pass = $('password-new').value;
  if (!pass) { setText($('password-error'), 'Enter the new password.'); return; }
  $('password-save').disabled = true;
  try {
    await api(`${base()}/${enc(user[st.idField])}/password`, { method: 'POST', body: { pass } });
    $('password-new').value = '';
    $('password-dialog').close();
    notice(`${user.email} has a new password.`);
  } catch (err) {
    if (!(err instanceof SessionExpired)) setText($('password-error'), err.message);
  } finally {
    $('password-save').disabled = false;
  }
}

async function remove(user) {
  const done = await ctx.confirm({
    title: `Delete ${user.email}?`,
    message: 'The user and their credentials are deleted; their tokens stop working. Their other data stays.',
    action: () => api(`${base()}/${enc(user[st.idField])}`, { method: 'DELETE' }),
  });
  if (done) {
    notice(`${user.email} was deleted.`);
    await load();
  }
}

export default {
  tab: 'users',
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
    if (!same) {
      st.skip = 0;
      els.search.value = '';
      els.list.replaceChildren();
      setText(els.error, '');
      setText(els.notice, '');
    }
  },
  open() { load(); },
  close() { st.seq += 1; },
};
