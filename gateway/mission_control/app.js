// Mission Control: the admin UI of this Space Cloud-compatible server. No dependencies, no build step.
//
// This module is the shell: login (POST /v1/api/config/login), the session (the admin token lives in
// sessionStorage, this tab only, and the page logs out when it expires), the project list
// (GET /v1/api/config/projects), the tabs and the URL (#/<project>/<tab>: never a secret), deleting a project
// (DELETE /v1/api/config/{project}). Each tab is a view module with init/open/close/reset. Everything is
// rendered with textContent, never innerHTML, and nothing is ever logged to the console.

import {
  ApiError, SessionExpired, USER_KEY, api, dropSession, onSessionExpired, sessionEnds, setSession, token,
} from './api.js';
import { $, isObject, setText, show } from './dom.js';
import databases from './databases.js';
import data from './data.js';
import editor from './editor.js';
import live from './live.js';
import overview from './overview.js';
import playground from './playground.js';
import rules from './rules.js';
import services from './services.js';
import users from './users.js';

const VIEWS = [overview, databases, data, users, rules, playground, services, live, editor];
const TABS = VIEWS.map((v) => v.tab);

const state = {
  dev: false,
  projects: [],
  current: null, // project id
  tab: 'overview',
  expiry: 0,
};

const view = (tab) => VIEWS.find((v) => v.tab === tab);

// ---------------------------------------------------------------- the context views get

const ctx = {
  get dev() { return state.dev; },
  project: () => state.projects.find((p) => p.id === state.current) || null,
  projects: () => state.projects,
  projectId: () => state.current,
  reload: (select) => loadProjects(select),
  go: (tab, opts) => selectTab(tab, opts),
  confirm: confirmAction,
};

// ---------------------------------------------------------------- views and session

function showView(name) {
  show($('loading'), false);
  show($('login-view'), name === 'login');
  show($('app-view'), name === 'app');
  show($('session'), name === 'app');
  $('who').textContent = state.dev ? 'dev mode' : (sessionStorage.getItem(USER_KEY) || 'admin');
  show($('logout'), !state.dev);
  const ends = state.dev ? null : sessionEnds();
  $('session-ends').textContent = ends ? `· session ends ${new Date(ends).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` : '';
}

function closeAll() {
  view(state.tab)?.close();
}

function showLogin(notice = '') {
  closeAll();
  clearTimeout(state.expiry);
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  setText($('login-notice'), notice);
  setText($('login-error'), '');
  $('pass').value = '';
  showView('login');
  ($('user').value ? $('pass') : $('user')).focus();
}

function sessionExpired() {
  dropSession();
  showLogin('Your admin session has expired or is no longer valid. Log in again.');
}

/** The page logs out by itself when the admin token expires (the server refuses it from then on). */
function watchExpiry() {
  clearTimeout(state.expiry);
  const ends = sessionEnds();
  if (!ends || state.dev) return;
  const left = ends - Date.now();
  if (left <= 0) {
    sessionExpired();
    return;
  }
  state.expiry = setTimeout(sessionExpired, Math.min(left, 2 ** 31 - 1));
}

async function login(event) {
  event.preventDefault();
  const user = $('user').value.trim();
  const pass = $('pass').value;
  setText($('login-error'), '');
  setText($('login-notice'), '');
  if (!user || !pass) {
    setText($('login-error'), 'Enter the admin user and password.');
    return;
  }
  const button = $('login-submit');
  button.disabled = true;
  try {
    const { token: t } = await api('/v1/api/config/login', { method: 'POST', body: { user, pass } });
    setSession(t, user);
    $('pass').value = '';
    watchExpiry();
    await loadProjects();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && /invalid credentials/i.test(err.message)) {
      setText($('login-error'), 'Wrong user or password.');
    } else {
      setText($('login-error'), err.message || String(err));
    }
    $('pass').select();
  } finally {
    button.disabled = false;
  }
}

function logout() {
  dropSession();
  state.projects = [];
  state.current = null;
  for (const v of VIEWS) v.reset();
  showLogin('Logged out.');
}

// ---------------------------------------------------------------- projects

function normaliseProjects(projects) {
  if (Array.isArray(projects)) return projects.filter(isObject);
  if (isObject(projects)) return Object.entries(projects).filter(([, p]) => isObject(p)).map(([id, p]) => ({ id, ...p }));
  return [];
}

async function loadProjects(select) {
  setText($('app-error'), '');
  let reply;
  try {
    reply = await api('/v1/api/config/projects');
  } catch (err) {
    if (err instanceof SessionExpired) return;
    showView('app');
    setText($('app-error'), `Cannot read the projects: ${err.message}`);
    return;
  }
  // sorted by name: the server appends an edited project at the end of its list
  state.projects = normaliseProjects(reply.projects)
    .sort((a, b) => String(a.name || a.id).localeCompare(String(b.name || b.id)) || String(a.id).localeCompare(String(b.id)));
  showView('app');
  renderProjectList();
  const fromHash = parseHash();
  const wanted = select || fromHash.project || state.current;
  const id = state.projects.some((p) => p.id === wanted) ? wanted : state.projects[0]?.id;
  selectProject(id, fromHash.tab || state.tab, { force: true });
}

function renderProjectList() {
  const list = $('project-list');
  list.replaceChildren(...state.projects.map((p) => {
    const dbs = Object.keys(isObject(p.modules?.crud) ? p.modules.crud : {}).length;
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'project-item';
    button.dataset.project = p.id;
    if (p.id === state.current) button.setAttribute('aria-current', 'page');
    button.addEventListener('click', () => selectProject(p.id, state.tab));
    const name = document.createElement('span');
    name.className = 'project-name';
    name.textContent = p.name || p.id;
    const meta = document.createElement('span');
    meta.className = 'project-meta mono';
    meta.textContent = `${p.id} · ${dbs} db${dbs === 1 ? '' : 's'}`;
    button.append(name, meta);
    item.append(button);
    return item;
  }));
  $('project-count').textContent = String(state.projects.length);
  show($('projects-empty'), state.projects.length === 0);
}

function parseHash() {
  const [project, tab] = location.hash.replace(/^#\/?/, '').split('/').map((s) => decodeURIComponent(s || ''));
  return { project: project || '', tab: TABS.includes(tab) ? tab : '' };
}

function selectProject(id, tab = 'overview', { force = false } = {}) {
  if (!force && id !== state.current && editor.dirty() && !window.confirm('Discard the unsaved changes in the editor?')) {
    return;
  }
  const changed = id !== state.current || force;
  if (changed) closeAll();
  state.current = id || null;
  for (const el of document.querySelectorAll('.project-item')) {
    if (el.dataset.project === state.current) el.setAttribute('aria-current', 'page');
    else el.removeAttribute('aria-current');
  }
  const project = ctx.project();
  show($('no-project'), !project);
  show($('project-view'), Boolean(project));
  if (!project) return;
  if (changed) {
    $('project-title').textContent = project.name || project.id;
    $('project-id').textContent = project.id;
    for (const v of VIEWS) v.reset(project, { force });
  }
  selectTab(tab, {}, { reopen: changed });
}

function selectTab(tab, opts = {}, { reopen = false } = {}) {
  const next = TABS.includes(tab) ? tab : 'overview';
  if (next !== state.tab || reopen) view(state.tab)?.close();
  const opening = next !== state.tab || reopen || Object.keys(opts).length > 0;
  state.tab = next;
  for (const name of TABS) {
    const selected = name === state.tab;
    $(`tab-${name}`).setAttribute('aria-selected', String(selected));
    $(`tab-${name}`).tabIndex = selected ? 0 : -1;
    show($(`panel-${name}`), selected);
  }
  const hash = `#/${encodeURIComponent(state.current || '')}/${state.tab}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  const project = ctx.project();
  if (project && opening) view(state.tab).open(project, opts);
}

/** Arrow keys, Home and End move between tabs (the tab list is one tab stop). */
function tabKeys(event) {
  const keys = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity };
  if (!(event.key in keys)) return;
  event.preventDefault();
  const i = TABS.indexOf(state.tab);
  const step = keys[event.key];
  const j = Number.isFinite(step) ? (i + step + TABS.length) % TABS.length : (step < 0 ? 0 : TABS.length - 1);
  selectTab(TABS[j]);
  $(`tab-${TABS[j]}`).focus();
}

// ---------------------------------------------------------------- dialogs

/** Ask, then run `action`; a refusal of the server is shown in the dialog, which stays open. True when done. */
function confirmAction({ title, message, ok = 'Delete', action }) {
  const dialog = $('confirm');
  $('confirm-heading').textContent = title;
  $('confirm-message').textContent = message;
  $('confirm-yes').textContent = ok;
  setText($('confirm-error'), '');
  return new Promise((resolve) => {
    const yes = $('confirm-yes');
    const no = $('confirm-no');
    const finish = (value) => {
      yes.removeEventListener('click', onYes);
      no.removeEventListener('click', onNo);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onYes = async () => {
      yes.disabled = true;
      try {
        await action();
        finish(true);
      } catch (err) {
        if (err instanceof SessionExpired) finish(false);
        else setText($('confirm-error'), err.message || String(err));
      } finally {
        yes.disabled = false;
      }
    };
    const onNo = () => finish(false);
    const onClose = () => finish(false);
    yes.addEventListener('click', onYes);
    no.addEventListener('click', onNo);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    no.focus();
  });
}

function askDelete() {
  const project = ctx.project();
  if (!project) return;
  $('confirm-project').textContent = project.id;
  setText($('delete-error'), '');
  $('confirm-delete').showModal();
  $('confirm-cancel').focus();
}

async function confirmDelete() {
  const id = state.current;
  const button = $('confirm-ok');
  button.disabled = true;
  try {
    await api(`/v1/api/config/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (err) {
    if (err instanceof SessionExpired) $('confirm-delete').close();
    else setText($('delete-error'), err.message);
    return;
  } finally {
    button.disabled = false;
  }
  $('confirm-delete').close();
  closeAll();
  state.current = null;
  editor.forget();
  history.replaceState(null, '', '#');
  await loadProjects();
}

// ---------------------------------------------------------------- start

function wire() {
  onSessionExpired(sessionExpired);
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  for (const name of TABS) $(`tab-${name}`).addEventListener('click', () => selectTab(name));
  $('tabs').addEventListener('keydown', tabKeys);
  $('delete-project').addEventListener('click', askDelete);
  $('confirm-cancel').addEventListener('click', () => $('confirm-delete').close());
  $('confirm-ok').addEventListener('click', confirmDelete);
  window.addEventListener('hashchange', () => {
    const { project, tab } = parseHash();
    if (project && project !== state.current) selectProject(project, tab || state.tab);
    else if (tab && tab !== state.tab) selectTab(tab);
  });
  window.addEventListener('beforeunload', (e) => {
    if (editor.dirty()) e.preventDefault();
  });
  for (const v of VIEWS) v.init(ctx);
}

async function start() {
  wire();
  try {
    const env = await api('/v1/api/config/env');
    state.dev = env.isProd === false;
  } catch {
    state.dev = false;
  }
  show($('dev-banner'), state.dev);
  document.body.classList.toggle('dev', state.dev);
  if (state.dev || token()) {
    watchExpiry();
    await loadProjects();
  } else {
    showLogin();
  }
}

start();
