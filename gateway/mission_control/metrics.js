// Reading the gateway's /metrics (the Prometheus text format) in the page: families by name, sums over
// label filters, and rates between two scrapes. A series the server does not report is simply absent,
// and the views say so instead of showing a zero.

import { probe } from './api.js';

function labels(text) {
  const out = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text)) !== null) out[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return out;
}

/** `name -> [{labels, value}]` for every sample line. */
export function parse(text) {
  const families = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const type = /^# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) (\w+)/.exec(line);
    if (type) { // a declared family with no sample yet is there, at zero
      const names = { counter: ['_total'], histogram: ['_count', '_sum', '_bucket'], summary: ['_count', '_sum'] }[type[2]] || [''];
      for (const suffix of names) if (!families.has(type[1] + suffix)) families.set(type[1] + suffix, []);
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[4]);
    if (!Number.isFinite(value) && m[4] !== '+Inf') continue;
    if (!families.has(m[1])) families.set(m[1], []);
    families.get(m[1]).push({ labels: m[3] ? labels(m[3]) : {}, value });
  }
  return families;
}

/** One scrape: `{status, families, at}`; `families` is null when the server has no /metrics. */
export async function scrape() {
  const res = await probe('/metrics');
  const ok = res.status === 200 && res.text.includes('# TYPE');
  return { status: res.status, families: ok ? parse(res.text) : null, at: Date.now() };
}

export function has(scraped, name) { return Boolean(scraped?.families?.has(name)); }

function matches(sample, filter) {
  return Object.entries(filter).every(([k, v]) => (typeof v === 'function' ? v(sample.labels[k]) : sample.labels[k] === v));
}

/** The sum of a family's samples that match `filter` (null when the family is absent). */
export function total(scraped, name, filter = {}) {
  const samples = scraped?.families?.get(name);
  if (!samples) return null;
  return samples.filter((s) => matches(s, filter)).reduce((acc, s) => acc + s.value, 0);
}

/** Sums grouped by one label: `Map(labelValue -> sum)`, null when the family is absent. */
export function byLabel(scraped, name, label, filter = {}) {
  const samples = scraped?.families?.get(name);
  if (!samples) return null;
  const out = new Map();
  for (const s of samples) {
    if (!matches(s, filter)) continue;
    const key = s.labels[label] ?? '';
    out.set(key, (out.get(key) || 0) + s.value);
  }
  return out;
}

/** Per second between two scrapes (null when either lacks the series or no time passed). */
export function rate(before, after, name, filter = {}) {
  const a = total(before, name, filter);
  const b = total(after, name, filter);
  if (a === null || b === null || !before || after.at <= before.at) return null;
  return Math.max(0, b - a) / ((after.at - before.at) / 1000);
}

export function fmt(value, digits = 1) {
  if (value === null || value === undefined) return '—';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString();
  return Number(value.toFixed(digits)).toString();
}
