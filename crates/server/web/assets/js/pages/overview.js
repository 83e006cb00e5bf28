// Overview: one card per account with its equity, cash and P&L per
// currency, kept live from the account streams and quotes; opening paper
// accounts, and live ones on the venue keys linked in Settings (a live
// card says where its orders go and asks for the owner's confirmation).

import { accounts, instruments, isLive, live, reportError, session, onTrading, accountTradingState } from '../app.js';
import { explain, get, post } from '../api.js';
import { $, busy, clearErrors, formValues, h, perFrame, put, showError } from '../dom.js';
import { moneyEl, pnlEl } from '../format.js';
import { Portfolio } from '../portfolio.js';
import { liveNotice, venueBadges, venueName } from '../venue.js';

const cards = $('#account-cards');
const portfolios = new Map(); // account id -> {account, portfolio, el}
let lookup = null;

function emptyState() {
  return h('div', { class: 'card empty' },
    h('p', {}, h('strong', {}, 'You have no accounts yet.')),
    session.canTrade
      ? h('p', {}, 'Open a paper account to trade the simulated market with simulated money, by hand or with bots.')
      : h('p', {}, 'Your role can view but not trade; an admin can give you the trader role.'),
    session.canTrade ? h('p', {}, h('button', { type: 'button', class: 'btn btn-primary', onclick: openDialog }, 'Open a paper account')) : null,
    session.canTrade && credentials.length
      ? h('p', {}, 'Or trade at a venue: ', h('button', { type: 'button', class: 'btn', onclick: openLiveDialog }, 'Open a live account'))
      : null);
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
  const el = h('article', { class: `card account-card${isLive(account) ? ' account-card-live' : ''}`, 'aria-labelledby': `acct-${account.id}`, 'data-account': account.id },
    h('header', {},
      h('h2', { id: `acct-${account.id}` }, h('a', { href: `/accounts/${account.id}` }, account.name)),
      h('span', { class: 'badges' }, ...venueBadges(account), ' ', stateBadge(account.id))),
    entry.notice,
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
    // A live account's figures are the server's (its instruments are the venue's).
    const portfolio = new Portfolio(lookup, { fromServer: isLive(account) });
    if (summaries[i]) portfolio.loadSummary(summaries[i]);
    else portfolio.summary = { open_orders: 0 };
    // Built once: cards are redrawn on every change, and the confirm button must keep its focus.
    const notice = liveNotice(account, { onConfirmed: () => load().catch((e) => reportError('Could not reload the accounts', e)) });
    const entry = { account, portfolio, el: null, notice };
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

// -- opening a live account ---------------------------------------------------------

let credentials = [];
const liveDialog = $('#open-live-dialog');
const liveForm = liveDialog.querySelector('form');

/** The venue keys the user linked; the button (or the hint to link some) follows. */
async function loadCredentials() {
  if (!session.canTrade) return;
  credentials = await get('/api/v1/venue-credentials');
  $('#open-live-account').hidden = credentials.length === 0;
  $('#live-hint').hidden = credentials.length > 0;
}

function chosenCredential() {
  return credentials.find((c) => String(c.id) === liveForm.venue_credential_id.value) ?? null;
}

/** Shows what the chosen credential needs: a TastyTrade account number, a production warning. */
function syncLiveForm() {
  const c = chosenCredential();
  $('#live-venue-account-field').hidden = c?.venue !== 'tastytrade';
  $('#live-production').hidden = c?.environment !== 'production';
  liveForm.symbols.placeholder = c?.venue === 'tastytrade' ? 'AAPL SPY' : 'BTCUSDT ETHUSDT';
}

function openLiveDialog() {
  clearErrors(liveForm);
  liveForm.reset();
  put(liveForm.venue_credential_id, ...credentials.map((c) => h('option', { value: c.id, disabled: !c.readable },
    `${c.label} — ${venueName(c.venue)} ${c.environment}${c.readable ? '' : ' (unreadable: link it again)'}`)));
  const first = credentials.find((c) => c.readable);
  if (first) liveForm.venue_credential_id.value = String(first.id);
  syncLiveForm();
  liveDialog.showModal();
  $('#live-name').focus();
}

/** `BTCUSDT, ETHUSDT` or `BTCUSDT ETHUSDT`; with a comma, only commas separate (option symbols hold spaces). */
function splitSymbols(text) {
  const parts = text.includes(',') ? text.split(',') : text.split(/\s+/);
  return parts.map((p) => p.trim()).filter(Boolean);
}

$('#open-live-account').addEventListener('click', openLiveDialog);
liveForm.addEventListener('change', (e) => {
  if (e.target.name === 'venue_credential_id') syncLiveForm();
});
liveForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  clearErrors(liveForm);
  const values = formValues(liveForm);
  const credential = chosenCredential();
  const symbols = splitSymbols(values.symbols ?? '');
  if (!values.name) return showError(liveForm, 'Give the account a name.', 'name');
  if (!credential) return showError(liveForm, 'Choose the linked venue account to trade with.', 'venue_credential_id');
  if (!symbols.length) return showError(liveForm, `Name at least one ${venueName(credential.venue)} symbol the account trades.`, 'symbols');
  const tasty = credential.venue === 'tastytrade';
  if (tasty && !values.venue_account) return showError(liveForm, 'Enter the TastyTrade account number to trade in.', 'venue_account');
  const body = { name: values.name, venue_credential_id: credential.id, symbols };
  if (tasty) body.venue_account = values.venue_account;
  const button = $('#open-live-submit');
  const label = button.textContent;
  button.textContent = `Checking with ${venueName(credential.venue)}…`;
  await busy(button, async () => {
    try {
      const account = await post('/api/v1/accounts', body);
      location.assign(`/accounts/${account.id}`);
    } catch (err) {
      showError(liveForm, explain(err), err.field);
    } finally {
      button.textContent = label;
    }
  });
});

// -- live ------------------------------------------------------------------------

const refreshTimers = new Map();
/** Reloads a live account's figures once a burst of changes has passed. */
function refreshSoon(id) {
  clearTimeout(refreshTimers.get(id));
  refreshTimers.set(id, setTimeout(() => refresh(id), 250));
}

live.subscribe('positions', (m) => {
  const portfolio = portfolios.get(m.account)?.portfolio;
  if (portfolio?.fromServer) return refreshSoon(m.account);
  portfolio?.applyPositions(m.data);
  rerender();
});
live.subscribe('balances', (m) => {
  const portfolio = portfolios.get(m.account)?.portfolio;
  portfolio?.applyBalances(m.data);
  if (portfolio?.fromServer) refreshSoon(m.account);
  rerender();
});
// A fill changes free cash and open orders: reload the exact figures.
live.subscribe('fills', (m) => refresh(m.account));
live.onReconnect(() => load().catch((e) => reportError('Could not reload the accounts', e)));
onTrading(() => rerender());

loadCredentials()
  .catch((e) => reportError('Could not load your linked venue accounts', e))
  .then(load)
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
