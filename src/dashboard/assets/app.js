// The signround dashboard: a job list and a job page over /api/v1 (src/dashboard/dashboard.h),
// refreshed by polling. No framework and no build step. Everything the server returns is put
// into the page as text (textContent, text nodes, SVG attributes set one by one), never as
// markup, so labels, URIs and errors cannot become elements or scripts.
'use strict';

(function () {
  const TOKEN_KEY = 'signround.token';
  const LIST_POLL_MS = 2000;
  const JOB_POLL_MS = 1000;
  const EVENT_PAGE = 500;
  const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
  const STATES = ['QUEUED', 'RUNNING', 'UPLOADING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');
  let generation = 0; // bumped on every navigation: older pollers stop
  let listPageSize = 50;

  class AuthError extends Error {}

  // --- DOM helpers: text only ---------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'data') Object.assign(node.dataset, value);
      else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else node[key] = value;
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
    }
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    append(node, children);
    return node;
  }

  function jobLink(id) {
    return el('a', { href: '#/jobs/' + encodeURIComponent(id), class: 'mono', text: id });
  }

  function stateBadge(state) {
    const known = STATES.includes(state) ? state : 'UNSPECIFIED';
    return el('span', { class: 'state state-' + known, text: String(state) });
  }

  function labelChips(labels) {
    return Object.entries(labels || {}).map(([k, v]) => el('span', { class: 'label', text: k + '=' + v }));
  }

  function time(ms) {
    return ms ? new Date(ms).toLocaleString() : '\u2014';
  }

  function duration(fromMs, toMs) {
    if (!fromMs) return '\u2014';
    let s = Math.max(0, Math.round(((toMs || Date.now()) - fromMs) / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    s %= 60;
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + s + 's';
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
  }

  function loss(v) {
    return v === null || v === undefined ? '\u2014' : Number(v).toPrecision(4);
  }

  function progressOf(job) {
    const done = job.blocks_done || 0;
    const count = job.block_count || 0;
    const bar = el('progress', { max: Math.max(count, 1), value: done });
    return el('span', {}, bar, ' ', count ? done + '/' + count + ' blocks' : '\u2014');
  }

  // --- the API ------------------------------------------------------------------------------

  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    let response;
    try {
      response = await fetch(path, { headers, cache: 'no-store' });
    } catch (e) {
      throw new Error('the server cannot be reached (' + e.message + ')');
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (response.status === 401) throw new AuthError(body && body.error ? body.error.message : 'a token is needed');
    if (!response.ok) {
      const error = body && body.error ? body.error.code + ': ' + body.error.message : 'HTTP ' + response.status;
      throw new Error(error);
    }
    return body;
  }

  function setStatus(error) {
    if (error) {
      statusLine.textContent = 'not updated: ' + error.message;
      statusLine.className = 'status offline';
    } else {
      statusLine.textContent = 'updated ' + new Date().toLocaleTimeString();
      statusLine.className = 'status';
    }
  }

  // Calls step() now and every `ms` until it returns false or the page moves on. An
  // AuthError shows the token form instead.
  function poll(ms, step) {
    const mine = generation;
    const tick = async () => {
      if (mine !== generation) return;
      let again = true;
      try {
        again = await step();
        if (mine !== generation) return;
        setStatus(null);
      } catch (e) {
        if (mine !== generation) return;
        if (e instanceof AuthError) {
          showTokenForm(e.message);
          return;
        }
        setStatus(e);
      }
      if (again !== false) setTimeout(tick, ms);
    };
    tick();
  }

  // --- the token ----------------------------------------------------------------------------

  function showTokenForm(reason) {
    generation++;
    const had = sessionStorage.getItem(TOKEN_KEY);
    const input = el('input', { type: 'password', id: 'token-input', autocomplete: 'off', placeholder: 'bearer token' });
    const form = el('form', { class: 'token-form', id: 'token-form' },
      input,
      el('button', { type: 'submit', id: 'token-save', text: 'Use token' }),
      had ? el('button', { type: 'button', text: 'Forget token', on: { click: () => { sessionStorage.removeItem(TOKEN_KEY); route(); } } }) : null);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      route();
    });
    main.replaceChildren(el('div', { class: 'card' },
      el('h2', { text: 'This server asks for a bearer token' }),
      reason ? el('p', { class: 'muted', id: 'token-reason', text: (had ? 'The token was refused: ' : '') + reason }) : null,
      el('p', { class: 'muted', text: 'The token is kept in this tab only (sessionStorage) and sent to this server alone.' }),
      form));
    input.focus();
  }

  // --- the job list -------------------------------------------------------------------------

  function listQuery(params) {
    const q = new URLSearchParams();
    if (params.get('state')) q.set('state', params.get('state'));
    for (const label of params.getAll('label')) if (label) q.append('label', label);
    q.set('page_size', String(listPageSize));
    return q;
  }

  function showList(params) {
    const stateSelect = el('select', { id: 'state-filter' }, el('option', { value: '', text: 'every state' }),
      STATES.map((s) => el('option', { value: s, text: s, selected: params.get('state') === s })));
    const labelInput = el('input', { id: 'label-filter', placeholder: 'label: key=value', value: params.getAll('label').join(' ') });
    const filters = el('form', { class: 'filters' }, stateSelect, labelInput, el('button', { type: 'submit', text: 'Filter' }));
    filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      if (stateSelect.value) next.set('state', stateSelect.value);
      for (const label of labelInput.value.split(/\s+/)) if (label) next.append('label', label);
      listPageSize = 50;
      location.hash = '#/?' + next.toString();
    });
    const body = el('tbody');
    const more = el('button', { type: 'button', text: 'Show more', hidden: true,
      on: { click: () => { listPageSize = Math.min(listPageSize + 50, 1000); route(); } } });
    const table = el('table', { id: 'jobs' },
      el('thead', {}, el('tr', {}, ['Job', 'State', 'Progress', 'Model', 'Labels', 'Created', 'Attempts'].map((h) => el('th', { text: h })))),
      body);
    const empty = el('p', { class: 'muted', text: 'No jobs.', hidden: true });
    main.replaceChildren(el('h1', { text: 'Jobs' }), filters, el('div', { class: 'card' }, table, empty, more));

    poll(LIST_POLL_MS, async () => {
      const page = await api('/api/v1/jobs?' + listQuery(params).toString());
      body.replaceChildren(...page.jobs.map((job) => el('tr', { data: { job: job.id } },
        el('td', {}, jobLink(job.id)),
        el('td', {}, stateBadge(job.state)),
        el('td', {}, progressOf(job)),
        el('td', { class: 'uri mono', title: job.spec.model_uri, text: job.spec.model_uri }),
        el('td', { class: 'labels' }, labelChips(job.spec.labels)),
        el('td', { text: time(job.create_time_ms) }),
        el('td', { text: String(job.attempts) }))));
      empty.hidden = page.jobs.length > 0;
      more.hidden = !page.next_page_token || listPageSize >= 1000;
    });
  }

  // --- the job page -------------------------------------------------------------------------

  // Per-block losses (iteration 0 and best) as an SVG line chart; a later attempt's report of
  // a block replaces an earlier one.
  function renderChart(container, blocks, blockCount, calibrated) {
    const points = [...blocks.values()].sort((a, b) => a.index - b.index);
    container.replaceChildren();
    if (!calibrated) {
      container.append(el('p', { class: 'muted', text: 'Rounded to nearest without calibration data: no losses are measured.' }));
      return;
    }
    if (!points.length) {
      container.append(el('p', { class: 'muted', text: 'No block has finished yet.' }));
      return;
    }
    const values = points.flatMap((p) => [p.iter0, p.best]).filter((v) => v !== null && Number.isFinite(v));
    const W = 760;
    const H = 300;
    const m = { l: 70, r: 16, t: 12, b: 40 };
    const chart = svg('svg', { id: 'loss-chart', class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'loss per block' });
    const xMax = Math.max(blockCount - 1, points[points.length - 1].index, 1);
    const x = (i) => m.l + (i / xMax) * (W - m.l - m.r);
    let lo = values.length ? Math.min(...values) : 0;
    let hi = values.length ? Math.max(...values) : 1;
    const log = lo > 0 && hi / lo >= 20;
    let y;
    let ticks;
    if (log) {
      const a = Math.floor(Math.log10(lo));
      const b = Math.ceil(Math.log10(hi));
      y = (v) => H - m.b - ((Math.log10(v) - a) / Math.max(b - a, 1)) * (H - m.t - m.b);
      ticks = [];
      for (let e = a; e <= b; e++) ticks.push(Math.pow(10, e));
    } else {
      lo = 0;
      if (hi <= 0) hi = 1;
      const step = niceStep(hi / 5);
      hi = Math.ceil(hi / step) * step;
      y = (v) => H - m.b - (v / hi) * (H - m.t - m.b);
      ticks = [];
      for (let v = 0; v <= hi + step / 2; v += step) ticks.push(v);
    }
    for (const t of ticks) {
      chart.append(svg('line', { class: 'grid-line', x1: m.l, x2: W - m.r, y1: y(t), y2: y(t) }));
      chart.append(svg('text', { x: m.l - 6, y: y(t) + 4, 'text-anchor': 'end' }, tickLabel(t, log, hi)));
    }
    const xStep = Math.max(1, Math.ceil((xMax + 1) / 12));
    for (let i = 0; i <= xMax; i += xStep) {
      chart.append(svg('text', { x: x(i), y: H - m.b + 16, 'text-anchor': 'middle' }, String(i)));
    }
    chart.append(svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
    chart.append(svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
    chart.append(svg('text', { x: (m.l + W - m.r) / 2, y: H - 6, 'text-anchor': 'middle' }, 'decoder block'));
    chart.append(svg('text', { x: 14, y: (m.t + H - m.b) / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, log ? 'loss (log)' : 'loss'));
    for (const series of ['iter0', 'best']) {
      const drawn = points.filter((p) => p[series] !== null && Number.isFinite(p[series]) && (!log || p[series] > 0));
      chart.append(svg('polyline', { class: series, points: drawn.map((p) => `${x(p.index).toFixed(1)},${y(p[series]).toFixed(1)}`).join(' ') }));
      for (const p of drawn) {
        chart.append(svg('circle', { class: 'point ' + series, 'data-block': p.index, cx: x(p.index).toFixed(1), cy: y(p[series]).toFixed(1), r: 3.5 },
          svg('title', {}, `block ${p.index}: ${series === 'best' ? 'best ' + loss(p.best) + ' at iteration ' + p.bestIteration : 'iteration 0 ' + loss(p.iter0)}`)));
      }
    }
    container.append(
      el('div', { class: 'legend' },
        el('span', {}, el('span', { class: 'swatch iter0' }), 'loss at iteration 0 (rounded to nearest)'),
        el('span', {}, el('span', { class: 'swatch best' }), 'best loss'),
        el('span', { class: 'muted', id: 'chart-count', text: points.length + ' of ' + (blockCount || '?') + ' blocks' })),
      chart);
  }

  // One notation per axis: powers of ten on a log axis, and on a linear one exponents when
  // its top is below 1e-3 (losses of small blocks) or above 1e5.
  function tickLabel(t, log, top) {
    if (log) return t.toExponential(0);
    if (t === 0) return '0';
    if (top < 1e-3 || top >= 1e5) return t.toExponential(1);
    return Number(t.toPrecision(3)).toString();
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function eventText(e) {
    if (e.state_change) {
      const c = e.state_change;
      return `${c.from} \u2192 ${c.to}` + (c.reason ? ': ' + c.reason : '');
    }
    if (e.block_progress) {
      const b = e.block_progress;
      return `block ${b.block_index + 1}/${b.block_count}: loss ${loss(b.loss_iter0)} \u2192 ${loss(b.best_loss)} (iteration ${b.best_iteration}, ${Number(b.seconds).toFixed(1)} s)` + (b.resumed ? ', resumed' : '');
    }
    if (e.artifact_uploaded) {
      const a = e.artifact_uploaded.artifact;
      return `uploaded ${a.format}: ${a.uri} (${bytes(a.bytes)})`;
    }
    if (e.error) return 'error' + (e.error.will_retry ? ' (will retry)' : '') + ': ' + e.error.message;
    return 'event';
  }

  function settingsRows(spec) {
    const rows = [];
    for (const [key, value] of Object.entries(spec)) {
      if (key === 'labels' || value === null || value === '' || value === false || value === 0) continue;
      if (Array.isArray(value) && value.length === 0) continue;
      const shown = typeof value === 'object' ? JSON.stringify(value) : String(value);
      rows.push(el('tr', {}, el('th', { text: key }), el('td', { class: 'mono', text: shown })));
    }
    return rows;
  }

  function showJob(id) {
    const title = el('h1', {}, 'Job ', el('span', { class: 'mono', id: 'job-id', text: id }));
    const head = el('div', { class: 'card', id: 'job-head' });
    const errorBox = el('div', { class: 'card error-box', id: 'job-error', hidden: true });
    const chartBox = el('div', { id: 'chart' });
    const summary = el('dl', { class: 'summary' });
    const settings = el('table', { id: 'settings' });
    const effective = el('pre', { class: 'settings mono', id: 'effective-settings' });
    const artifacts = el('tbody');
    const events = el('ol', { class: 'events', id: 'events' });
    main.replaceChildren(title, head, errorBox,
      el('div', { class: 'card' }, el('h2', { text: 'Loss per block' }), chartBox),
      el('div', { class: 'grid' },
        el('div', { class: 'card' }, el('h2', { text: 'Job' }), summary),
        el('div', { class: 'card' }, el('h2', { text: 'Settings' }), settings,
          el('details', {}, el('summary', { text: 'Effective settings' }), effective))),
      el('div', { class: 'card' }, el('h2', { text: 'Artifacts' }),
        el('table', { id: 'artifacts' }, el('thead', {}, el('tr', {}, ['Format', 'URI', 'Size', 'SHA-256'].map((h) => el('th', { text: h })))), artifacts)),
      el('div', { class: 'card' }, el('h2', { text: 'Events' }), events));

    const blocks = new Map();
    let nextSequence = 1;
    let lastEffective = null;
    let chartKey = '';
    poll(JOB_POLL_MS, async () => {
      const job = await api('/api/v1/jobs/' + encodeURIComponent(id));
      for (;;) {
        const page = await api(`/api/v1/jobs/${encodeURIComponent(id)}/events?from=${nextSequence}&limit=${EVENT_PAGE}`);
        for (const e of page.events) {
          nextSequence = e.sequence + 1;
          if (e.block_progress) {
            const b = e.block_progress;
            blocks.set(b.block_index, { index: b.block_index, iter0: b.loss_iter0, best: b.best_loss, bestIteration: b.best_iteration });
          }
          events.prepend(el('li', {}, el('span', { class: 'muted', text: new Date(e.time_ms).toLocaleTimeString() + ' #' + e.sequence + ' ' }), eventText(e)));
        }
        if (page.events.length < EVENT_PAGE) break;
      }

      head.replaceChildren(stateBadge(job.state), ' ', progressOf(job),
        el('div', { class: 'labels' }, labelChips(job.spec.labels)));
      errorBox.hidden = !job.error;
      errorBox.replaceChildren(el('h2', { text: job.state === 'FAILED' ? 'Error' : 'Last attempt\u2019s error' }), el('pre', { text: job.error }));

      const key = job.block_count + ':' + [...blocks.values()].map((b) => b.index + '=' + b.best).join(',');
      if (key !== chartKey) {
        chartKey = key;
        renderChart(chartBox, blocks, job.block_count, Boolean(job.spec.calibration_uri));
      }

      summary.replaceChildren(...[
        ['Tenant', job.tenant || '(default)'], ['Device', job.device || '\u2014'],
        ['Attempts', String(job.attempts)], ['Created', time(job.create_time_ms)],
        ['Started', time(job.start_time_ms)], ['Ended', time(job.end_time_ms)],
        ['Run time', duration(job.start_time_ms, job.end_time_ms)], ['Latest loss', loss(job.latest_loss)],
        ['Output', job.spec.output_uri]].flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
      settings.replaceChildren(...settingsRows(job.spec));
      if (job.effective_settings_json !== lastEffective) {
        lastEffective = job.effective_settings_json;
        let text = lastEffective;
        try {
          text = JSON.stringify(JSON.parse(lastEffective), null, 2);
        } catch (e) { /* shown as stored */ }
        effective.textContent = text;
      }
      artifacts.replaceChildren(...job.artifacts.map((a) => el('tr', {},
        el('td', { text: a.format }),
        el('td', { class: 'mono', text: a.uri }),
        el('td', { text: bytes(a.bytes), title: a.bytes + ' bytes' }),
        el('td', { class: 'mono', text: a.sha256 }))));
      if (!job.artifacts.length) artifacts.append(el('tr', {}, el('td', { class: 'muted', colSpan: 4, text: 'None yet.' })));
      return !(TERMINAL.has(job.state) && nextSequence > job.last_sequence);
    });
  }

  // --- navigation ---------------------------------------------------------------------------

  function route() {
    generation++;
    const hash = location.hash.replace(/^#/, '');
    const job = hash.match(/^\/jobs\/([^/?]+)$/);
    if (job) {
      let id;
      try {
        id = decodeURIComponent(job[1]);
      } catch (e) {
        id = job[1];
      }
      showJob(id);
      return;
    }
    const q = hash.indexOf('?');
    showList(new URLSearchParams(q >= 0 ? hash.slice(q + 1) : ''));
  }

  document.getElementById('token-button').addEventListener('click', () => showTokenForm(''));
  window.addEventListener('hashchange', route);
  route();
})();
