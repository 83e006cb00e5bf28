// One account: live figures per currency, the equity curve, open
// positions valued at the latest quotes, open orders and recent fills, the
// account's kill switch and its risk limits.
//
// A live venue account also shows where its orders go, the confirmation
// it needs before any is sent, what the venue reports (balances,
// positions, differences, errors) with "Reconcile now", and its own order
// ticket over its venue symbols (they have no market page here).

import { accounts, accountTradingState, instruments, isLive, live, rememberAccount, reportError, session, onTrading, markViewOnly } from '../app.js';
import { del, explain, get, post, put as putJson } from '../api.js';
import { $, busy, clearErrors, confirmDialog, fillRows, formValues, h, perFrame, put, showError, td, toast } from '../dom.js';
import { fmtNum, moneyEl, pnlEl, timeEl } from '../format.js';
import { Dec } from '../decimal.js';
import { Portfolio } from '../portfolio.js';
import { cancelOrder, fillRow, isOpen, orderRow, stepDecimals, symbolEl } from '../orders.js';
import { lineChart, toChartTime } from '../charts.js';
import { Ticket } from '../ticket.js';
import { liveNotice, lookupFor, venueBadges, venueName, whereText } from '../venue.js';

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
    const tick = stepDecimals(p.instrument.tick_size);
    const lot = stepDecimals(p.instrument.lot_size);
    const symbol = p.instrument.symbol;
    // A live account's symbols have no market page: "Close…" fills in its own ticket.
    const close = p.instrument.live
      ? h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Close the ${symbol} position…`, onclick: () => prefillClose(symbol) }, 'Close…')
      : h('a', { class: 'btn btn-small', href: `/markets/${symbol}?account=${accountId}&close=1` }, 'Close…');
    return h('tr', { 'data-symbol': symbol },
      td(p.instrument.live ? symbolEl(p.instrument) : h('a', { href: `/markets/${symbol}?account=${accountId}` }, symbol)),
      td(fmtNum(p.quantity, lot), { num: true }),
      td(p.average ? fmtNum(p.average, tick === undefined ? undefined : tick + 2) : '–', { num: true }),
      td(p.mark ? fmtNum(p.mark, tick) : '–', { num: true }),
      td(moneyEl(p.value, p.currency), { num: true }),
      td(pnlEl(p.unrealized, p.currency), { num: true }),
      td(pnlEl(p.realized, p.currency), { num: true }),
      td(moneyEl(p.fees, p.currency), { num: true }),
      td(p.quantity.isZero() ? null : close));
  }, isLive(account)
    ? h('span', {}, 'No positions. ', h('a', { href: '#trade' }, 'Use the order ticket'), ' to place an order at the venue.')
    : h('span', {}, 'No positions. ', h('a', { href: '/markets' }, 'Pick an instrument'), ' to place an order.'));
}

const rerender = perFrame(() => {
  renderFigures();
  liveEquityPoint();
});

async function refreshSummary() {
  try {
    portfolio.loadSummary(await get(base));
    syncSwitch();
    syncTicket();
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

// -- live venue accounts --------------------------------------------------------------

let ticket = null;
let limits = null;
let venueStatus = null;
let venueTries = 0;

/** The title, where the orders go, and what stops the account from trading. */
function renderHeader() {
  put($('#account-title'), account.name, ' ', ...venueBadges(account));
  if (isLive(account)) {
    const number = account.live?.venue_account ? ` (account ${account.live.venue_account})` : '';
    put($('#account-sub'), `Account #${account.id} · base currency ${account.base_currency} · trades at ${whereText(account)}${number} · symbols ${(account.live?.symbols ?? []).join(', ')}`);
  } else {
    put($('#account-sub'), `Account #${account.id} · base currency ${account.base_currency} · trades on the simulated paper market`);
  }
  const notice = liveNotice(account, { onConfirmed: (updated) => reloadAccount(updated) });
  const slot = $('#live-notice');
  put(slot, notice);
  slot.hidden = !notice;
}

/** The account as the server has it now (after a confirmation, or a refusal that says it changed). */
async function reloadAccount(updated = null) {
  const list = await accounts({ refresh: true }).catch(() => null);
  account = updated ?? list?.find((a) => a.id === accountId) ?? account;
  renderHeader();
  syncTicket();
}

/** The stricter of two kill-switch states. */
function stricter(a, b) {
  const rank = { active: 0, reducing: 1, halted: 2 };
  return (rank[a] ?? 0) >= (rank[b] ?? 0) ? a : b;
}

function syncTicket() {
  if (!ticket) return;
  const summary = portfolio.summary;
  ticket.setAccount(account, summary, limits);
  const held = summary.positions.find((p) => p.instrument === ticket.instrument.id || p.symbol === ticket.instrument.symbol);
  ticket.setPosition(held?.quantity ?? '0');
  ticket.setTradingState(stricter(accountTradingState(accountId), summary.trading_state), session.canTrade);
}

function chosenInstrument() {
  return lookup.own.find((i) => i.symbol === $('#order-symbol').value) ?? lookup.own[0];
}

function setupTicket() {
  const select = $('#order-symbol');
  put(select, ...lookup.own.map((i) => h('option', { value: i.symbol }, i.symbol)));
  // No live quotes reach this page: a limit order is the sensible default.
  $('#order-type').value = 'limit';
  ticket = new Ticket($('#ticket-form'), chosenInstrument(), {
    onPlaced: () => refreshSoon(),
    onRefused: () => reloadAccount(),
  });
  select.addEventListener('change', () => {
    ticket.setInstrument(chosenInstrument());
    syncTicket();
  });
  syncTicket();
}

/** "Close…" on a live position: its ticket, filled in to close it. */
function prefillClose(symbol) {
  $('#order-symbol').value = symbol;
  ticket.setInstrument(chosenInstrument());
  syncTicket();
  ticket.prefillClose();
  $('#trade').scrollIntoView({ block: 'start' });
  $('#order-quantity').focus();
}

const nonZero = (m) => !Dec.of(m).isZero();

function renderVenue() {
  const v = venueStatus;
  put($('#venue-meta'), v.last_reconciled
    ? ['Last reconciled ', timeEl(v.last_reconciled), ` · ${v.corrections} correction${v.corrections === 1 ? '' : 's'} applied since the server started`]
    : 'Not reconciled yet: the first reconciliation runs as the account starts.');
  const diff = $('#venue-differences');
  diff.hidden = v.differences.length === 0;
  put(diff, v.differences.length === 0 ? null : [
    h('p', {}, h('strong', {}, 'Close-only: the venue and this account differ. '),
      'The last reconciliation found what nothing here explains, so only orders that reduce a position are accepted. Check the account at the venue; once the difference is understood, set the kill switch above back to active.'),
    h('ul', {}, v.differences.map((d) => h('li', {}, d)))]);
  const error = $('#venue-error');
  error.hidden = !v.last_error;
  put(error, v.last_error ? [h('strong', {}, 'Last error: '), v.last_error] : null);
  const held = v.balances.filter((b) => nonZero(b.total) || nonZero(b.available));
  fillRows($('#venue-balances tbody'), held, (b) => h('tr', { 'data-currency': b.currency },
    td(b.currency), td(fmtNum(b.total), { num: true }), td(fmtNum(b.available), { num: true })),
  v.last_reconciled ? 'Nothing held at the venue.' : 'Not reported yet.');
  fillRows($('#venue-positions tbody'), v.positions, (p) => h('tr', { 'data-symbol': p.symbol },
    td(h('span', { class: 'mono' }, p.symbol)), td(fmtNum(p.quantity), { num: true })),
  v.last_reconciled ? 'No positions in this account’s symbols.' : 'Not reported yet.');
}

async function loadVenue() {
  let status;
  try {
    status = await get(`${base}/venue`);
  } catch (e) {
    put($('#venue-meta'), `Could not load what the venue reported. ${explain(e)}`);
    return;
  }
  const newPass = status.last_reconciled !== venueStatus?.last_reconciled;
  venueStatus = status;
  renderVenue();
  // The first reconciliation brings the venue's cash in: show it as it lands.
  if (!status.last_reconciled && venueTries++ < 60) setTimeout(loadVenue, 1000);
  else if (newPass) refreshSummary();
}

let venueTimer = null;
function loadVenueSoon() {
  clearTimeout(venueTimer);
  venueTimer = setTimeout(loadVenue, 1000);
}

/** What a reconciliation did, in words. */
function passSummary(pass) {
  const { reports, differences, cash_adjusted: cash } = pass;
  const lines = [
    reports ? `${reports} correction${reports === 1 ? '' : 's'} applied (acknowledgements, fills or cancels this account had missed).` : 'Nothing to correct: orders and fills matched.',
    cash.length
      ? `Cash moved to the venue’s balance: ${cash.map(([c, m]) => `${c} ${fmtNum(m, 2, { sign: true })}`).join(', ')}.`
      : 'Cash matched the venue.',
    differences.length
      ? `${differences.length} difference${differences.length === 1 ? '' : 's'} nothing explains (listed above): the account is now close-only.`
      : 'No differences.',
  ];
  return h('div', { class: `result-box ${differences.length ? 'refused' : 'ok'}`, role: 'status' },
    h('strong', {}, 'Reconciled. '), lines.join(' '));
}

$('#reconcile-now').addEventListener('click', (e) => busy(e.currentTarget, async () => {
  const out = $('#reconcile-result');
  put(out, h('p', { class: 'small muted' }, `Asking ${venueName(account.venue)}…`));
  try {
    const pass = await post(`${base}/reconcile`);
    put(out, passSummary(pass));
    await Promise.all([loadVenue(), refreshSummary(), loadOrdersAndFills()]);
  } catch (err) {
    // 503: the venue could not be read; its words say why.
    const why = err.code === 'unavailable' && err.detail ? `${err.detail}.` : explain(err);
    put(out, h('div', { class: 'result-box refused', role: 'alert' }, h('strong', {}, 'Not reconciled; nothing changed. '), why));
  }
}));

async function startLive() {
  $('#live-section').hidden = false;
  $('#trade-link').href = '#trade';
  limits = await get(`${base}/risk-limits`).catch(() => null);
  setupTicket();
  await loadVenue();
  live.subscribe('orders', (m) => {
    if (m.account === accountId) loadVenueSoon();
  });
  setInterval(loadVenue, 30_000);
}

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
  const liveAccount = isLive(account);
  if (liveAccount) lookup = await lookupFor(account, lookup);
  renderHeader();
  $('#trade-link').href = `/markets?account=${accountId}`;
  $('#orders-link').href = `/orders?account=${accountId}`;
  portfolio = new Portfolio(lookup, { fromServer: liveAccount });
  portfolio.loadSummary(await get(base));
  syncSwitch();
  if (liveAccount) await startLive();
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
    // A live account's figures are the server's: fetch them again.
    if (portfolio.fromServer) return refreshSoon();
    portfolio.applyPositions(m.data);
    rerender();
  });
  live.subscribe('balances', (m) => {
    if (m.account !== accountId) return;
    portfolio.applyBalances(m.data);
    if (portfolio.fromServer) refreshSoon();
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
  // Quotes are the paper market's; a live account's marks come with its summary.
  for (const instrument of liveAccount ? [] : lookup.list) {
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
  onTrading(() => {
    refreshSummary();
    if (liveAccount) loadVenueSoon();
  });
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
