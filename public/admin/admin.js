/*
 * The cluster view (/admin): plain browser script, no build step, no chart library (the chart is a
 * few SVG elements drawn here).
 *
 * Every REFRESH_MS it asks GET /api/admin/cluster, which any instance answers for the whole cluster
 * from what instances announce, and redraws. The call needs a token with scope `admin`: in
 * development the page gets one from POST /api/dev/token (again when it expires); where that call
 * is absent (production) it asks for one and keeps it in sessionStorage for this tab only.
 * Everything that came from the network is shown with textContent only.
 *
 * Query parameter: refresh_ms (default 2000, at least 250).
 */
(function () {
  'use strict';

  const params = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(250, Number(params.get('refresh_ms')) || 2000);
  const TOKEN_KEY = 'stomp-relay-admin-token';
  const SVG = 'http://www.w3.org/2000/svg';
  const CHART_W = 600;
  const CHART_H = 200;

  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const el = {
    state: q('view-state'),
    updated: q('updated'),
    form: q('token-form'),
    token: q('token'),
    tokenError: q('token-error'),
    chart: q('chart'),
    chartWindow: q('chart-window'),
    chartPeak: q('chart-peak'),
    chartNote: q('chart-note'),
    instances: q('instances'),
  };
  const storage = window.sessionStorage;
  let token = storage.getItem(TOKEN_KEY) || '';
  let devTokens = true;
  let timer = null;

  class AuthError extends Error {}

  function setState(state, text) {
    el.state.dataset.state = state;
    el.state.textContent = text;
  }

  function formatRate(n) {
    if (n >= 100) return Math.round(n).toLocaleString('en');
    return (Math.round(n * 10) / 10).toLocaleString('en');
  }

  function formatCount(n) {
    return Math.round(n).toLocaleString('en');
  }

  /** `websocket 2 · sockjs/xhr-streaming 1`, in a stable order; `none` without sessions. */
  function byTransportText(counts) {
    const entries = Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) return 'none';
    return entries.map(([t, n]) => `${t} ${formatCount(n)}`).join(' · ');
  }

  async function devToken() {
    const res = await fetch('/api/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'admin-page', scope: 'admin' }),
    });
    if (res.status === 404) {
      devTokens = false;
      return '';
    }
    const payload = await res.json().catch(() => null);
    if (!res.ok || !payload || typeof payload.token !== 'string') {
      devTokens = false;
      return '';
    }
    return payload.token;
  }

  async function fetchCluster(retried) {
    if (!token && devTokens) token = await devToken();
    if (!token) throw new AuthError('This view needs a token whose scope includes admin.');
    const res = await fetch('/api/admin/cluster', { headers: { Authorization: `Bearer ${token}` } });
    const payload = await res.json().catch(() => null);
    if (res.status === 401 || res.status === 403) {
      const detail = payload && typeof payload.detail === 'string' ? payload.detail : `HTTP ${res.status}`;
      token = '';
      storage.removeItem(TOKEN_KEY);
      // A dev token expires; fetch a fresh one once before asking the person.
      if (devTokens && res.status === 401 && !retried) return fetchCluster(true);
      throw new AuthError(detail);
    }
    if (!res.ok || !payload) {
      const detail = payload && typeof payload.detail === 'string' ? payload.detail : `HTTP ${res.status}`;
      throw new Error(detail);
    }
    return payload;
  }

  function setText(id, text) {
    q(id).textContent = text;
  }

  function renderTotals(view) {
    const t = view.totals;
    setText('total-instances', formatCount(t.instances));
    setText('total-sessions', formatCount(t.sessions));
    setText('total-by-transport', byTransportText(t.byTransport));
    setText('total-users', formatCount(t.users));
    setText('total-subscriptions', formatCount(t.subscriptions));
    setText('total-push-rate', `${formatRate(t.pushRate)}/s`);
    setText('total-pushes', `${formatCount(t.pushes)} in all`);
    setText('total-delivery-rate', `${formatRate(t.deliveryRate)}/s`);
    setText('total-deliveries', `${formatCount(t.deliveries)} in all`);
    setText('total-broker-ready', `${t.brokerReady} of ${t.instances}`);
    setText('total-cuts', formatCount(t.slowConsumerCuts));
  }

  function svg(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function formatSpan(ms) {
    if (ms < 1000) return `${(ms / 1000).toFixed(1)} s`;
    const s = Math.round(ms / 1000);
    return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
  }

  /**
   * Two lines, pushes/s and deliveries/s, from the oldest point kept to the newest (the right edge),
   * y from 0 to the peak. Until the window is full the points span the whole width.
   */
  function renderChart(history) {
    const points = history.points;
    el.chart.replaceChildren();
    for (let i = 1; i < 4; i++) {
      const y = (CHART_H * i) / 4;
      el.chart.append(svg('line', { class: 'grid', x1: 0, x2: CHART_W, y1: y, y2: y }));
    }
    const peak = Math.max(1, ...points.map((p) => Math.max(p.pushRate, p.deliveryRate)));
    el.chartPeak.textContent = `(top of the chart: ${formatRate(peak)}/s)`;
    if (points.length < 2) {
      el.chartWindow.textContent = '';
      el.chartNote.textContent = `Collecting: one point every ${formatSpan(history.intervalMs)}`;
      el.chartNote.hidden = false;
      return;
    }
    el.chartNote.hidden = true;
    const end = Date.parse(points[points.length - 1].at);
    const start = Math.max(end - history.windowS * 1000, Date.parse(points[0].at));
    const span = Math.max(end - start, history.intervalMs);
    el.chartWindow.textContent = `last ${formatSpan(span)} (up to ${formatSpan(history.windowS * 1000)})`;
    const x = (p) => CHART_W - ((end - Date.parse(p.at)) / span) * CHART_W;
    const y = (v) => CHART_H - 4 - (v / peak) * (CHART_H - 8);
    for (const [key, cls] of [
      ['pushRate', 'push'],
      ['deliveryRate', 'delivery'],
    ]) {
      const line = points.map((p) => `${x(p).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      el.chart.append(svg('polyline', { class: `line ${cls}`, points: line, 'data-series': key }));
    }
  }

  function figure(list, label, value, testid) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (testid) dd.dataset.testid = testid;
    list.append(dt, dd);
  }

  function brokerState(row) {
    if (row.heardAgoMs > 0 && row.stats === null) return ['silent', 'no stats yet'];
    if (!row.stats) return ['silent', 'no stats'];
    if (row.stats.draining) return ['draining', 'draining'];
    return row.stats.broker.ready
      ? ['ready', `${row.stats.broker.kind} ready`]
      : ['not-ready', 'broker down'];
  }

  function renderInstance(row) {
    const card = document.createElement('article');
    card.className = 'card instance';
    card.dataset.instance = row.id;
    const head = document.createElement('h3');
    const name = document.createElement('span');
    name.textContent = row.id;
    name.dataset.testid = 'instance-id';
    head.append(name);
    if (row.self) {
      const self = document.createElement('span');
      self.className = 'muted small';
      self.textContent = '(answering)';
      head.append(self);
    }
    const [state, label] = brokerState(row);
    const pill = document.createElement('span');
    pill.className = 'pill';
    pill.dataset.state = state;
    pill.dataset.testid = 'broker-state';
    pill.textContent = label;
    head.append(pill);
    card.append(head);

    const list = document.createElement('dl');
    list.className = 'figures';
    figure(list, 'Sessions', formatCount(row.sessions), 'sessions');
    figure(list, 'By transport', byTransportText(row.byTransport), 'by-transport');
    figure(list, 'Users', formatCount(row.users), 'users');
    figure(list, 'Subscriptions', formatCount(row.subscriptions), 'subscriptions');
    const s = row.stats;
    figure(list, 'Pushes', s ? `${formatRate(s.pushRate)}/s · ${formatCount(s.pushes)}` : '–', 'pushes');
    figure(
      list,
      'Deliveries',
      s ? `${formatRate(s.deliveryRate)}/s · ${formatCount(s.deliveries)}` : '–',
      'deliveries',
    );
    figure(list, 'Slow-consumer cuts', s ? formatCount(s.slowConsumerCuts) : '–', 'cuts');
    const links = s && s.broker.connections;
    figure(list, 'Broker connections', links ? `${links.up} of ${links.total} up` : '–', 'connections');
    figure(list, 'Broker reconnects', s ? formatCount(s.broker.reconnects) : '–', 'reconnects');
    figure(
      list,
      'Heard',
      row.self ? 'this instance' : `${(row.heardAgoMs / 1000).toFixed(1)} s ago`,
      'heard',
    );
    card.append(list);
    if (s && s.broker.reason) {
      const reason = document.createElement('p');
      reason.className = 'reason';
      reason.dataset.testid = 'broker-reason';
      reason.textContent = s.broker.reason;
      card.append(reason);
    }
    return card;
  }

  function render(view) {
    renderTotals(view);
    renderChart(view.history);
    el.instances.replaceChildren(...view.instances.map(renderInstance));
    const at = new Date(view.generatedAt);
    el.updated.textContent = `Updated ${at.toLocaleTimeString('en-GB')} by instance ${view.servedBy}; every ${REFRESH_MS / 1000} s.`;
  }

  async function refresh() {
    timer = null;
    try {
      const view = await fetchCluster();
      render(view);
      setState('live', 'live');
      el.form.hidden = true;
      timer = setTimeout(refresh, REFRESH_MS);
    } catch (err) {
      if (err instanceof AuthError) {
        setState('error', 'token needed');
        el.tokenError.textContent = err.message;
        el.form.hidden = false;
        return; // wait for a token
      }
      // fetch() says only "Failed to fetch": no answer came back.
      const reason = err instanceof TypeError ? 'cannot reach the server' : String(err.message || err);
      setState('stale', 'not updating');
      el.updated.textContent = `Not updating: ${reason}. Trying again…`;
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  el.form.addEventListener('submit', (event) => {
    event.preventDefault();
    token = el.token.value.trim();
    storage.setItem(TOKEN_KEY, token);
    el.tokenError.textContent = '';
    if (timer) clearTimeout(timer);
    void refresh();
  });

  void refresh();
})();
