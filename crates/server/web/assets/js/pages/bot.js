// One bot: its state and activity, start/stop/delete, its P&L with a
// chart of net P&L over its fills, its orders and its trades; live.

import { accounts, instruments, live, reportError, session } from '../app.js';
import { del, explain, get, post } from '../api.js';
import { $, busy, confirmDialog, fillRows, h, put, td, toast } from '../dom.js';
import { fmtNum, moneyEl, pnlEl, timeEl, words } from '../format.js';
import { Dec, decimalsOf } from '../decimal.js';
import { lineChart, toChartTime } from '../charts.js';
import { averageFill, fillRow, orderRow } from '../orders.js';
import { paramsText } from '../strategy-form.js';

const botId = Number(session.data.bot);
const base = `/api/v1/bots/${botId}`;
let bot;
let lookup;
let instrument;
let accountName = '';
let orders = [];
let ordersNext = null;
let fills = [];
let chart = null;

const STATUS = { running: 'badge badge-ok', failed: 'badge badge-bad', stopped: 'badge' };

function kpi(label, value) {
  return h('div', { class: 'kpi' }, h('dt', {}, label), h('dd', {}, value));
}

function render() {
  document.title = `${bot.name} · tradecore`;
  put($('#bot-title'), bot.name, ' ', h('span', { class: STATUS[bot.status] ?? 'badge', id: 'bot-status' }, words(bot.status)));
  put($('#bot-sub'), `Bot #${bot.id} · ${bot.strategy} on `, h('a', { href: `/markets/${bot.symbol}` }, bot.symbol),
    ` · ${bot.interval} candles · account `, h('a', { href: `/accounts/${bot.account_id}` }, accountName || `#${bot.account_id}`));
  const running = bot.status === 'running';
  $('#bot-start').hidden = running;
  $('#bot-stop').hidden = !running;
  $('#bot-delete').hidden = running;
  for (const id of ['#bot-start', '#bot-stop', '#bot-delete']) $(id).disabled = !session.canTrade;
  const error = $('#bot-error');
  error.hidden = !bot.error;
  error.textContent = bot.error ? `The bot failed: ${bot.error}. Fix the cause, then start it again.` : '';

  const c = instrument?.quote_currency;
  const lot = instrument ? decimalsOf(instrument.lot_size) : undefined;
  const tick = instrument ? decimalsOf(instrument.tick_size) : undefined;
  const p = bot.pnl;
  put($('#bot-pnl'), ...(p ? [
    kpi('Net P&L', pnlEl(p.net, c)),
    kpi('Realized', pnlEl(p.realized, c)),
    kpi('Unrealized', pnlEl(p.unrealized, c)),
    kpi('Fees', moneyEl(p.fees, c)),
    kpi('Position', `${fmtNum(p.position, lot)} ${instrument?.base_currency ?? ''}`),
    kpi('Average price', p.average_price ? fmtNum(p.average_price, tick + 2) : '–'),
    kpi('Fills', String(p.fills)),
  ] : [kpi('P&L', 'unknown instrument')]));

  const a = bot.activity;
  put($('#bot-activity'),
    kpi('Status', h('span', {}, words(bot.status))),
    kpi('Started', timeEl(bot.started)),
    kpi('Stopped', timeEl(bot.stopped)),
    ...(a ? [
      kpi('Warm-up', a.warmed_up ? `done (${a.replayed_bars} candles)` : `replaying… (${a.replayed_bars})`),
      kpi('Live candles', String(a.bars)),
      kpi('Last candle', timeEl(a.last_bar)),
      kpi('Orders placed', String(a.orders_placed)),
      kpi('Orders refused', a.orders_denied ? `${a.orders_denied} (last: ${words(a.last_denial)})` : '0'),
      kpi('Skipped', String(a.intents_skipped)),
      a.last_error ? kpi('Last error', a.last_error) : null,
    ] : [kpi('Activity', 'shown while it runs')]));
  put($('#bot-config'),
    kpi('Strategy', bot.strategy),
    kpi('Parameters', paramsText(bot.params) || 'defaults'),
    kpi('Order size', bot.sizing),
    kpi('Warm-up candles', String(bot.warmup_bars)),
    kpi('Created', timeEl(bot.created)));
}

function renderOrders() {
  fillRows($('#bot-orders tbody'), orders, (o) => {
    const row = orderRow(o, lookup);
    row.lastElementChild.replaceWith(td(averageFill(o, lookup.byId.get(o.instrument)), { num: true }));
    return row;
  }, 'No orders yet: the bot places them when its strategy signals on a closed candle.');
  $('#bot-orders-more').hidden = ordersNext === null;
}

function renderFills() {
  fillRows($('#bot-fills tbody'), [...fills].reverse(), (f) => fillRow(f, lookup), 'No trades yet.');
}

/** Net P&L after each fill (marked at that fill's price), then now. */
function pnlPoints() {
  if (!instrument) return [];
  const mult = Number(instrument.multiplier);
  let position = 0;
  let cost = 0;
  let realized = 0;
  let fees = 0;
  const points = [];
  for (const f of fills) {
    const qty = Number(f.quantity) * (f.side === 'buy' ? 1 : -1);
    const price = Number(f.price);
    if (position === 0 || Math.sign(position) === Math.sign(qty)) {
      cost += qty * price * mult;
      position += qty;
    } else {
      const closing = Math.min(Math.abs(qty), Math.abs(position));
      const average = cost / position;
      realized += closing * Math.sign(position) * (price * mult - average);
      cost -= average * closing * Math.sign(position);
      position += Math.sign(qty) * closing;
      const rest = Math.abs(qty) - closing;
      if (rest > 0) {
        position += Math.sign(qty) * rest;
        cost += Math.sign(qty) * rest * price * mult;
      }
    }
    fees += Number(f.fee);
    points.push({ time: toChartTime(f.ts), value: realized + (position * price * mult - cost) - fees });
  }
  if (bot.pnl && points.length) points.push({ time: Math.floor(Date.now() / 1000), value: Dec.of(bot.pnl.net).toNumber() });
  return points;
}

async function drawChart() {
  const points = pnlPoints();
  if (!chart) {
    chart = await lineChart($('#pnl-chart'), { series: [{ name: 'net P&L', colorVar: '--accent', points }], empty: 'No trades yet.' });
  } else {
    chart.setData(0, points);
  }
}

async function refresh() {
  bot = await get(base);
  render();
  await drawChart();
}

async function loadTrading(more = false) {
  const params = new URLSearchParams({ limit: '100' });
  if (more && ordersNext) params.set('before', ordersNext);
  const [page, allFills] = await Promise.all([get(`${base}/orders?${params}`), more ? Promise.resolve(fills) : get(`${base}/fills`)]);
  orders = more ? orders.concat(page.items) : page.items;
  ordersNext = page.next_before ?? null;
  fills = allFills;
  renderOrders();
  renderFills();
}

// -- actions -----------------------------------------------------------------------------

$('#bot-start').addEventListener('click', (e) => busy(e.currentTarget, async () => {
  try {
    bot = await post(`${base}/start`);
    toast(`${bot.name} started.`, 'ok');
    await refresh();
  } catch (err) {
    toast(explain(err), 'error');
  }
}));

$('#bot-stop').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const keep = h('input', { type: 'checkbox', id: 'stop-keep-orders' });
  const ok = await confirmDialog({
    title: `Stop ${bot.name}?`,
    body: h('div', {},
      h('p', {}, 'The bot stops acting on new candles. Its position stays as it is: close it with an order if you want.'),
      h('label', { class: 'check' }, keep, ' Keep its working orders (by default they are cancelled)')),
    confirm: 'Stop the bot',
    danger: true,
  });
  if (!ok) return;
  await busy(button, async () => {
    try {
      bot = await post(`${base}/stop?cancel_orders=${keep.checked ? 'false' : 'true'}`);
      toast(`${bot.name} stopped.`, 'ok');
      await refresh();
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
});

$('#bot-delete').addEventListener('click', async () => {
  const ok = await confirmDialog({
    title: `Delete ${bot.name}?`,
    body: h('p', {}, 'The bot is removed. Its orders and fills stay in the account.'),
    confirm: 'Delete the bot',
    danger: true,
  });
  if (!ok) return;
  try {
    await del(base);
    location.assign('/bots');
  } catch (err) {
    toast(explain(err), 'error');
  }
});

$('#bot-orders-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadTrading(true)));

// -- start ------------------------------------------------------------------------------

async function start() {
  lookup = await instruments();
  bot = await get(base);
  instrument = lookup.bySymbol.get(bot.symbol);
  accountName = (await accounts()).find((a) => a.id === bot.account_id)?.name ?? '';
  render();
  await Promise.all([drawChart(), loadTrading()]);
  await drawChart();
  const prefix = `bot${botId}-`;
  live.subscribe('bots', (m) => {
    if (m.type !== 'bot' || m.bot !== botId) return;
    refresh().catch(() => {});
  });
  live.subscribe('orders', (m) => {
    const order = m.data?.order;
    if (m.account !== bot.account_id || !order?.client_order_id.startsWith(prefix)) return;
    const at = orders.findIndex((o) => o.id === order.id);
    if (at >= 0) orders[at] = order;
    else orders.unshift(order);
    renderOrders();
  });
  live.subscribe('fills', (m) => {
    if (m.account !== bot.account_id || !orders.some((o) => o.id === m.data.order_id)) return;
    fills.push({ seq: m.seq, ...m.data });
    renderFills();
    refresh().catch(() => {});
  });
  live.onReconnect(() => {
    refresh().catch(() => {});
    loadTrading().catch(() => {});
  });
  // Unrealized P&L moves with the market.
  setInterval(() => {
    if (bot.status === 'running' || bot.pnl?.position !== '0') refresh().catch(() => {});
  }, 5000);
}

start().catch((e) => {
  if (e.code === 'not_found') {
    put($('#main'), h('div', { class: 'card empty' }, h('h1', {}, 'No such bot'), h('p', {}, 'It does not exist, or it is not yours.'), h('p', {}, h('a', { href: '/bots' }, 'Back to the bots'))));
  } else {
    reportError('Could not load the bot', e);
  }
});
