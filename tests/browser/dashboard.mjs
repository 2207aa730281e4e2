// Drives Debian's headless Chromium (through playwright-core, no downloaded browser)
// against a running smsgw node for tests/gateway/t99_dashboard.rs. Prints one JSON
// report on stdout; the Rust test makes the assertions.
//
// env: DASH_URL (http://127.0.0.1:PORT), ADMIN_TOKEN, SCREENSHOT (png path),
//      LOOKUP_REF (a client_ref to look up), CHROMIUM (default /usr/bin/chromium),
//      CHART_SIGNAL (a file written once the charts were read under traffic),
//      FAILOVER=1 (then: wait for the file named by KILL_SIGNAL to appear and report
//      the view after the serving node died).
import { chromium } from 'playwright-core';
import { existsSync, writeFileSync } from 'node:fs';

const url = process.env.DASH_URL;
const token = process.env.ADMIN_TOKEN;
const shot = process.env.SCREENSHOT;
const report = { errors: [], console: [], steps: [] };
const step = (s) => report.steps.push(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function apiChannels() {
  const r = await fetch(url + '/admin/v1/channels', { headers: { Authorization: 'Bearer ' + token } });
  return r.json();
}

function pickApi(c, name) {
  for (const scope of [c, c.stats]) if (scope && scope[name] !== undefined && scope[name] !== null) return scope[name];
  return null;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => report.errors.push(String(e)));
  // Everything the page loads must come from the gateway (no CDN, works offline).
  report.foreign_requests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.hostname !== '127.0.0.1' && u.protocol !== 'data:') report.foreign_requests.push(r.url());
  });
  page.on('console', (m) => {
    report.console.push(m.type() + ': ' + m.text());
    if (m.type() === 'error') report.errors.push('console: ' + m.text());
  });
  await page.goto(url + '/dashboard');
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  step('token entered');
  await page.waitForSelector('tr[data-channel]', { timeout: 20000 });
  await page.waitForFunction(() => Number(document.querySelector('[data-chart="throughput"]').dataset.points || 0) >= 2, null, { timeout: 20000 });
  report.token_in_session_storage = await page.evaluate(() => sessionStorage.getItem('smsgw.admin_token') !== null);
  report.token_in_local_storage = await page.evaluate(() => localStorage.length);

  // Two readings of the throughput chart, two polls apart.
  const reading = () => page.evaluate(() => {
    const svg = document.querySelector('[data-chart="throughput"]');
    const d = svg.querySelector('path[data-series="accepted_per_s"]').getAttribute('d');
    return { points: Number(svg.dataset.points), d, ticks: Number(document.body.dataset.ticks),
      accepted: document.querySelector('[data-overview="accepted_per_s"]').textContent };
  });
  report.chart1 = await reading();
  await page.waitForFunction((t) => Number(document.body.dataset.ticks) >= t + 2, report.chart1.ticks, { timeout: 20000 });
  report.chart2 = await reading();
  step('chart read twice');
  // Tell the test it may stop the traffic.
  if (process.env.CHART_SIGNAL) writeFileSync(process.env.CHART_SIGNAL, 'read');
  if (shot) await page.screenshot({ path: shot.replace(/\.png$/, '-live.png'), fullPage: true });

  // Wait for traffic to settle: two API readings 2.5 s apart with equal figures, then
  // a page refresh after that, then compare the page's rows with the API.
  const figures = (list) => JSON.stringify(list.map((c) => [c.id, c.state, pickApi(c, 'success_rate'),
    pickApi(c, 'submit_latency_ms_p99'), pickApi(c, 'queue_depth')]));
  let prev = '';
  for (let i = 0; i < 40; i++) {
    const now = figures(await apiChannels());
    if (now === prev) break;
    prev = now;
    await sleep(2500);
  }
  const t0 = Date.now();
  await page.waitForFunction((t) => Number(document.body.dataset.updated) > t, t0, { timeout: 20000 });
  report.page_rows = await page.evaluate(() => [...document.querySelectorAll('tr[data-channel]')].map((tr) => {
    const m = {};
    for (const td of tr.querySelectorAll('[data-metric][data-value]')) m[td.dataset.metric] = td.dataset.value;
    return { id: tr.dataset.channel, metrics: m };
  }));
  report.api_rows = (await apiChannels()).map((c) => ({ id: c.id, metrics: {
    state: String(pickApi(c, 'state') ?? ''), success_rate: String(pickApi(c, 'success_rate') ?? ''),
    submit_latency_ms_p99: String(pickApi(c, 'submit_latency_ms_p99') ?? ''), queue_depth: String(pickApi(c, 'queue_depth') ?? '') } }));
  step('rows compared');

  // Message lookup by client_ref.
  if (process.env.LOOKUP_REF) {
    await page.fill('#lookup-q', process.env.LOOKUP_REF);
    await page.click('#lookup-form button');
    await page.waitForSelector('#lookup-result [data-message]', { timeout: 10000 });
    report.lookup = await page.evaluate(() => ({
      messages: document.querySelectorAll('#lookup-result [data-message]').length,
      events: [...document.querySelectorAll('#lookup-result .timeline li b')].map((b) => b.textContent),
      parts: [...document.querySelectorAll('#lookup-result tr[data-part] td:nth-child(2)')].map((td) => td.textContent),
    }));
    step('lookup');
  }
  report.routes = await page.evaluate(() => [...document.querySelectorAll('tr[data-route]')].map((tr) => ({
    id: tr.dataset.route, strategy: tr.children[2].textContent,
    shares: [...tr.querySelectorAll('[data-route-channel]')].map((d) => d.textContent) })));
  report.cluster = await page.evaluate(() => ({
    summary: document.querySelector('#cluster-summary').textContent,
    nodes: [...document.querySelectorAll('tr[data-node]')].map((tr) => [...tr.children].map((td) => td.textContent)) }));
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  // Drain and undrain the first channel with the buttons.
  const first = report.page_rows[0] && report.page_rows[0].id;
  if (first) {
    const row = `tr[data-channel="${first}"]`;
    await page.click(`${row} button[data-action="drain"]`);
    await page.waitForFunction((r) => document.querySelector(r + ' [data-metric="state"]').textContent === 'draining', row, { timeout: 10000 });
    report.after_drain_api = (await apiChannels()).find((c) => c.id === first).state;
    await page.click(`${row} button[data-action="undrain"]`);
    await page.waitForFunction((r) => document.querySelector(r + ' [data-metric="state"]').textContent !== 'draining', row, { timeout: 10000 });
    report.after_undrain_api = (await apiChannels()).find((c) => c.id === first).state;
    step('drain/undrain');
  }

  if (process.env.FAILOVER === '1') {
    writeFileSync(process.env.READY_SIGNAL, 'ready');
    for (let i = 0; i < 300 && !existsSync(process.env.KILL_SIGNAL); i++) await sleep(100);
    const t1 = Date.now();
    await page.waitForFunction((t) => Number(document.body.dataset.updated) > t + 1000, t1, { timeout: 30000 });
    report.failover = await page.evaluate(() => ({
      banner: document.querySelector('#banner').textContent,
      conn: document.querySelector('#conn').textContent,
      rows: document.querySelectorAll('tr[data-channel]').length,
      nodes: [...document.querySelectorAll('tr[data-node]')].map((tr) => [...tr.children].map((td) => td.textContent)) }));
    if (shot) await page.screenshot({ path: shot.replace(/\.png$/, '-failover.png'), fullPage: true });
    step('failover');
  }
} catch (e) {
  report.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
