// One instrument: a live candlestick chart with volume and the user's
// fills, the latest quote, the order ticket, and the user's open orders
// and fills on it.

import { accountPicker, accountTradingState, instruments, isLive, live, onTrading, reportError, session } from '../app.js';
import { get } from '../api.js';
import { $, fillRows, put } from '../dom.js';
import { fmtNum, timeEl, words } from '../format.js';
import { Dec, decimalsOf } from '../decimal.js';
import { candleChart, toChartTime } from '../charts.js';
import { cancelOrder, fillRow, isOpen, orderRow } from '../orders.js';
import { Ticket } from '../ticket.js';

const symbol = session.data.symbol;
const INTERVAL_SECONDS = { '1m': 60, '5m': 300, '1h': 3600, '1d': 86400 };
let lookup;
let instrument;
let account = null;
let ticket;
let chart;
let interval = '1m';
let forming = null; // the candle building from quotes, in chart units
let unsubscribeCandles = null;
const openOrders = new Map();
let fills = [];

const bucket = (seconds) => Math.floor(seconds / INTERVAL_SECONDS[interval]) * INTERVAL_SECONDS[interval];

function toBar(c) {
  return {
    time: toChartTime(c.start),
    open: Dec.of(c.open).toNumber(),
    high: Dec.of(c.high).toNumber(),
    low: Dec.of(c.low).toNumber(),
    close: Dec.of(c.close).toNumber(),
    volume: Dec.of(c.volume).toNumber(),
  };
}

// -- chart ---------------------------------------------------------------------------

async function loadCandles() {
  const candles = await get(`/api/v1/instruments/${encodeURIComponent(symbol)}/candles?interval=${interval}&limit=500`);
  forming = null;
  chart.setCandles(candles.map(toBar));
  markFills();
  unsubscribeCandles?.();
  unsubscribeCandles = live.subscribe(`candles:${symbol}:${interval}`, (m) => {
    if (m.type !== 'candle') return;
    const bar = toBar(m.data);
    chart.update(bar);
    if (forming && forming.time <= bar.time) forming = null;
  });
}

/** The last candle moves with each quote's mid until the real one closes. */
function formFromQuote(quote) {
  if (!chart) return;
  const mid = Dec.of(quote.bid).add(quote.ask).div(2, 9).toNumber();
  const time = bucket(toChartTime(quote.ts));
  const last = chart.lastTime();
  if (last !== null && time < last) return;
  if (!forming || forming.time !== time) {
    forming = last === time ? null : { time, open: mid, high: mid, low: mid, close: mid, volume: 0 };
    if (!forming) return;
  } else {
    forming.high = Math.max(forming.high, mid);
    forming.low = Math.min(forming.low, mid);
    forming.close = mid;
  }
  chart.update(forming);
}

function markFills() {
  if (!chart) return;
  const lot = decimalsOf(instrument.lot_size);
  chart.setMarkers(fills.map((f) => ({
    time: bucket(toChartTime(f.ts)),
    side: f.side,
    text: `${f.side === 'buy' ? 'B' : 'S'} ${fmtNum(f.quantity, lot)}`,
  })));
}

// -- quote ---------------------------------------------------------------------------

function showQuote(q) {
  const dp = decimalsOf(instrument.tick_size);
  const lot = decimalsOf(instrument.lot_size);
  $('#q-bid').textContent = fmtNum(q.bid, dp);
  $('#q-ask').textContent = fmtNum(q.ask, dp);
  $('#q-bid-size').textContent = ` × ${fmtNum(q.bid_size, lot)}`;
  $('#q-ask-size').textContent = ` × ${fmtNum(q.ask_size, lot)}`;
  put($('#q-meta'), `Spread ${fmtNum(Dec.of(q.ask).sub(q.bid), dp)} ${instrument.quote_currency} · `, timeEl(q.ts));
  ticket?.setQuote(q);
  formFromQuote(q);
}

// -- the account's orders and fills here ---------------------------------------------------

/** What the tables say when they have no rows for the chosen account. */
function emptyText(what) {
  if (!account) return 'No account yet.';
  // A live account trades its venue symbols, never the paper market's.
  if (isLive(account)) return `“${account.name}” is a live account: it does not trade this simulated instrument.`;
  return `No ${what} on this instrument${what === 'fills' ? ' yet' : ''}.`;
}

function renderOrders() {
  const list = [...openOrders.values()].filter((o) => o.instrument === instrument.id).sort((a, b) => b.id - a.id);
  fillRows($('#instrument-orders tbody'), list,
    (o) => orderRow(o, lookup, { canTrade: session.canTrade, onCancel: (order, button) => cancelOrder(account.id, order, button, lookup) }),
    emptyText('open orders'));
}

function renderFills() {
  fillRows($('#instrument-fills tbody'), fills.slice(0, 50), (f) => fillRow(f, lookup), emptyText('fills'));
  markFills();
}

async function loadAccount() {
  openOrders.clear();
  fills = [];
  if (!account || isLive(account)) {
    // A live account's ticket is on its own page, with its venue symbols.
    ticket.setAccount(account, null, null);
    ticket.setPosition('0');
    if (account) ticket.setTradingState(accountTradingState(account.id), session.canTrade);
    renderOrders();
    renderFills();
    return;
  }
  const base = `/api/v1/accounts/${account.id}`;
  const [summary, limits, open, recent] = await Promise.all([
    get(base),
    get(`${base}/risk-limits`),
    get(`${base}/orders?status=open&symbol=${encodeURIComponent(symbol)}&limit=500`),
    get(`${base}/fills?limit=500`),
  ]);
  ticket.setAccount(account, summary, limits);
  const held = summary.positions.find((p) => p.instrument === instrument.id);
  ticket.setPosition(held?.quantity ?? '0');
  ticket.setTradingState(accountTradingState(account.id), session.canTrade);
  for (const o of open.items) openOrders.set(o.id, o);
  fills = recent.items.filter((f) => f.instrument === instrument.id);
  renderOrders();
  renderFills();
  if (new URLSearchParams(location.search).get('close') === '1') ticket.prefillClose();
}

async function refreshSummary() {
  if (!account || isLive(account)) return;
  const summary = await get(`/api/v1/accounts/${account.id}`);
  ticket.setAccount(account, summary, ticket.limits);
  const held = summary.positions.find((p) => p.instrument === instrument.id);
  ticket.setPosition(held?.quantity ?? '0');
}

// -- start ------------------------------------------------------------------------------

async function start() {
  lookup = await instruments();
  instrument = lookup.bySymbol.get(symbol);
  put($('#instrument-sub'), `${words(instrument.asset_class)} · quoted in ${instrument.quote_currency} · tick ${instrument.tick_size} · lot ${instrument.lot_size} · fees ${Dec.of(instrument.maker_fee).mul(100).trim()} % maker / ${Dec.of(instrument.taker_fee).mul(100).trim()} % taker`);
  ticket = new Ticket($('#ticket-form'), instrument, { onPlaced: () => refreshSummary().catch(() => {}) });
  ticket.setTradingState('active', session.canTrade);
  account = await accountPicker($('#account-select'), (chosen) => {
    account = chosen;
    loadAccount().catch((e) => reportError('Could not load the account', e));
  });
  chart = await candleChart($('#price-chart'), { pricePrecision: decimalsOf(instrument.tick_size) });
  for (const input of document.querySelectorAll('#interval-switch input')) {
    input.addEventListener('change', () => {
      interval = input.value;
      loadCandles().catch((e) => reportError('Could not load candles', e));
    });
  }
  const quotes = await get('/api/v1/quotes');
  const latest = quotes.find((q) => q.instrument === instrument.id);
  await Promise.all([loadCandles(), loadAccount()]);
  if (latest) showQuote(latest);
  live.subscribe(`quotes:${symbol}`, (m) => showQuote(m.data));
  live.subscribe('orders', (m) => {
    if (!account || m.account !== account.id || !m.data.order) return;
    const order = m.data.order;
    if (isOpen(order)) openOrders.set(order.id, order);
    else openOrders.delete(order.id);
    renderOrders();
  });
  live.subscribe('fills', (m) => {
    if (!account || m.account !== account.id) return;
    if (m.data.instrument === instrument.id) {
      fills.unshift(m.data);
      renderFills();
      $('#instrument-fills tbody tr')?.classList.add('flash');
    }
    refreshSummary().catch(() => {});
  });
  live.subscribe('positions', (m) => {
    if (!account || m.account !== account.id) return;
    const row = m.data.find((p) => p.instrument === instrument.id);
    if (row) ticket.setPosition(row.quantity);
  });
  onTrading(() => {
    if (account) ticket.setTradingState(accountTradingState(account.id), session.canTrade);
  });
  live.onReconnect(() => {
    loadCandles().catch(() => {});
    loadAccount().catch(() => {});
  });
}

start().catch((e) => reportError('Could not load the instrument', e));
