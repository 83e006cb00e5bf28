// One account: live figures per currency, the equity curve, open
// positions valued at the latest quotes, open orders and recent fills, the
// account's kill switch and its risk limits.

import { accounts, instruments, live, rememberAccount, reportError, session, onTrading, markViewOnly } from '../app.js';
import { del, explain, get, put as putJson } from '../api.js';
import { $, busy, clearErrors, confirmDialog, fillRows, formValues, h, perFrame, put, showError, td, toast } from '../dom.js';
import { fmtNum, moneyEl, pnlEl } from '../format.js';
import { Dec, decimalsOf } from '../decimal.js';
import { Portfolio } from '../portfolio.js';
import { cancelOrder, fillRow, isOpen, orderRow } from '../orders.js';
import { lineChart, toChartTime } from '../charts.js';

const accountId = Number(session.data.account);
const base = `/api/v1/accounts/${accountId}`;
let lookup;
let account;
let portfolio;
const openOrders = new Map();
let fills = [];
let chart = null;
let history = [];

// -- figures -------------------------------------------------------------------

function kpi(label, value, note) {
  return h('div', { class: 'kpi' }, h('dt', {}, label), h('dd', {}, value, note ? h('small', {}, ' ', note) : null));
}

function renderFigures() {
  const rows = portfolio.currencyRows();
  put($('#kpis'), ...rows.map((r) => h('section', { class: 'stack', 'aria-label': r.currency, 'data-currency': r.currency },
    h('h3', { class: 'small muted' }, r.currency),
    h('dl', { class: 'kpis' },
      kpi('Equity', moneyEl(r.equity, r.currency)),
      kpi('Cash', moneyEl(r.cash, r.currency)),
      kpi('Free cash', r.free === null ? '–' : moneyEl(r.free, r.currency)),
      kpi('Day P&L', r.day === null ? h('span', { class: 'muted', title: 'Known from the next UTC day on' }, '–') : pnlEl(r.day, r.currency)),
      kpi('Total P&L', pnlEl(r.total, r.currency)),
      kpi('Unrealized', pnlEl(r.unrealized, r.currency))))));
  renderPositions();
}

function renderPositions() {
  const rows = portfolio.positionRows();
  fillRows($('#positions-table tbody'), rows, (p) => {
    const tick = decimalsOf(p.instrument.tick_size);
    const lot = decimalsOf(p.instrument.lot_size);
    return h('tr', { 'data-symbol': p.instrument.symbol },
      td(h('a', { href: `/markets/${p.instrument.symbol}?account=${accountId}` }, p.instrument.symbol)),
      td(fmtNum(p.quantity, lot), { num: true }),
      td(p.average ? fmtNum(p.average, tick + 2) : '–', { num: true }),
      td(p.mark ? fmtNum(p.mark, tick) : '–', { num: true }),
      td(moneyEl(p.value, p.currency), { num: true }),
      td(pnlEl(p.unrealized, p.currency), { num: true }),
      td(pnlEl(p.realized, p.currency), { num: true }),
      td(moneyEl(p.fees, p.currency), { num: true }),
      td(p.quantity.isZero() ? null : h('a', { class: 'btn btn-small', href: `/markets/${p.instrument.symbol}?account=${accountId}&close=1` }, 'Close…')));
  }, h('span', {}, 'No positions. ', h('a', { href: '/markets' }, 'Pick an instrument'), ' to place an order.'));
}

const rerender = perFrame(() => {
  renderFigures();
  liveEquityPoint();
});

async function refreshSummary() {
  try {
    portfolio.loadSummary(await get(base));
    syncSwitch();
    rerender();
  } catch (e) {
    if (e.code !== 'unavailable') reportError('Could not refresh the account', e);
  }
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshSummary, 250);
}

// -- equity chart ---------------------------------------------------------------

function equityOf(point, currency) {
  const pair = point.by_currency?.find(([c]) => c === currency);
  if (pair) return pair[1];
  return currency === account.base_currency ? point.equity : null;
}

async function drawEquity() {
  const select = $('#equity-currency');
  const currency = select.value;
  const points = history
    .map((p) => ({ time: toChartTime(p.time), value: equityOf(p, currency) }))
    .filter((p) => p.value !== null)
    .map((p) => ({ time: p.time, value: Dec.of(p.value).toNumber() }));
  if (!chart) {
    chart = await lineChart($('#equity-chart'), {
      series: [{ name: currency, area: true, points }],
      empty: 'No equity recorded yet: it is recorded once a minute.',
    });
  } else {
    chart.setData(0, points);
  }
}

let lastLivePoint = 0;
function liveEquityPoint() {
  if (!chart) return;
  const now = Math.floor(Date.now() / 1000);
  if (now - lastLivePoint < 5) return;
  lastLivePoint = now;
  const row = portfolio.currencyRows().find((r) => r.currency === $('#equity-currency').value);
  if (row) chart.update(0, { time: now, value: row.equity.toNumber() });
}

// -- orders and fills ---------------------------------------------------------------

function renderOrders() {
  const list = [...openOrders.values()].sort((a, b) => b.id - a.id);
  fillRows($('#open-orders-table tbody'), list,
    (o) => orderRow(o, lookup, { canTrade: session.canTrade, onCancel: (order, button) => cancelOrder(accountId, order, button, lookup) }),
    'No open orders.');
  $('#cancel-all').disabled = !session.canTrade || list.length === 0;
}

function renderFills() {
  fillRows($('#fills-table tbody'), fills.slice(0, 20), (f) => fillRow(f, lookup, { withFee: false }),
    'No fills yet. Orders that trade show up here as they fill.');
}

$('#cancel-all').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const ok = await confirmDialog({
    title: 'Cancel every open order?',
    body: h('p', {}, `${openOrders.size} open order${openOrders.size === 1 ? '' : 's'} on “${account.name}” will be cancelled.`),
    confirm: 'Cancel all',
    danger: true,
  });
  if (!ok) return;
  await busy(button, async () => {
    try {
      const answer = await del(`${base}/orders`);
      toast(`Cancel requested for ${answer.cancel_requested} order${answer.cancel_requested === 1 ? '' : 's'}.`, 'ok');
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
});

// -- kill switch and limits ---------------------------------------------------------

const switchSelect = $('#account-switch');
function syncSwitch() {
  switchSelect.value = portfolio.summary.trading_state;
}
switchSelect.addEventListener('change', async () => {
  const wanted = switchSelect.value;
  const labels = { active: 'active (normal trading)', reducing: 'close-only', halted: 'halted (no new orders)' };
  const ok = await confirmDialog({
    title: 'Change this account’s kill switch?',
    body: h('p', {}, `Trading on “${account.name}” becomes ${labels[wanted]}. It applies to you and your bots; cancels always go through.`),
    confirm: 'Change it',
    danger: wanted !== 'active',
  });
  if (!ok) {
    syncSwitch();
    return;
  }
  try {
    await putJson(`${base}/kill-switch`, { state: wanted });
    toast(`Trading on “${account.name}” is now ${labels[wanted]}.`, 'ok');
    await refreshSummary();
  } catch (err) {
    toast(explain(err), 'error');
    syncSwitch();
  }
});

const limitsDialog = $('#limits-dialog');
const limitsForm = limitsDialog.querySelector('form');
$('#limits-button').addEventListener('click', async () => {
  clearErrors(limitsForm);
  try {
    const limits = await get(`${base}/risk-limits`);
    limitsForm.max_order_notional.value = limits.max_order_notional ?? '';
    limitsForm.max_position.value = limits.max_position ?? '';
    limitsForm.daily_loss_limit.value = limits.daily_loss_limit ?? '';
    limitsForm.max_leverage.value = limits.max_leverage;
    limitsForm.fee_rate_estimate.value = limits.fee_rate_estimate;
    limitsForm.allow_short.checked = limits.allow_short;
    for (const input of limitsForm.querySelectorAll('input')) input.disabled = !session.canTrade;
    limitsDialog.showModal();
  } catch (err) {
    toast(explain(err), 'error');
  }
});
limitsForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(limitsForm);
  const v = formValues(limitsForm);
  for (const field of ['max_order_notional', 'max_position', 'daily_loss_limit', 'max_leverage', 'fee_rate_estimate']) {
    if (v[field] && Dec.parse(v[field]) === null) {
      showError(limitsForm, 'Enter a number such as 1000 or 0.5.', field);
      return;
    }
  }
  const body = {
    max_order_notional: v.max_order_notional || null,
    max_position: v.max_position || null,
    daily_loss_limit: v.daily_loss_limit || null,
    max_leverage: v.max_leverage,
    fee_rate_estimate: v.fee_rate_estimate,
    allow_short: limitsForm.allow_short.checked,
  };
  try {
    await putJson(`${base}/risk-limits`, body);
    limitsDialog.close();
    toast('Risk limits saved.', 'ok');
  } catch (err) {
    showError(limitsForm, explain(err), err.field);
  }
});

// -- start ----------------------------------------------------------------------------

async function loadOrdersAndFills() {
  const [open, recent] = await Promise.all([
    get(`${base}/orders?status=open&limit=500`),
    get(`${base}/fills?limit=20`),
  ]);
  openOrders.clear();
  for (const o of open.items) openOrders.set(o.id, o);
  fills = recent.items;
  renderOrders();
  renderFills();
}

async function start() {
  lookup = await instruments();
  account = (await accounts()).find((a) => a.id === accountId);
  if (!account) {
    put($('#main'), h('div', { class: 'card empty' }, h('h1', {}, 'No such account'),
      h('p', {}, 'It does not exist, or it is not yours. '), h('p', {}, h('a', { href: '/' }, 'Back to the overview'))));
    return;
  }
  rememberAccount(accountId);
  document.title = `${account.name} · tradecore`;
  put($('#account-title'), account.name, ' ',
    h('span', { class: account.venue === 'paper' ? 'badge' : 'badge badge-live' }, account.venue === 'paper' ? 'Paper' : 'LIVE'));
  put($('#account-sub'), `Account #${account.id} · base currency ${account.base_currency} · trades on ${account.venue === 'paper' ? 'the simulated paper market' : account.venue}`);
  $('#trade-link').href = `/markets?account=${accountId}`;
  $('#orders-link').href = `/orders?account=${accountId}`;
  portfolio = new Portfolio(lookup);
  portfolio.loadSummary(await get(base));
  syncSwitch();
  markViewOnly();
  renderFigures();
  const currencies = portfolio.currencyRows().map((r) => r.currency);
  const select = $('#equity-currency');
  put(select, ...currencies.map((c) => h('option', { value: c }, c)));
  // The currency the account trades most in: the one with positions, else the base.
  const traded = portfolio.positionRows().find((p) => !p.quantity.isZero())?.currency;
  select.value = traded ?? account.base_currency;
  select.addEventListener('change', () => drawEquity());
  history = await get(`${base}/equity`);
  await Promise.all([drawEquity(), loadOrdersAndFills()]);

  live.subscribe('positions', (m) => {
    if (m.account !== accountId) return;
    portfolio.applyPositions(m.data);
    rerender();
  });
  live.subscribe('balances', (m) => {
    if (m.account !== accountId) return;
    portfolio.applyBalances(m.data);
    rerender();
  });
  live.subscribe('fills', (m) => {
    if (m.account !== accountId) return;
    fills.unshift(m.data);
    renderFills();
    $('#fills-table tbody tr')?.classList.add('flash');
    refreshSoon();
  });
  live.subscribe('orders', (m) => {
    if (m.account !== accountId || !m.data.order) return;
    const order = m.data.order;
    if (isOpen(order)) openOrders.set(order.id, order);
    else openOrders.delete(order.id);
    renderOrders();
  });
  for (const instrument of lookup.list) {
    live.subscribe(`quotes:${instrument.symbol}`, (m) => {
      if (!portfolio.positions.has(m.data.instrument)) return;
      portfolio.applyQuote(m.data);
      rerender();
    });
  }
  live.onReconnect(() => {
    refreshSummary();
    loadOrdersAndFills().catch((e) => reportError('Could not reload orders', e));
  });
  onTrading(() => refreshSummary());
  // Day changes and deposits move the day's baseline; the summary has it.
  setInterval(refreshSummary, 30_000);
}

start().catch((e) => {
  if (e.code === 'not_found') {
    put($('#main'), h('div', { class: 'card empty' }, h('h1', {}, 'No such account'),
      h('p', {}, 'It does not exist, or it is not yours.'), h('p', {}, h('a', { href: '/' }, 'Back to the overview'))));
  } else {
    reportError('Could not load the account', e);
  }
});
