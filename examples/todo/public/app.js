// The todo app: email sign-in, a live query on my todos, add/toggle/delete, and a service call.
// The client comes from the gateway (no build step): /v1/api/sdk/space-api.js.
import { API, cond } from '/v1/api/sdk/space-api.js';

const params = new URLSearchParams(location.search);
const PROJECT = params.get('project') || 'todo-app';
const DB_ALIAS = params.get('db') || 'db'; // the alias in config.yaml (`db`, whatever the database)
const SESSION_KEY = `todo-session:${PROJECT}`;

const api = new API(PROJECT); // same origin as the page
const db = api.DB(DB_ALIAS);

api.onConnectionChange((state) => {
  if (!session) return;
  if (state === 'open') setStatus('live', 'Live');
  else setStatus('down', 'Reconnecting');
});

const $ = (id) => document.getElementById(id);
const el = {
  authView: $('auth-view'), appView: $('app-view'), session: $('session'), who: $('who'),
  status: $('status'), statusText: $('status-text'), signout: $('signout'),
  tabSignin: $('tab-signin'), tabSignup: $('tab-signup'), authTitle: $('auth-title'), authSub: $('auth-sub'),
  authForm: $('auth-form'), nameField: $('name-field'), name: $('name'), email: $('email'),
  password: $('password'), authError: $('auth-error'), authSubmit: $('auth-submit'),
  addForm: $('add-form'), newTodo: $('new-todo'), add: $('add'), appError: $('app-error'),
  list: $('list'), empty: $('empty'), loading: $('loading'), counts: $('counts'),
  summaryBtn: $('summary-btn'), summary: $('summary'),
};

/** @type {{user: any, token: string, idField: string} | null} */
let session = null;
let subscription = null;
let todos = [];
let mode = 'signin';

// ------------------------------------------------------------------ helpers

function show(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

function errorText(res, fallback) {
  return (res && res.data && res.data.error) || fallback;
}

function userId() {
  return session.user[session.idField];
}

function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2) + Date.now().toString(36);
}

function setStatus(kind, text) {
  el.status.className = `status ${kind}`;
  el.statusText.textContent = text;
}

// ------------------------------------------------------------------ signing in

function setMode(next) {
  mode = next;
  const signup = mode === 'signup';
  el.tabSignin.setAttribute('aria-selected', String(!signup));
  el.tabSignup.setAttribute('aria-selected', String(signup));
  el.nameField.hidden = !signup;
  el.authTitle.textContent = signup ? 'Create your account' : 'Welcome back';
  el.authSub.textContent = signup ? 'One account, your todos on every device.' : 'Sign in to see your todos on every device, live.';
  el.authSubmit.textContent = signup ? 'Create account' : 'Sign in';
  el.password.autocomplete = signup ? 'new-password' : 'current-password';
  show(el.authError, '');
}

const SIGNIN_ERRORS = {
  400: 'Please enter a valid email address and a password.',
  401: 'Wrong email or password. Please try again, or create an account.',
  404: 'There is no account with this email. Create one?',
  409: 'An account with this email already exists. Sign in instead.',
  429: 'Too many attempts. Please wait a little and try again.',
};

async function onAuthSubmit(event) {
  event.preventDefault();
  const email = el.email.value.trim();
  const pass = el.password.value;
  const name = el.name.value.trim() || email.split('@')[0];
  if (!email || !pass) {
    show(el.authError, 'Enter your email and password.');
    return;
  }
  el.authSubmit.disabled = true;
  show(el.authError, '');
  try {
    const res = mode === 'signup' ? await db.signUp(email, name, pass, 'user') : await db.signIn(email, pass);
    if (res.status !== 200) {
      show(el.authError, SIGNIN_ERRORS[res.status] || errorText(res, `Could not sign in (${res.status}).`));
      return;
    }
    startSession(res.data.user, res.data.token);
  } catch (err) {
    show(el.authError, 'Cannot reach the server. Check your connection and try again.');
  } finally {
    el.authSubmit.disabled = false;
  }
}

function startSession(user, token) {
  session = { user, token, idField: '_id' in user ? '_id' : 'id' };
  localStorage.setItem(SESSION_KEY, JSON.stringify({ user, token }));
  api.setToken(token);
  el.password.value = '';
  el.who.textContent = user.name ? `${user.name} · ${user.email}` : user.email;
  el.authView.hidden = true;
  el.appView.hidden = false;
  el.session.hidden = false;
  show(el.summary, '');
  show(el.appError, '');
  todos = [];
  rows.clear();
  el.list.replaceChildren();
  el.loading.hidden = false;
  el.empty.hidden = true;
  el.counts.textContent = '';
  watchTodos();
  el.newTodo.focus();
}

function signOut(message) {
  if (subscription) subscription.unsubscribe();
  subscription = null;
  session = null;
  localStorage.removeItem(SESSION_KEY);
  api.setToken(null);
  el.appView.hidden = true;
  el.session.hidden = true;
  el.authView.hidden = false;
  setMode('signin');
  if (message) show(el.authError, message);
}

// ------------------------------------------------------------------ the live list

function watchTodos() {
  setStatus('', 'Connecting');
  subscription = db.liveQuery('todos').where(cond('userId', '==', userId())).subscribe(
    (docs) => {
      setStatus('live', 'Live');
      todos = docs;
      render();
    },
    (error) => {
      setStatus('down', 'Offline');
      if (/auth|token|denied|rule/i.test(error)) signOut('Your session has expired. Please sign in again.');
      else show(el.appError, `Live updates stopped: ${error}`);
    },
  );
}

/** @type {Map<string, HTMLLIElement>} rendered rows by todo id, reused so only new rows animate */
const rows = new Map();

function row(id) {
  let li = rows.get(id);
  if (li) return li;
  li = document.createElement('li');
  li.dataset.id = id;
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.addEventListener('change', () => toggle(id, box.checked));
  const text = document.createElement('span');
  text.className = 'text';
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'delete';
  del.textContent = '×';
  del.title = 'Delete';
  del.addEventListener('click', () => remove(id));
  li.append(box, text, del);
  li.classList.add('new');
  setTimeout(() => li.classList.remove('new'), 400); // after the appear animation, if any
  rows.set(id, li);
  return li;
}

function render() {
  el.loading.hidden = true;
  const sorted = [...todos].sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
  const seen = new Set();
  const items = sorted.map((todo) => {
    const id = String(todo[session.idField]);
    seen.add(id);
    const li = row(id);
    li.classList.add('item');
    li.classList.toggle('done', Boolean(todo.done));
    const [box, text, del] = li.children;
    box.checked = Boolean(todo.done);
    box.setAttribute('aria-label', `Mark "${todo.text}" ${todo.done ? 'not done' : 'done'}`);
    text.textContent = todo.text;
    del.setAttribute('aria-label', `Delete "${todo.text}"`);
    return li;
  });
  for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
  // Only touch the DOM order when it changed (moving nodes would restart their animation).
  const current = [...el.list.children];
  if (current.length !== items.length || current.some((node, i) => node !== items[i])) {
    el.list.replaceChildren(...items);
  }
  el.empty.hidden = items.length > 0;
  const done = todos.filter((t) => t.done).length;
  el.counts.textContent = todos.length ? `${todos.length - done} open · ${done} done` : '';
}

async function mutate(promise, what) {
  show(el.appError, '');
  try {
    const res = await promise;
    if (res.status !== 200) show(el.appError, `Could not ${what}: ${errorText(res, `error ${res.status}`)}`);
    if (res.status === 401) signOut('Your session has expired. Please sign in again.');
    return res.status === 200;
  } catch (err) {
    show(el.appError, `Could not ${what}: the server is unreachable.`);
    return false;
  }
}

async function onAdd(event) {
  event.preventDefault();
  const text = el.newTodo.value.trim();
  if (!text) return;
  // Clear at once so the next todo can be typed while this one is saved; put it back if saving fails.
  el.newTodo.value = '';
  el.newTodo.focus();
  const doc = { [session.idField]: newId(), userId: userId(), text, done: false, createdAt: new Date().toISOString() };
  const ok = await mutate(db.insert('todos').doc(doc).apply(), 'add the todo');
  if (!ok && !el.newTodo.value) el.newTodo.value = text;
}

function mine(id) {
  return [cond(session.idField, '==', id), cond('userId', '==', userId())];
}

function toggle(id, done) {
  return mutate(db.update('todos').where(...mine(id)).set({ done }).apply(), 'update the todo');
}

function remove(id) {
  return mutate(db.delete('todos').where(...mine(id)).apply(), 'delete the todo');
}

// ------------------------------------------------------------------ the service

async function onSummary() {
  el.summaryBtn.disabled = true;
  try {
    const res = await api.call('todo', 'summary', { todos }, 5000);
    if (res.status === 200) {
      const s = res.data.result;
      el.summary.replaceChildren();
      const head = document.createElement('strong');
      head.textContent = s.message;
      const detail = document.createElement('span');
      detail.className = 'muted';
      detail.textContent = `${s.total} total · ${s.done} done · ${s.open} open — from the todo service`;
      el.summary.append(head, detail);
      el.summary.hidden = false;
    } else if (res.status === 503) {
      show(el.summary, 'The summary service is not running (start it with python -m examples.todo).');
    } else {
      show(el.summary, `Summary failed: ${errorText(res, `error ${res.status}`)}`);
    }
  } catch (err) {
    show(el.summary, 'Summary failed: the server is unreachable.');
  } finally {
    el.summaryBtn.disabled = false;
  }
}

// ------------------------------------------------------------------ start

el.tabSignin.addEventListener('click', () => setMode('signin'));
el.tabSignup.addEventListener('click', () => setMode('signup'));
el.authForm.addEventListener('submit', onAuthSubmit);
el.addForm.addEventListener('submit', onAdd);
el.signout.addEventListener('click', () => signOut());
el.summaryBtn.addEventListener('click', onSummary);

try {
  const saved = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
  if (saved && saved.user && saved.token) startSession(saved.user, saved.token);
  else signOut();
} catch {
  signOut();
}
