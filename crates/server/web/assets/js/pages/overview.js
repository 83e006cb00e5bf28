// Overview: one card per account with its equity, cash and P&L per
// currency, kept live from the account streams and quotes.

import { accounts, instruments, live, reportError, session, onTrading, accountTradingState } from '../app.js';
import { explain, get, post } from '../api.js';
import { $, clearErrors, formValues, h, perFrame, put, showError } from '../dom.js';
import { moneyEl, pnlEl } from '../format.js';
import { Portfolio } from '../portfolio.js';

const cards = $('#account-cards');
const portfolios = new Map(); // account id -> {account, portfolio, el}
let lookup = null;

function emptyState() {
  return h('div', { class: 'card empty' },
    h('p', {}, h('strong', {}, 'You have no accounts yet.')),
    session.canTrade
      ? h('p', {}, 'Open a paper account to trade the simulated market with simulated money, by hand or with bots.')
      : h('p', {}, 'Your role can view but not trade; an admin can give you the trader role.'),
    session.canTrade ? h('p', {}, h('button', { type: 'button', class: 'btn btn-primary', onclick: openDialog }, 'Open a paper account')) : null);
}

function stateBadge(id) {
  const state = accountTradingState(id);
  if (state === 'halted') return h('span', { class: 'badge badge-bad' }, 'Halted');
  if (state === 'reducing') return h('span', { class: 'badge badge-warn' }, 'Close-only');
  return null;
}

function renderCard(entry) {
  const { account, portfolio } = entry;
  const rows = portfolio.currencyRows();
  const openPositions = portfolio.positionRows().filter((p) => !p.quantity.isZero()).length;
  const el = h('article', { class: 'card account-card', 'aria-labelledby': `acct-${account.id}` },
    h('header', {},
      h('h2', { id: `acct-${account.id}` }, h('a', { href: `/accounts/${account.id}` }, account.name)),
      h('span', {},
        h('span', { class: account.venue === 'paper' ? 'badge' : 'badge badge-live' }, account.venue === 'paper' ? 'Paper' : 'LIVE'),
        ' ', stateBadge(account.id))),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'data' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Currency'), h('th', { class: 'num' }, 'Equity'), h('th', { class: 'num' }, 'Cash'),
          h('th', { class: 'num' }, 'Day P&L'), h('th', { class: 'num' }, 'Total P&L'))),
        h('tbody', {}, rows.map((r) => h('tr', {},
          h('td', {}, r.currency),
          h('td', { class: 'num', 'data-field': `equity-${r.currency}` }, moneyEl(r.equity)),
          h('td', { class: 'num' }, moneyEl(r.cash)),
          h('td', { class: 'num' }, r.day === null ? h('span', { class: 'muted', title: 'Known from the next UTC day on' }, '–') : pnlEl(r.day)),
          h('td', { class: 'num' }, pnlEl(r.total))))))),
    h('p', { class: 'small muted' },
      `${openPositions} open position${openPositions === 1 ? '' : 's'} · ${portfolio.summary.open_orders} open order${portfolio.summary.open_orders === 1 ? '' : 's'} · `,
      h('a', { href: `/accounts/${account.id}` }, 'Details'), ' · ',
      h('a', { href: `/orders?account=${account.id}` }, 'Orders')));
  if (entry.el) entry.el.replaceWith(el);
  entry.el = el;
  return el;
}

const rerender = perFrame(() => {
  for (const entry of portfolios.values()) renderCard(entry);
});

async function refresh(id) {
  const entry = portfolios.get(id);
  if (!entry) return;
  try {
    entry.portfolio.loadSummary(await get(`/api/v1/accounts/${id}`));
    rerender();
  } catch (e) {
    if (e.code !== 'unavailable') reportError('Could not refresh the account', e);
  }
}

async function load() {
  lookup = await instruments();
  const list = await accounts({ refresh: true });
  cards.removeAttribute('aria-busy');
  if (!list.length) {
    put(cards, emptyState());
    return;
  }
  const summaries = await Promise.all(list.map((a) => get(`/api/v1/accounts/${a.id}`).catch(() => null)));
  put(cards);
  portfolios.clear();
  list.forEach((account, i) => {
    const portfolio = new Portfolio(lookup);
    if (summaries[i]) portfolio.loadSummary(summaries[i]);
    else portfolio.summary = { open_orders: 0 };
    const entry = { account, portfolio, el: null };
    portfolios.set(account.id, entry);
    cards.append(renderCard(entry));
  });
}

// -- opening an account ------------------------------------------------------------

const dialog = $('#open-account-dialog');
function openDialog() {
  const form = dialog.querySelector('form');
  clearErrors(form);
  form.reset();
  dialog.showModal();
  $('#account-name').focus();
}
$('#open-account').addEventListener('click', openDialog);
dialog.querySelector('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  clearErrors(form);
  const values = formValues(form);
  if (!values.name) {
    showError(form, 'Give the account a name.', 'name');
    return;
  }
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const account = await post('/api/v1/accounts', { name: values.name, starting_cash: values.starting_cash || undefined });
    location.assign(`/accounts/${account.id}`);
  } catch (err) {
    showError(form, explain(err), err.field);
    button.disabled = false;
  }
});

// -- live ------------------------------------------------------------------------

live.subscribe('positions', (m) => {
  portfolios.get(m.account)?.portfolio.applyPositions(m.data);
  rerender();
});
live.subscribe('balances', (m) => {
  portfolios.get(m.account)?.portfolio.applyBalances(m.data);
  rerender();
});
// A fill changes free cash and open orders: reload the exact figures.
live.subscribe('fills', (m) => refresh(m.account));
live.onReconnect(() => load().catch((e) => reportError('Could not reload the accounts', e)));
onTrading(() => rerender());

load()
  .then(async () => {
    for (const instrument of lookup.list) {
      live.subscribe(`quotes:${instrument.symbol}`, (m) => {
        let changed = false;
        for (const entry of portfolios.values()) {
          if (entry.portfolio.positions.has(m.data.instrument)) {
            entry.portfolio.applyQuote(m.data);
            changed = true;
          }
        }
        if (changed) rerender();
      });
    }
  })
  .catch((e) => {
    put(cards, h('div', { class: 'card empty' }, h('p', {}, `Could not load your accounts. ${explain(e)}`)));
  });
