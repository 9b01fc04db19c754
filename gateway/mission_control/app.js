// Mission Control: the admin UI of this Space Cloud-compatible server. No dependencies, no build step.
//
// It talks to the config API (gateway/admin.py): POST /v1/api/config/login, GET/POST /v1/api/config/projects,
// DELETE /v1/api/config/{project}, GET /v1/api/config/env, and to discovery: GET /v1/api/{project}/services.
// The admin token lives in sessionStorage (this tab only) and nothing here is ever logged.
// Everything is rendered with textContent, never innerHTML.

const TOKEN_KEY = 'missionControl.token';
const USER_KEY = 'missionControl.user';
const SERVICES_EVERY_MS = 5000;
const TABS = ['overview', 'editor', 'services'];
const MASK = '••••••••';

const $ = (id) => document.getElementById(id);

const state = {
  dev: false,
  projects: [],
  current: null, // project id
  tab: 'overview',
  loaded: '', // the editor text as last loaded, to know whether it was edited
  servicesTimer: 0,
  servicesSeq: 0,
};

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

class SessionExpired extends Error {}

async function api(path, { method = 'GET', body } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && path !== '/v1/api/config/login') headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('The server cannot be reached. Is it running?', 0);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : {}; } catch { data = null; }
  if (res.status === 401 && path !== '/v1/api/config/login') {
    sessionExpired();
    throw new SessionExpired();
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status} ${res.statusText}`;
    throw new ApiError(message, res.status);
  }
  return data ?? {};
}

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(el, visible) { el.hidden = !visible; }

function setText(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

// ---------------------------------------------------------------- config helpers

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `projects` may be a list (v0.10+) or a map keyed by id (v0.9). */
function normaliseProjects(projects) {
  if (Array.isArray(projects)) return projects.filter(isObject);
  if (isObject(projects)) return Object.entries(projects).filter(([, p]) => isObject(p)).map(([id, p]) => ({ id, ...p }));
  return [];
}

/** A secret or a connection string for display: `$VAR` (read from the environment) is shown, anything else masked. */
function masked(value) {
  if (typeof value === 'string' && /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(value)) return `${value} (from env)`;
  if (value === undefined || value === null || value === '') return '—';
  return MASK;
}

const SENSITIVE = new Set(['secret', 'conn', 'pass', 'password']);

/** A deep copy with every sensitive key masked (for tooltips of rules and the like). */
function maskDeep(value) {
  if (Array.isArray(value)) return value.map(maskDeep);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SENSITIVE.has(k) ? masked(v) : maskDeep(v)]));
}

function ruleBadge(rule) {
  if (!isObject(rule)) return h('span', { class: 'rule rule-none', text: 'no rule' });
  const kind = typeof rule.rule === 'string' ? rule.rule : '?';
  const known = ['allow', 'deny', 'authenticated', 'match', 'and', 'or', 'query', 'func', 'webhook', 'force', 'remove'];
  const cls = known.includes(kind) ? `rule rule-${kind}` : 'rule';
  let label = kind;
  if ((kind === 'and' || kind === 'or') && Array.isArray(rule.clauses)) label = `${kind} (${rule.clauses.length})`;
  return h('span', { class: cls, title: JSON.stringify(maskDeep(rule)), text: label });
}

function functionRules(functions) {
  const rows = [];
  if (!isObject(functions)) return rows;
  if (isObject(functions.services)) { // v0.11/12 shape
    for (const [svc, spec] of Object.entries(functions.services)) {
      if (!isObject(spec)) continue;
      if (spec.register) rows.push({ service: svc, fn: '(register)', rule: spec.register });
      for (const [fn, fspec] of Object.entries(isObject(spec.functions) ? spec.functions : {})) {
        rows.push({ service: svc, fn, rule: isObject(fspec) ? fspec.rule : undefined });
      }
    }
  }
  if (isObject(functions.rules)) { // v0.9/10 shape
    for (const [svc, fns] of Object.entries(functions.rules)) {
      for (const [fn, rule] of Object.entries(isObject(fns) ? fns : {})) rows.push({ service: svc, fn, rule });
    }
  }
  return rows;
}

// ---------------------------------------------------------------- views

function showView(name) {
  show($('loading'), false);
  show($('login-view'), name === 'login');
  show($('app-view'), name === 'app');
  show($('session'), name === 'app');
  $('who').textContent = state.dev ? 'dev mode' : (sessionStorage.getItem(USER_KEY) || 'admin');
  show($('logout'), !state.dev);
}

function showLogin(notice = '') {
  stopServices();
  setText($('login-notice'), notice);
  setText($('login-error'), '');
  $('pass').value = '';
  showView('login');
  ($('user').value ? $('pass') : $('user')).focus();
}

function sessionExpired() {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('Your admin session has expired or is no longer valid. Log in again.');
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
    const { token } = await api('/v1/api/config/login', { method: 'POST', body: { user, pass } });
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, user);
    $('pass').value = '';
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
  sessionStorage.removeItem(TOKEN_KEY);
  state.projects = [];
  state.current = null;
  showLogin('Logged out.');
}

// ---------------------------------------------------------------- projects

async function loadProjects(select) {
  setText($('app-error'), '');
  let data;
  try {
    data = await api('/v1/api/config/projects');
  } catch (err) {
    if (err instanceof SessionExpired) return;
    showView('app');
    setText($('app-error'), `Cannot read the projects: ${err.message}`);
    return;
  }
  // sorted by name: the server appends an edited project at the end of its list
  state.projects = normaliseProjects(data.projects)
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
    return h('li', {},
      h('button', {
        type: 'button', class: 'project-item', 'data-project': p.id,
        'aria-current': p.id === state.current ? 'page' : null,
        onclick: () => selectProject(p.id, state.tab),
      },
      h('span', { class: 'project-name', text: p.name || p.id }),
      h('span', { class: 'project-meta mono', text: `${p.id} · ${dbs} db${dbs === 1 ? '' : 's'}` })));
  }));
  $('project-count').textContent = String(state.projects.length);
  show($('projects-empty'), state.projects.length === 0);
}

function parseHash() {
  const [project, tab] = location.hash.replace(/^#\/?/, '').split('/').map((s) => decodeURIComponent(s || ''));
  return { project: project || '', tab: TABS.includes(tab) ? tab : '' };
}

function editorDirty() {
  return !$('project-view').hidden && $('editor').value !== state.loaded;
}

function selectProject(id, tab = 'overview', { force = false } = {}) {
  if (!force && id !== state.current && editorDirty() && !window.confirm('Discard the unsaved changes in the editor?')) {
    return;
  }
  const changed = id !== state.current || force;
  state.current = id || null;
  for (const el of document.querySelectorAll('.project-item')) {
    if (el.dataset.project === state.current) el.setAttribute('aria-current', 'page');
    else el.removeAttribute('aria-current');
  }
  const project = currentProject();
  show($('no-project'), !project);
  show($('project-view'), Boolean(project));
  if (!project) {
    stopServices();
    return;
  }
  if (changed) {
    $('project-title').textContent = project.name || project.id;
    $('project-id').textContent = project.id;
    renderOverview(project);
    loadEditor(project);
    $('services-body').replaceChildren();
    show($('services-table'), false);
    show($('services-empty'), false);
    $('services-updated').textContent = '';
  }
  selectTab(tab);
}

function currentProject() {
  return state.projects.find((p) => p.id === state.current) || null;
}

function selectTab(tab) {
  state.tab = TABS.includes(tab) ? tab : 'overview';
  for (const name of TABS) {
    const selected = name === state.tab;
    $(`tab-${name}`).setAttribute('aria-selected', String(selected));
    $(`tab-${name}`).tabIndex = selected ? 0 : -1;
    show($(`panel-${name}`), selected);
  }
  const hash = `#/${encodeURIComponent(state.current || '')}/${state.tab}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  if (state.tab === 'services') startServices();
  else stopServices();
}

// ---------------------------------------------------------------- overview

function section(title, subtitle, ...body) {
  return h('div', { class: 'card' },
    h('div', { class: 'card-head' }, h('div', {}, h('h2', { text: title }), subtitle && h('p', { class: 'muted small', text: subtitle }))),
    ...body);
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted', text: empty });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { text: x })))),
    h('tbody', {}, rows.map(({ key, cells }) => h('tr', { 'data-key': key }, cells.map((c) => h('td', {}, c)))))));
}

function renderOverview(project) {
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
      const realtime = s.isRealtimeEnabled !== false; // the server's default: on
      const rules = isObject(s.rules) ? s.rules : {};
      colRows.push({ key: `collection:${alias}.${name}`, cells: [
        h('span', { class: 'mono strong', text: name }),
        h('span', { class: 'mono muted', text: alias }),
        h('span', { class: realtime ? 'state on' : 'state off', text: realtime ? 'realtime on' : 'realtime off' }),
        h('span', { class: 'rules' }, ['create', 'read', 'update', 'delete'].filter((op) => op in rules)
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
    section('Project', 'Secrets and connection strings are masked here; the config editor shows the raw config.', facts),
    section('Databases', 'modules.crud: one entry per database alias.',
      table(['Alias', 'Type', 'Connection', 'State', 'Collections'], dbRows, 'No database configured.')),
    section('Collections', 'Realtime (live queries) is on unless isRealtimeEnabled is false.',
      table(['Collection', 'Database', 'Realtime', 'Rules'], colRows, 'No collection configured: every collection falls back to the defaults.')),
    section('Function rules', fnState,
      table(['Service', 'Function', 'Rule'], fnRows, 'No function rules.')),
  );
}

// ---------------------------------------------------------------- editor

function loadEditor(project) {
  state.loaded = JSON.stringify(project, null, 2);
  $('editor').value = state.loaded;
  setText($('save-ok'), '');
  setText($('save-error'), '');
  updateDirty();
}

function updateDirty() {
  show($('dirty'), $('editor').value !== state.loaded);
}

function readEditor() {
  let value;
  try {
    value = JSON.parse($('editor').value);
  } catch (err) {
    throw new Error(`Not valid JSON: ${err.message}`);
  }
  if (!isObject(value)) throw new Error('The project config must be a JSON object.');
  if (typeof value.id !== 'string' || !value.id) throw new Error('The project config needs an "id".');
  return value;
}

async function save() {
  setText($('save-ok'), '');
  setText($('save-error'), '');
  let project;
  try {
    project = readEditor();
  } catch (err) {
    setText($('save-error'), err.message);
    return;
  }
  const previous = state.current;
  const button = $('save');
  button.disabled = true;
  try {
    await api('/v1/api/config/projects', { method: 'POST', body: project });
  } catch (err) {
    if (!(err instanceof SessionExpired)) setText($('save-error'), err.message); // the server's reason, verbatim
    button.disabled = false;
    return;
  }
  button.disabled = false;
  state.loaded = $('editor').value; // not dirty any more, even before the reload below
  await loadProjects(project.id);
  const renamed = project.id !== previous && state.projects.some((p) => p.id === previous);
  setText($('save-ok'), renamed
    ? `Saved and applied as project "${project.id}" (the id changed, so "${previous}" is still there).`
    : 'Saved and applied');
}

function formatEditor() {
  try {
    $('editor').value = JSON.stringify(readEditor(), null, 2);
    setText($('save-error'), '');
  } catch (err) {
    setText($('save-error'), err.message);
  }
  updateDirty();
}

function revertEditor() {
  const project = currentProject();
  if (project) loadEditor(project);
}

// ---------------------------------------------------------------- services

function stopServices() {
  clearTimeout(state.servicesTimer);
  state.servicesTimer = 0;
  state.servicesSeq += 1; // a reply still on its way is dropped
}

function startServices() {
  stopServices();
  refreshServices();
}

async function refreshServices() {
  clearTimeout(state.servicesTimer);
  const seq = ++state.servicesSeq;
  const project = state.current;
  if (!project) return;
  const button = $('services-refresh');
  button.disabled = true;
  button.textContent = 'Refreshing…';
  try {
    const data = await api(`/v1/api/${encodeURIComponent(project)}/services`);
    if (seq !== state.servicesSeq) return;
    renderServices(Array.isArray(data.services) ? data.services : []);
    setText($('services-error'), '');
    $('services-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof SessionExpired || seq !== state.servicesSeq) return;
    setText($('services-error'), `Cannot list the services: ${err.message}`);
  } finally {
    if (seq === state.servicesSeq) {
      button.disabled = false;
      button.textContent = 'Refresh';
      if (state.tab === 'services' && !$('app-view').hidden) {
        state.servicesTimer = setTimeout(refreshServices, SERVICES_EVERY_MS);
      }
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

// ---------------------------------------------------------------- delete

function askDelete() {
  const project = currentProject();
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
  state.current = null;
  state.loaded = $('editor').value;
  history.replaceState(null, '', '#');
  await loadProjects();
}

// ---------------------------------------------------------------- start

function wire() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  for (const name of TABS) $(`tab-${name}`).addEventListener('click', () => selectTab(name));
  $('editor').addEventListener('input', updateDirty);
  $('editor').addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
      e.preventDefault();
      save();
    }
  });
  $('save').addEventListener('click', save);
  $('format').addEventListener('click', formatEditor);
  $('revert').addEventListener('click', revertEditor);
  $('services-refresh').addEventListener('click', () => refreshServices());
  $('delete-project').addEventListener('click', askDelete);
  $('confirm-cancel').addEventListener('click', () => $('confirm-delete').close());
  $('confirm-ok').addEventListener('click', confirmDelete);
  window.addEventListener('hashchange', () => {
    const { project, tab } = parseHash();
    if (project && project !== state.current) selectProject(project, tab || state.tab);
    else if (tab && tab !== state.tab) selectTab(tab);
  });
  window.addEventListener('beforeunload', (e) => {
    if (editorDirty()) e.preventDefault();
  });
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
  if (state.dev || sessionStorage.getItem(TOKEN_KEY)) {
    await loadProjects();
  } else {
    showLogin();
  }
}

start();
