// smsgw dashboard: plain JavaScript, no dependencies, served from the binary.
// Reads the admin API every 2 s with the admin token kept in sessionStorage, and
// switches to another cluster node when the one it reads from stops answering.
'use strict';

(function () {
  const TOKEN_KEY = 'smsgw.admin_token';
  const POLL_MS = 2000;
  const WINDOW_MS = 15 * 60 * 1000;
  const SHARE_MS = 5 * 60 * 1000;

  const $ = (sel) => document.querySelector(sel);
  const state = {
    base: '',            // '' = the node that served the page; else http://host:port
    readingNode: null,   // id of the node we read from (from its history answer)
    nodes: [],           // [{id, base}] learned from the cluster view
    history: null,       // columns from /admin/v1/stats/history
    historyNode: null,
    tick: 0,
    timer: null,
    routes: [],
    ab: {},
    problems: [],
  };

  // ---------- helpers ----------
  const dash = '—';
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const present = (v) => v !== undefined && v !== null && v !== '';
  // A figure by name: top level, then under stats, health or circuit objects (so fields
  // added to the API later show up wherever they are put).
  function pick(obj, ...names) {
    for (const n of names) {
      for (const scope of [obj, obj && obj.stats, obj && obj.health, obj && obj.sla]) {
        if (scope && typeof scope === 'object' && present(scope[n])) return scope[n];
      }
    }
    return null;
  }
  function num(v, digits) {
    if (!present(v) || typeof v !== 'number' || !isFinite(v)) return dash;
    return v.toFixed(digits === undefined ? 1 : digits);
  }
  function pct(v) {
    return typeof v === 'number' && isFinite(v) ? (v * 100).toFixed(1) + ' %' : dash;
  }
  function text(v) {
    if (!present(v)) return dash;
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function last(arr) {
    if (!arr) return null;
    for (let i = arr.length - 1; i >= 0; i--) if (present(arr[i])) return arr[i];
    return null;
  }
  function since(ts) {
    if (!ts) return '';
    const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
    return s < 120 ? s + ' s' : Math.round(s / 60) + ' min';
  }
  // A node's HTTP address as a base URL the browser can reach.
  function baseOf(http) {
    if (!http) return null;
    let host = http;
    if (host.startsWith('0.0.0.0:') || host.startsWith('[::]:')) {
      host = location.hostname + host.slice(host.lastIndexOf(':'));
    }
    return location.protocol + '//' + host;
  }

  // ---------- API ----------
  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || ('HTTP ' + status));
      this.status = status;
    }
  }
  async function api(path, opts, base) {
    const token = sessionStorage.getItem(TOKEN_KEY) || '';
    // A node that hangs (paused, partitioned) counts as down after 5 s.
    const resp = await fetch((base === undefined ? state.base : base) + path, Object.assign({
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
      signal: AbortSignal.timeout(5000),
    }, opts || {}));
    let body = null;
    const ct = resp.headers.get('content-type') || '';
    if (ct.includes('json')) body = await resp.json();
    if (!resp.ok) throw new HttpError(resp.status, body);
    return body;
  }

  // Network failure or 5xx from the node we read: try the others from the cluster view.
  async function failover(reason) {
    const current = state.base || location.origin;
    for (const n of state.nodes) {
      if (n.base === current) continue;
      try {
        await api('/admin/v1/cluster', { signal: AbortSignal.timeout(1500) }, n.base);
        if (state.readingNode !== null) health[state.readingNode] = 'unreachable';
        state.base = n.base === location.origin ? '' : n.base;
        state.readingNode = n.id;
        state.history = null;
        banner('Node at ' + current + ' stopped answering (' + reason + '); now reading from node ' + n.id + ' at ' + n.base + '.');
        return true;
      } catch (e) { /* try the next one */ }
    }
    return false;
  }

  function banner(msg) {
    const b = $('#banner');
    b.textContent = msg;
    b.hidden = !msg;
  }
  function setConn(txt, cls) {
    const c = $('#conn');
    c.textContent = txt;
    c.className = 'pill ' + (cls || '');
  }

  // ---------- charts ----------
  function lineChart(svg, t, series, opts) {
    opts = opts || {};
    const W = 600, H = 170, L = 44, R = 6, T = 8, B = 20;
    svg.replaceChildren();
    const now = t.length ? Math.max(Date.now(), t[t.length - 1]) : Date.now();
    // The last 15 minutes, or less while the node has less history (at least 2 minutes).
    const span = Math.min(WINDOW_MS, Math.max(2 * 60000, t.length ? now - t[0] : 0));
    const x0 = now - span;
    let max = opts.max || 0;
    if (!opts.max) for (const s of series) for (const v of s.values) if (typeof v === 'number' && v > max) max = v;
    if (max <= 0) max = 1;
    if (!opts.max) { const p = Math.pow(10, Math.floor(Math.log10(max))); max = Math.ceil(max / p) * p; }
    const X = (ts) => L + (W - L - R) * (ts - x0) / span;
    const Y = (v) => T + (H - T - B) * (1 - v / max);
    for (const f of [0, 0.5, 1]) {
      svg.append(svgEl('line', { x1: L, x2: W - R, y1: Y(max * f), y2: Y(max * f), class: 'grid' }));
      const lbl = svgEl('text', { x: L - 4, y: Y(max * f) + 4, class: 'axis', 'text-anchor': 'end' });
      lbl.textContent = opts.fmt ? opts.fmt(max * f) : +(max * f).toFixed(2);
      svg.append(lbl);
    }
    for (const f of [1, 2 / 3, 1 / 3, 0]) {
      const ago = span * f;
      const lbl = svgEl('text', { x: X(now - ago), y: H - 4, class: 'axis', 'text-anchor': f === 1 ? 'start' : (f === 0 ? 'end' : 'middle') });
      lbl.textContent = f === 0 ? 'now' : (ago >= 120000 ? '-' + (ago / 60000).toFixed(ago % 60000 ? 1 : 0) + ' min' : '-' + Math.round(ago / 1000) + ' s');
      svg.append(lbl);
    }
    for (const s of series) {
      let d = '';
      let pen = false;
      for (let i = 0; i < t.length; i++) {
        const v = s.values[i];
        if (t[i] < x0 || typeof v !== 'number') { pen = false; continue; }
        d += (pen ? 'L' : 'M') + X(t[i]).toFixed(1) + ',' + Y(Math.min(v, max)).toFixed(1);
        pen = true;
      }
      svg.append(svgEl('path', { d: d || 'M0,0', class: 'line ' + s.cls, 'data-series': s.name }));
    }
    svg.setAttribute('data-points', String(t.length));
  }

  function sparkline(values) {
    const W = 90, H = 22;
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'spark', width: W, height: H });
    const vals = (values || []).slice(-150);
    let d = '';
    let pen = false;
    vals.forEach((v, i) => {
      if (typeof v !== 'number') { pen = false; return; }
      const x = vals.length > 1 ? (W - 2) * i / (vals.length - 1) + 1 : W / 2;
      const y = 1 + (H - 2) * (1 - Math.max(0, Math.min(1, v)));
      d += (pen ? 'L' : 'M') + x.toFixed(1) + ',' + y.toFixed(1);
      pen = true;
    });
    svg.append(svgEl('path', { d: d || 'M0,0', class: 'line s-success' }));
    return svg;
  }

  // ---------- overview ----------
  async function loadHistory() {
    const h = state.history;
    const sameNode = h && state.historyNode === (state.base || 'self');
    const q = sameNode && h.t.length ? '?since=' + h.t[h.t.length - 1] : '';
    const fresh = await api('/admin/v1/stats/history' + q);
    if (present(fresh.node)) state.readingNode = fresh.node;
    if (!sameNode) {
      state.history = fresh;
      state.historyNode = state.base || 'self';
      return;
    }
    const cut = Date.now() - WINDOW_MS;
    const keep = (arr, add) => arr.concat(add);
    const start = () => {
      let i = 0;
      while (i < h.t.length && h.t[i] < cut) i++;
      return i;
    };
    h.t = keep(h.t, fresh.t);
    for (const k of Object.keys(fresh.series)) h.series[k] = keep(h.series[k] || [], fresh.series[k]);
    const oldLen = h.t.length - fresh.t.length;
    for (const [id, cols] of Object.entries(fresh.channels)) {
      const mine = h.channels[id] || (h.channels[id] = {});
      for (const [k, v] of Object.entries(cols)) {
        const pad = new Array(Math.max(0, oldLen - (mine[k] || []).length)).fill(null);
        mine[k] = (mine[k] || []).concat(pad, v);
      }
    }
    // Channels that got no new samples (deleted) keep their columns aligned with t.
    for (const cols of Object.values(h.channels)) {
      for (const k of Object.keys(cols)) {
        if (cols[k].length < h.t.length) cols[k] = cols[k].concat(new Array(h.t.length - cols[k].length).fill(null));
      }
    }
    const s = start();
    if (s > 0) {
      h.t = h.t.slice(s);
      for (const k of Object.keys(h.series)) h.series[k] = h.series[k].slice(s);
      for (const cols of Object.values(h.channels)) for (const k of Object.keys(cols)) cols[k] = cols[k].slice(s);
    }
  }

  function renderOverview() {
    const h = state.history;
    if (!h) return;
    const s = h.series;
    const set = (name, v) => { const e = document.querySelector('[data-overview="' + name + '"]'); if (e) e.textContent = v; };
    set('accepted_per_s', num(last(s.accepted_per_s)));
    set('sent_per_s', num(last(s.sent_per_s)));
    set('delivered_per_s', num(last(s.delivered_per_s)));
    set('failed_per_s', num(last(s.failed_per_s)));
    set('undelivered_per_s', num(last(s.undelivered_per_s)));
    set('expired_per_s', num(last(s.expired_per_s)));
    set('success_rate', pct(last(s.success_rate)));
    set('receipt_latency', num(last(s.receipt_latency_ms_p50)) + ' / ' + num(last(s.receipt_latency_ms_p99)) + ' ms');
    set('queue_depth', num(last(s.queue_depth), 0));
    set('http_429_per_s', num(last(s.http_429_per_s)));
    lineChart($('[data-chart="throughput"]'), h.t, [
      { name: 'accepted_per_s', cls: 's-accepted', values: s.accepted_per_s },
      { name: 'sent_per_s', cls: 's-sent', values: s.sent_per_s },
      { name: 'delivered_per_s', cls: 's-delivered', values: s.delivered_per_s },
      { name: 'failed_per_s', cls: 's-failed', values: s.failed_per_s },
      { name: 'undelivered_per_s', cls: 's-undelivered', values: s.undelivered_per_s },
    ]);
    lineChart($('[data-chart="latency"]'), h.t, [
      { name: 'receipt_latency_ms_p50', cls: 's-p50', values: s.receipt_latency_ms_p50 },
      { name: 'receipt_latency_ms_p99', cls: 's-p99', values: s.receipt_latency_ms_p99 },
    ]);
    lineChart($('[data-chart="pressure"]'), h.t, [
      { name: 'queue_depth', cls: 's-queue', values: s.queue_depth },
      { name: 'http_429_per_s', cls: 's-429', values: s.http_429_per_s },
    ]);
    lineChart($('[data-chart="success"]'), h.t, [
      { name: 'success_rate', cls: 's-success', values: s.success_rate },
    ], { max: 1, fmt: (v) => Math.round(v * 100) + '%' });
  }

  // ---------- channels ----------
  function metricCell(name, raw, shown) {
    return el('td', { 'data-metric': name, 'data-value': present(raw) ? String(raw) : '', text: shown });
  }

  function renderChannels(list) {
    const body = $('#channel-rows');
    const h = state.history;
    const rows = [];
    for (const c of list) {
      const hc = (h && h.channels[c.id]) || {};
      const binds = el('td', { class: 'binds' });
      for (const b of c.binds || []) {
        binds.append(el('span', { class: 'bind st-' + text(b.state), title: (b.bind || '') + ' since ' + text(b.since) },
          'n' + text(b.node) + (present(b.bind) ? ' ' + b.bind.split('#').pop() : '') + ': ' + text(b.state)));
      }
      if (!(c.binds || []).length) binds.textContent = dash;
      const tpsUsed = pick(c, 'tps_used');
      const tpsNow = present(tpsUsed) ? tpsUsed : last(hc.sent_per_s);
      const cap = pick(c, 'tps_cap', 'tps');
      const windowUsed = pick(c, 'window_in_use', 'window_used', 'in_flight');
      const upCap = pick(c, 'window_capacity');
      const windowCap = present(upCap) && upCap > 0 ? upCap : (present(c.window) ? c.window * (c.binds_configured || 1) : null);
      const sr = pick(c, 'success_rate');
      const p50 = pick(c, 'submit_latency_ms_p50');
      const p99 = pick(c, 'submit_latency_ms_p99');
      const rp50 = present(pick(c, 'receipt_latency_ms_p50')) ? pick(c, 'receipt_latency_ms_p50') : last(hc.receipt_latency_ms_p50);
      const rp99 = present(pick(c, 'receipt_latency_ms_p99')) ? pick(c, 'receipt_latency_ms_p99') : last(hc.receipt_latency_ms_p99);
      const depth = pick(c, 'queue_depth');
      const health = pick(c, 'health_score', 'score');
      const circuit = pick(c, 'circuit', 'circuit_state', 'circuit_breaker', 'breaker');
      const throttleRate = pick(c, 'throttling_rate', 'throttle_rate');
      const throttled = pick(c, 'throttled');
      const drained = c.drained === true || c.state === 'draining';
      const btn = el('button', {
        type: 'button', class: 'small', 'data-action': drained ? 'undrain' : 'drain',
        onclick: () => drain(c.id, drained ? 'undrain' : 'drain'),
      }, drained ? 'Undrain' : 'Drain');
      const details = el('details', {}, el('summary', {}, c.id),
        el('pre', { text: JSON.stringify(c, null, 1) }));
      rows.push(el('tr', { 'data-channel': c.id },
        el('td', {}, details, el('span', { class: 'muted', text: ' ' + text(c.protocol) })),
        metricCell('state', c.state, text(c.state)),
        binds,
        el('td', { 'data-metric': 'tps_used', text: num(tpsNow) + ' / ' + text(cap) }),
        el('td', { 'data-metric': 'window', text: (present(windowUsed) ? windowUsed : dash) + ' / ' + text(windowCap) }),
        metricCell('success_rate', sr, pct(sr)),
        el('td', {}, sparkline(hc.success_rate)),
        el('td', {}, el('span', { 'data-metric': 'submit_latency_ms_p50', text: num(p50) }), ' / ',
          el('span', { 'data-metric': 'submit_latency_ms_p99', 'data-value': present(p99) ? String(p99) : '', text: num(p99) })),
        el('td', { 'data-metric': 'receipt_latency', text: num(rp50) + ' / ' + num(rp99) }),
        metricCell('queue_depth', depth, present(depth) ? String(depth) : dash),
        metricCell('health_score', health, typeof health === 'number' ? num(health, health > 1 ? 0 : 2) : text(health)),
        metricCell('circuit', typeof circuit === 'object' && circuit ? (circuit.state || JSON.stringify(circuit)) : circuit,
          typeof circuit === 'object' && circuit ? text(circuit.state || circuit) : text(circuit)),
        el('td', { 'data-metric': 'throttling', title: 'throttling answers (0x58/0x14) per second now; total',
          text: present(throttleRate) ? pct(throttleRate) : num(last(hc.throttled_per_s)) + '/s · ' + text(throttled) }),
        el('td', {}, btn)));
    }
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 14, class: 'muted', text: 'no channels' })));
    // Keep open details open across refreshes.
    const open = new Set([...body.querySelectorAll('details[open]')].map((d) => d.closest('tr').dataset.channel));
    body.replaceChildren(...rows);
    for (const id of open) {
      const d = body.querySelector('tr[data-channel="' + CSS.escape(id) + '"] details');
      if (d) d.open = true;
    }
  }

  async function drain(id, action) {
    try {
      await api('/admin/v1/channels/' + encodeURIComponent(id) + '/' + action, { method: 'POST' });
      banner('');
      await refresh(true);
    } catch (e) {
      banner(action + ' ' + id + ' failed: ' + e.message);
    }
  }

  // ---------- cluster ----------
  const health = {};
  async function probe(node) {
    try {
      const r = await fetch(node.base + '/readyz', { cache: 'no-store', signal: AbortSignal.timeout(1500) });
      health[node.id] = r.ok ? 'ready' : 'not ready (' + r.status + ')';
    } catch (e) {
      health[node.id] = 'unreachable';
    }
  }

  function renderCluster(c) {
    $('#leader').textContent = 'leader ' + text(c.leader) + ' · term ' + text(c.term);
    $('#cluster-summary').textContent = (c.nodes || []).length + ' node(s), leader ' + text(c.leader) + ', term ' + text(c.term);
    const known = new Set(['id', 'addr', 'http', 'state', 'voter', 'channels', 'binds']);
    const rows = (c.nodes || []).map((n) => {
      const extra = Object.entries(n).filter(([k]) => !known.has(k)).map(([k, v]) => k + ': ' + text(v)).join(', ');
      const binds = n.binds || n.channels || [];
      const reading = state.readingNode !== null ? n.id === state.readingNode : (state.base || location.origin) === baseOf(n.http);
      return el('tr', { 'data-node': n.id, class: reading ? 'reading' : null },
        el('td', { text: text(n.id) + (reading ? ' (this view)' : '') }),
        el('td', { text: n.id === c.leader ? 'leader' : (n.voter === false ? 'learner' : 'follower') }),
        el('td', { 'data-metric': 'state', text: text(n.state) }),
        el('td', { 'data-metric': 'health', text: health[n.id] || dash }),
        el('td', { text: n.voter === undefined ? dash : (n.voter ? 'yes' : 'no') }),
        el('td', { text: text(n.http) }),
        el('td', { text: text(n.addr) }),
        el('td', { text: binds.length ? binds.map(text).join(', ') : dash }),
        el('td', { text: extra || dash }));
    });
    $('#node-rows').replaceChildren(...rows);
  }

  // ---------- routes ----------
  function share(ids) {
    const h = state.history;
    const out = {};
    let total = 0;
    for (const id of ids) {
      let sum = 0, n = 0;
      const col = h && h.channels[id] && h.channels[id].sent_per_s;
      if (col) {
        for (let i = 0; i < h.t.length; i++) {
          if (h.t[i] >= Date.now() - SHARE_MS && typeof col[i] === 'number') { sum += col[i]; n++; }
        }
      }
      out[id] = n ? sum / n : 0;
      total += out[id];
    }
    for (const id of ids) out[id] = total > 0 ? out[id] / total : null;
    return out;
  }

  function renderRoutes() {
    const rows = state.routes.map((r) => {
      const ids = (r.channels || []).map((c) => c.id);
      const sh = share(ids);
      const chans = el('td', { class: 'shares' });
      for (const c of r.channels || []) {
        const v = sh[c.id];
        const bar = el('span', { class: 'bar' }, el('span', { class: 'fill' }));
        bar.firstChild.style.width = ((v || 0) * 100).toFixed(0) + '%';
        chans.append(el('div', { 'data-route-channel': c.id },
          el('span', { class: 'cid', text: c.id + (present(c.weight) ? ' w' + c.weight : '') + (present(c.priority) ? ' p' + c.priority : '') }),
          bar, el('span', { text: v === null ? dash : pct(v) })));
      }
      const m = r.match || {};
      const match = Object.entries(m).filter(([, v]) => present(v) && !(Array.isArray(v) && !v.length))
        .map(([k, v]) => k + '=' + (Array.isArray(v) ? v.join(',') : v)).join(' ') || 'default';
      return el('tr', { 'data-route': r.id },
        el('td', { text: r.id }), el('td', { text: match }), el('td', { text: text(r.strategy) }),
        chans, el('td', {}, abCell(r)));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'no routes' })));
    $('#route-rows').replaceChildren(...rows);
  }

  function abCell(r) {
    if (!present(r.ab)) return dash;
    const ab = state.ab[r.id];
    if (!ab) return el('span', { class: 'muted', text: 'split ' + text(r.ab.split_percent) + ' % (figures ' + dash + ')' });
    const box = el('div', { class: 'ab' });
    for (const v of ['a', 'b']) {
      const f = ab[v] || {};
      box.append(el('div', { text: v.toUpperCase() + ': ' + text(f.messages) + ' msgs, ' + pct(f.delivery_rate) +
        ' delivered, dlr p50 ' + num(f.dlr_latency_ms_p50) + ' ms, cost ' + text(f.cost) }));
    }
    const p = ab.p_value;
    box.append(el('div', { class: typeof p === 'number' && p < 0.05 ? 'sig' : 'muted',
      text: 'p = ' + num(p, 3) + (typeof p === 'number' ? (p < 0.05 ? ' (significant)' : ' (not significant)') : '') }));
    return box;
  }

  async function loadRoutes() {
    state.routes = await api('/admin/v1/routes');
    for (const r of state.routes) {
      if (!present(r.ab)) continue;
      try {
        state.ab[r.id] = await api('/admin/v1/routes/' + encodeURIComponent(r.id) + '/ab');
      } catch (e) {
        delete state.ab[r.id];
      }
    }
  }

  // ---------- lookup ----------
  function renderMessage(m) {
    const events = el('ol', { class: 'timeline' });
    for (const e of m.events || []) {
      events.append(el('li', {}, el('b', { text: e.status }), ' ' + text(e.at) +
        (e.channel ? ' via ' + e.channel : '') +
        (e.smsc_message_ids ? ' smsc ' + e.smsc_message_ids.join(',') : '') + (e.note ? ' — ' + e.note : '') +
        (e.notes || []).map((n) => ' — ' + text(n.at) + ' ' + n.note).join('')));
    }
    const parts = el('table', { class: 'parts' }, el('tr', {}, el('th', { text: 'part' }), el('th', { text: 'status' }),
      el('th', { text: 'smsc id' }), el('th', { text: 'error' })));
    for (const p of m.part_states || []) {
      parts.append(el('tr', { 'data-part': p.part }, el('td', { text: text(p.part) }), el('td', { text: text(p.status) }),
        el('td', { text: text(p.smsc_message_id) }), el('td', { text: p.error ? p.error.code + ' ' + text(p.error.smsc_code) : dash })));
    }
    return el('div', { class: 'message', 'data-message': m.id },
      el('h3', { text: m.id + ' · ' + m.status }),
      el('p', { class: 'muted', text: 'tenant ' + text(m.tenant) + ' · to ' + text(m.to) + ' · ' + text(m.parts) + ' part(s) ' +
        text(m.encoding) + ' · channel ' + text(m.channel) + ' · client_ref ' + text(m.client_ref) + ' · attempts ' + text(m.attempts) +
        (m.error ? ' · error ' + m.error.code : '') }),
      el('div', { class: 'cols' }, events, parts));
  }

  async function lookup(q) {
    const out = $('#lookup-result');
    out.replaceChildren(el('p', { class: 'muted', text: 'looking up…' }));
    const found = [];
    try {
      if (/^[0-9A-Za-z]{26}$/.test(q)) {
        try {
          found.push(await api('/admin/v1/messages/' + encodeURIComponent(q)));
        } catch (e) {
          if (e.status !== 404) throw e;
        }
      }
      if (!found.length) {
        // A phone number (E.164, "+" first) is looked up by recipient, anything else by client_ref.
        const by = /^\+[0-9 ]{6,20}$/.test(q) ? 'to' : 'client_ref';
        const r = await api('/admin/v1/messages?' + by + '=' + encodeURIComponent(q));
        found.push(...r.messages);
      }
      out.replaceChildren(...(found.length ? found.map(renderMessage) : [el('p', { text: 'no message with id, client_ref or recipient ' + q })]));
    } catch (e) {
      out.replaceChildren(el('p', { class: 'error', text: 'lookup failed: ' + e.message }));
    }
  }

  // ---------- the loop ----------
  async function refresh(quick) {
    const [channels, cluster] = await Promise.all([api('/admin/v1/channels'), api('/admin/v1/cluster')]);
    state.nodes = (cluster.nodes || []).map((n) => ({ id: n.id, base: baseOf(n.http) })).filter((n) => n.base);
    // Channels and cluster are required; a section whose endpoint fails (an older node
    // without it, say) shows what it had and says so, without hiding the others.
    const problems = [];
    if (!quick) {
      const parts = [loadHistory(), Promise.all(state.nodes.map(probe))];
      if (state.tick % 5 === 0) parts.push(loadRoutes());
      for (const r of await Promise.allSettled(parts)) {
        if (r.status === 'rejected') {
          if (!(r.reason instanceof HttpError)) throw r.reason;
          problems.push(r.reason.message);
        }
      }
    }
    state.problems = problems;
    renderCluster(cluster);
    renderChannels(channels);
    renderOverview();
    renderRoutes();
    const now = new Date();
    $('#updated').textContent = 'updated ' + now.toLocaleTimeString();
    document.body.dataset.updated = String(now.getTime());
    document.body.dataset.ticks = String(state.tick);
  }

  async function loop() {
    try {
      await refresh(false);
      setConn('live · ' + (state.base || location.origin) + (state.problems.length ? ' (partly: ' + state.problems.join('; ') + ')' : ''),
        state.problems.length ? 'bad' : 'ok');
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin('The admin token was refused.');
        return;
      }
      setConn('trouble: ' + e.message, 'bad');
      const network = !(e instanceof HttpError) || e.status >= 500;
      if (network && (await failover(e.message))) {
        state.tick++;
        state.timer = setTimeout(loop, 0);
        return;
      }
    }
    state.tick++;
    state.timer = setTimeout(loop, POLL_MS);
  }

  function showLogin(msg) {
    clearTimeout(state.timer);
    $('#app').hidden = true;
    $('#logout').hidden = true;
    $('#login-box').hidden = false;
    $('#login-error').textContent = msg || '';
    setConn('not connected', '');
    $('#token').focus();
  }

  async function start() {
    $('#login-box').hidden = true;
    $('#app').hidden = false;
    $('#logout').hidden = false;
    try {
      await api('/admin/v1/cluster');
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin('The admin token was refused.');
        return;
      }
    }
    loop();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
      $('#token').value = '';
      start();
    });
    $('#logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('');
    });
    $('#lookup-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      lookup($('#lookup-q').value.trim());
    });
    if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin('');
  });
})();
