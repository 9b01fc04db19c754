// The Config editor tab: the project's raw config as JSON, saved with POST /v1/api/config/projects (the
// server validates the whole config, applies it without a restart and writes it back to the file).

import { SessionExpired, api } from './api.js';
import { $, isObject, setText, show } from './dom.js';

let ctx = null;
let loaded = ''; // the editor text as last loaded, to know whether it was edited
let shown = null; // the project in the editor

function load(project) {
  loaded = JSON.stringify(project, null, 2);
  $('editor').value = loaded;
  setText($('save-ok'), '');
  setText($('save-error'), '');
  updateDirty();
}

function updateDirty() {
  show($('dirty'), $('editor').value !== loaded);
}

function read() {
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
    project = read();
  } catch (err) {
    setText($('save-error'), err.message);
    return;
  }
  const previous = ctx.projectId();
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
  loaded = $('editor').value; // not dirty any more, even before the reload below
  await ctx.reload(project.id);
  const renamed = project.id !== previous && ctx.projects().some((p) => p.id === previous);
  setText($('save-ok'), renamed
    ? `Saved and applied as project "${project.id}" (the id changed, so "${previous}" is still there).`
    : 'Saved and applied');
}

function format() {
  try {
    $('editor').value = JSON.stringify(read(), null, 2);
    setText($('save-error'), '');
  } catch (err) {
    setText($('save-error'), err.message);
  }
  updateDirty();
}

export default {
  tab: 'editor',
  init(context) {
    ctx = context;
    $('editor').addEventListener('input', updateDirty);
    $('editor').addEventListener('keydown', (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
        e.preventDefault();
        save();
      }
    });
    $('save').addEventListener('click', save);
    $('format').addEventListener('click', format);
    $('revert').addEventListener('click', () => { const p = ctx.project(); if (p) load(p); });
  },
  reset(project) {
    if (!project) return;
    if (project.id === shown && $('editor').value !== loaded) {
      // another view saved while this text was being edited: keep the text, and say so
      setText($('save-error'), 'The project changed on the server since you started editing (another view saved it). '
        + 'Revert shows it; Save replaces it with this text.');
      loaded = JSON.stringify(project, null, 2);
      updateDirty();
      return;
    }
    shown = project.id;
    load(project);
  },
  open() {},
  close() {},
  dirty() { return !$('project-view').hidden && $('editor').value !== loaded; },
  forget() { loaded = $('editor').value; },
};
