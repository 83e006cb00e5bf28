// Orders: the account's open orders (cancel one or all), the order history
// with filters, and its fills; all three live.

import { accountPicker, instruments, live, reportError, session } from '../app.js';
import { del, explain, get } from '../api.js';
import { $, busy, confirmDialog, fillRows, h, mountTabs, td, toast } from '../dom.js';
import { averageFill, cancelOrder, fillRow, isOpen, orderRow } from '../orders.js';
import { lookupFor } from '../venue.js';

let paper;
let lookup;
let account = null;
const open = new Map();
let orderHistory = [];
let historyNext = null;
let fills = [];
let fillsNext = null;

// -- tabs ---------------------------------------------------------------------------

mountTabs();

// -- open orders ----------------------------------------------------------------------

function renderOpen() {
  const list = [...open.values()].sort((a, b) => b.id - a.id);
  fillRows($('#open-table tbody'), list,
    (o) => orderRow(o, lookup, { canTrade: session.canTrade, onCancel: (order, button) => cancelOrder(account.id, order, button, lookup) }),
    lookup.own && account
      ? h('span', {}, 'No open orders. ', h('a', { href: `/accounts/${account.id}#trade` }, 'Place one with the account’s order ticket'), '.')
      : h('span', {}, 'No open orders. ', h('a', { href: '/markets' }, 'Place one from an instrument’s page'), '.'));
  $('#cancel-all').disabled = !session.canTrade || list.length === 0;
}

$('#cancel-all').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const ok = await confirmDialog({
    title: 'Cancel every open order?',
    body: h('p', {}, `${open.size} open order${open.size === 1 ? '' : 's'} on “${account.name}” will be cancelled.`),
    confirm: 'Cancel all',
    danger: true,
  });
  if (!ok) return;
  await busy(button, async () => {
    try {
      const answer = await del(`/api/v1/accounts/${account.id}/orders`);
      toast(`Cancel requested for ${answer.cancel_requested} order${answer.cancel_requested === 1 ? '' : 's'}.`, 'ok');
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
});

// -- history ----------------------------------------------------------------------------

function historyRow(order) {
  const row = orderRow(order, lookup);
  // The last cell (actions) becomes the average fill price.
  row.lastElementChild.replaceWith(td(averageFill(order, lookup.byId.get(order.instrument)), { num: true }));
  return row;
}

function historyQuery(before) {
  const params = new URLSearchParams({ limit: '100' });
  const status = $('#filter-status').value;
  const symbol = $('#filter-symbol').value;
  if (status) params.set('status', status);
  if (symbol) params.set('symbol', symbol);
  if (before) params.set('before', before);
  return `/api/v1/accounts/${account.id}/orders?${params}`;
}

async function loadHistory(more = false) {
  const page = await get(historyQuery(more ? historyNext : null));
  orderHistory = more ? orderHistory.concat(page.items) : page.items;
  historyNext = page.next_before ?? null;
  renderHistory();
}

function renderHistory() {
  const filtered = $('#filter-status').value || $('#filter-symbol').value;
  fillRows($('#history-table tbody'), orderHistory, historyRow,
    filtered ? 'No orders match these filters.' : 'No orders yet.');
  $('#history-more').hidden = historyNext === null;
}

function matchesFilters(order) {
  const status = $('#filter-status').value;
  const symbol = $('#filter-symbol').value;
  if (symbol && lookup.byId.get(order.instrument)?.symbol !== symbol) return false;
  if (status === 'open') return isOpen(order);
  return !status || order.status === status;
}

$('#history-filters').addEventListener('change', () => loadHistory().catch((e) => reportError('Could not load orders', e)));
$('#history-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadHistory(true)));

// -- fills ----------------------------------------------------------------------------

async function loadFills(more = false) {
  const params = new URLSearchParams({ limit: '100' });
  if (more && fillsNext) params.set('before', fillsNext);
  const page = await get(`/api/v1/accounts/${account.id}/fills?${params}`);
  fills = more ? fills.concat(page.items) : page.items;
  fillsNext = page.next_before ?? null;
  renderFills();
}

function renderFills() {
  fillRows($('#fills-table tbody'), fills, (f) => fillRow(f, lookup), 'No fills yet.');
  $('#fills-more').hidden = fillsNext === null;
}

$('#fills-more').addEventListener('click', (e) => busy(e.currentTarget, () => loadFills(true)));

// -- start ------------------------------------------------------------------------------

/** The symbol filter: the paper market's, or a live account's venue symbols. */
function symbolOptions() {
  const select = $('#filter-symbol');
  const wanted = lookup.own ? lookup.own.map((i) => i.symbol) : lookup.list.map((i) => i.symbol);
  const have = [...select.options].slice(1).map((o) => o.value);
  if (wanted.join('\n') === have.join('\n')) return;
  if (!wanted.includes(select.value)) select.value = '';
  for (const o of [...select.options].slice(1)) o.remove();
  for (const symbol of wanted) select.append(h('option', { value: symbol }, symbol));
}

async function loadAll() {
  open.clear();
  lookup = account ? await lookupFor(account, paper) : paper;
  symbolOptions();
  if (!account) {
    renderOpen();
    fillRows($('#history-table tbody'), [], historyRow, 'Open an account on the overview page first.');
    fillRows($('#fills-table tbody'), [], () => null, 'Open an account on the overview page first.');
    return;
  }
  const page = await get(`/api/v1/accounts/${account.id}/orders?status=open&limit=500`);
  for (const o of page.items) open.set(o.id, o);
  renderOpen();
  await Promise.all([loadHistory(), loadFills()]);
}

async function start() {
  paper = await instruments();
  lookup = paper;
  symbolOptions();
  account = await accountPicker($('#account-select'), (chosen) => {
    account = chosen;
    loadAll().catch((e) => reportError('Could not load orders', e));
  });
  await loadAll();
  live.subscribe('orders', (m) => {
    if (!account || m.account !== account.id || !m.data.order) return;
    const order = m.data.order;
    if (isOpen(order)) open.set(order.id, order);
    else open.delete(order.id);
    renderOpen();
    const at = orderHistory.findIndex((o) => o.id === order.id);
    if (at >= 0) {
      if (matchesFilters(order)) orderHistory[at] = order;
      else orderHistory.splice(at, 1);
    } else if (matchesFilters(order)) {
      orderHistory.unshift(order);
    }
    renderHistory();
  });
  live.subscribe('fills', (m) => {
    if (!account || m.account !== account.id) return;
    fills.unshift(m.data);
    renderFills();
  });
  live.onReconnect(() => loadAll().catch(() => {}));
}

start().catch((e) => reportError('Could not load orders', e));
