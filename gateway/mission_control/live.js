// The Live tab: this gateway's WebSocket connections, live queries, change events per second, requests and
// errors per route (from /metrics, refreshed every 5 s; rates between two refreshes) and the health of NATS,
// JetStream and each database (GET /v1/api/health). A series the server does not report is shown as
// "not reported", never as a zero.

import { probe } from './api.js';
import { $, card, h } from './dom.js';
import { byLabel, fmt, has, rate, scrape, total } from './metrics.js';

const EVERY_MS = 5000;
let ctx = null;
let timer = 0;
let prev = null;
let running = false;
const els = {};

function build() {
  els.updated = h('span', { class: 'muted small', id: 'live-updated' });
  els.refresh = h('button', { type: 'button', class: 'btn ghost small', id: 'live-refresh', text: 'Refresh', onclick: () => tick() });
  els.note = h('p', { class: 'muted degraded', id: 'live-note', hidden: true });
  els.stats = h('div', { class: 'stats', id: 'live-stats' });
  els.routes = h('div', { id: 'live-routes' });
  els.db = h('div', { id: 'live-db' });
  els.health = h('div', { id: 'live-health' });
  $('panel-live').replaceChildren(
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('div', {}, h('h2', { text: 'This gateway, now' }),
        h('p', { class: 'muted small', text: 'From /metrics every 5 s. Rates are per second over the last interval; with several gateways, each shows its own.' })),
      h('div', { class: 'head-actions' }, els.updated, els.refresh)),
      els.note, els.stats),
    card('Health', 'GET /v1/api/health: what a load balancer sees.', els.health),
    card('Requests per route', 'HTTP requests and errors (status 400 and above) by route template.', els.routes),
    card('Database operations', 'Per alias of this project, as the db workers in this process counted them.', els.db));
}

function stat(id, label, value, hint, missing) {
  return h('div', { class: missing ? 'stat missing' : 'stat', 'data-stat': id },
    h('div', { class: 'stat-label', text: label }),
    h('div', { class: 'stat-value', text: missing ? 'not reported' : value }),
    h('div', { class: 'muted small', text: missing ? `no ${missing} in /metrics` : hint || '' }));
}

/** Live queries per collection, when the server labels them so; said once when it does not. */
function perCollection(now, live) {
  const samples = (now.families.get('sc_live_queries') || []).filter((x) => x.labels.collection !== undefined);
  if (samples.length === 0) {
    const el = stat('per-collection', 'Live queries per collection', '', '', 'collection label on sc_live_queries');
    el.hidden = live === null; // the total already says it is not reported
    return el;
  }
  return h('div', { class: 'stat', 'data-stat': 'per-collection' }, h('div', { class: 'stat-label', text: 'Live queries per collection' }),
    h('ul', { class: 'plain small' }, samples.map((x) => h('li', { class: 'mono', text: `${x.labels.alias ? `${x.labels.alias}/` : ''}${x.labels.collection}: ${x.value}` }))));
}

function renderStats(now) {
  const project = ctx.projectId();
  const ws = total(now, 'sc_websocket_connections');
  const live = total(now, 'sc_live_queries');
  const shared = total(now, 'sc_live_shared_queries');
  const events = rate(prev, now, 'sc_live_events_received_total');
  const fanned = rate(prev, now, 'sc_live_events_fanned_out_total');
  const reqs = rate(prev, now, 'sc_http_requests_total');
  const errs = rate(prev, now, 'sc_http_requests_total', { status: (s) => Number(s) >= 400 });
  const denials = total(now, 'sc_rule_denials_total');
  const first = prev === null ? 'measured from the next refresh' : '';
  els.stats.replaceChildren(
    stat('websockets', 'WebSocket connections', fmt(ws, 0), 'open now', ws === null && 'sc_websocket_connections'),
    stat('live-queries', 'Live queries', fmt(live, 0), shared === null ? '' : `${fmt(shared, 0)} distinct (shared)`, live === null && 'sc_live_queries'),
    stat('events', 'Change events / s', events === null ? '…' : fmt(events), fanned === null ? first : `${fmt(fanned)} / s sent to subscribers`,
      !has(now, 'sc_live_events_received_total') && 'sc_live_events_received_total'),
    stat('requests', 'Requests / s', reqs === null ? '…' : fmt(reqs), errs === null ? first : `${fmt(errs)} / s errors`,
      !has(now, 'sc_http_requests_total') && 'sc_http_requests_total'),
    stat('denials', 'Rule denials', fmt(denials, 0), 'since start', denials === null && 'sc_rule_denials_total'),
    perCollection(now, live),
  );

  const byRoute = byLabel(now, 'sc_http_requests_total', 'route');
  if (byRoute === null) {
    els.routes.replaceChildren(h('p', { class: 'muted degraded', text: 'Not reported by this server: /metrics has no sc_http_requests_total.' }));
  } else {
    const rows = [...byRoute.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([route, count]) => {
      const errors = total(now, 'sc_http_requests_total', { route, status: (s) => Number(s) >= 400 });
      const perSecond = rate(prev, now, 'sc_http_requests_total', { route });
      const seconds = total(now, 'sc_http_request_seconds_sum', { route });
      const n = total(now, 'sc_http_request_seconds_count', { route });
      return h('tr', { 'data-route': route },
        h('td', { class: 'mono', text: route }),
        h('td', { class: 'metric', text: String(count) }),
        h('td', { class: errors ? 'metric bad' : 'metric', text: String(errors) }),
        h('td', { class: 'metric', text: perSecond === null ? '…' : fmt(perSecond) }),
        h('td', { class: 'metric', text: n ? `${fmt((seconds / n) * 1000, 2)} ms` : '—' }));
    });
    els.routes.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'table compact', id: 'live-routes-table' },
      h('thead', {}, h('tr', {}, ['Route', 'Requests', 'Errors', 'Per second', 'Avg latency'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows))));
  }

  const ops = byLabel(now, 'sc_db_operations_total', 'alias', { project });
  if (ops === null) {
    els.db.replaceChildren(h('p', { class: 'muted degraded', text: 'Not reported here: no sc_db_operations_total in this gateway\'s /metrics (the db workers may run in their own processes, with their own --metrics-port).' }));
  } else {
    const rows = [...ops.entries()].map(([alias, count]) => {
      const failed = total(now, 'sc_db_operations_total', { project, alias, outcome: (o) => o !== 'ok' });
      const connected = total(now, 'sc_db_connected', { project, alias });
      return h('tr', { 'data-alias': alias }, h('td', { class: 'mono strong', text: alias }),
        h('td', { class: 'metric', text: String(count) }), h('td', { class: failed ? 'metric bad' : 'metric', text: String(failed) }),
        h('td', {}, connected === null ? '—' : h('span', { class: connected ? 'state on' : 'state bad', text: connected ? 'connected' : 'not connected' })));
    });
    els.db.replaceChildren(rows.length === 0 ? h('p', { class: 'muted', text: 'No operation yet.' })
      : h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' },
        h('thead', {}, h('tr', {}, ['Alias', 'Operations', 'Not ok', 'Pool'].map((t) => h('th', { text: t })))), h('tbody', {}, rows))));
  }
}

function renderHealth(res) {
  const body = res.json;
  if (!body || typeof body !== 'object') {
    els.health.replaceChildren(h('p', { class: 'muted degraded', text: res.status ? `The health endpoint answered ${res.status} without a report.` : 'The server cannot be reached.' }));
    return;
  }
  const status = body.status || (body.ok ? 'serving' : 'unavailable');
  const item = (label, ok, text) => h('li', { class: ok === null ? 'health-item' : ok ? 'health-item good' : 'health-item bad' },
    h('span', { class: 'strong', text: label }), h('span', { text }));
  const nats = body.nats;
  const js = body.jetstream;
  const dbs = (Array.isArray(body.databases) ? body.databases : []).filter((d) => d.project === undefined || d.project === ctx.projectId());
  els.health.replaceChildren(
    h('p', {}, h('span', { id: 'live-status', class: status === 'serving' ? 'state on' : status === 'degraded' ? 'state warn' : 'state bad', text: `${status} (HTTP ${res.status})` })),
    h('ul', { class: 'health' },
      item('NATS', typeof nats === 'object' ? Boolean(nats.connected) : typeof nats === 'boolean' ? nats : null,
        typeof nats === 'object' ? `${nats.connected ? 'connected' : 'not connected'}${nats.server ? ` to ${nats.server}` : ''}` : typeof nats === 'boolean' ? (nats ? 'connected' : 'not connected') : 'not reported'),
      item('JetStream', js ? Boolean(js.ok) : null, js ? (js.ok ? `ok · ${js.streams ?? '?'} stream(s)` : js.error || 'not ok') : 'not reported'),
      item('Db workers', body.workers === undefined ? null : body.workers > 0, body.workers === undefined ? 'not reported' : String(body.workers)),
      ...(body.databases === undefined ? [item('Databases', null, 'not reported')]
        : dbs.map((d) => item(`Database ${d.alias}`, d.state === 'connected' ? true : d.state === 'idle' ? null : false,
          `${d.state}${d.reason ? `: ${d.reason}` : ''}`)))));
}

let ticks = 0;

async function tick() {
  clearTimeout(timer);
  const mine = ++ticks;
  const [now, health] = await Promise.all([scrape(), probe('/v1/api/health')]);
  if (!running || mine !== ticks) return;
  if (now.families === null) {
    els.note.hidden = false;
    els.note.textContent = now.status === 404
      ? 'This server has no /metrics endpoint: connections, live queries, events and requests are not shown.'
      : `/metrics could not be read (${now.status || 'no answer'}).`;
    els.stats.replaceChildren();
    els.routes.replaceChildren(h('p', { class: 'muted degraded', text: 'Not available without /metrics.' }));
    els.db.replaceChildren(h('p', { class: 'muted degraded', text: 'Not available without /metrics.' }));
  } else {
    els.note.hidden = true;
    renderStats(now);
  }
  renderHealth(health);
  prev = now.families ? now : null;
  els.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  if (running) timer = setTimeout(tick, EVERY_MS);
}

export default {
  tab: 'live',
  init(context) {
    ctx = context;
    build();
  },
  reset() { prev = null; },
  open() {
    running = true;
    tick();
  },
  close() {
    running = false;
    clearTimeout(timer);
  },
};
