// What every signed-in page shares: who is signed in, the theme switch,
// sign-out, the menus, the live-connection state and the kill-switch
// banner, and cached lookups of the user's accounts and the instruments.
// Each page's module imports this first.

import { get, post } from './api.js';
import { $, h, put, toast } from './dom.js';
import { zoneName } from './format.js';
import { live } from './live.js';

const body = document.body.dataset;

/** The signed-in user and what the page was rendered with. */
export const session = {
  user: body.user,
  role: body.role,
  canTrade: body.canTrade === 'true',
  isAdmin: body.role === 'admin',
  /** `data-*` of `<main>`: the page's subject (account, symbol, bot, backtest). */
  data: $('#main')?.dataset ?? {},
  assets: body.assets,
};

// -- theme --------------------------------------------------------------------

function effectiveTheme() {
  const set = document.documentElement.dataset.theme;
  if (set === 'light' || set === 'dark') return set;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

$('#theme-toggle')?.addEventListener('click', () => {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  // A cookie, so the next page is rendered in it from the first paint.
  document.cookie = `tc_theme=${next}; Path=/; Max-Age=31536000; SameSite=Lax`;
  dispatchEvent(new CustomEvent('themechange', { detail: next }));
});
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  dispatchEvent(new CustomEvent('themechange', { detail: effectiveTheme() }));
});

// -- menus ---------------------------------------------------------------------

const navToggle = $('#nav-toggle');
navToggle?.addEventListener('click', () => {
  const nav = $('#site-nav');
  const open = nav.classList.toggle('open');
  navToggle.setAttribute('aria-expanded', String(open));
});

const userMenu = $('.user-menu');
document.addEventListener('click', (e) => {
  if (userMenu?.open && !userMenu.contains(e.target)) userMenu.open = false;
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && userMenu?.open) {
    userMenu.open = false;
    userMenu.querySelector('summary')?.focus();
  }
});

$('#sign-out')?.addEventListener('click', async () => {
  try {
    await post('/api/v1/auth/logout');
  } catch {
    // Signed out or not, the sign-in page is where this goes.
  }
  location.assign('/login');
});

// Viewers see the trading controls, switched off, with the reason.
export function markViewOnly(root = document) {
  if (session.canTrade) return;
  for (const el of root.querySelectorAll('[data-needs-trade]')) {
    el.disabled = true;
    el.setAttribute('aria-disabled', 'true');
    el.title = 'Your role can view but not trade. Ask an admin for the trader role.';
  }
}
markViewOnly();

// Any dialog's "Cancel".
document.addEventListener('click', (e) => {
  const close = e.target.closest('dialog [data-close]');
  if (close) close.closest('dialog').close();
});

const tz = $('#tz-note');
if (tz) tz.textContent = `Times in ${zoneName()}; hover a time for UTC`;

// -- live connection -------------------------------------------------------------

const connState = $('#conn-state');
const connBanner = $('#conn-banner');
const CONN_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };
live.onStatus((state) => {
  if (connState) {
    connState.dataset.state = state;
    connState.textContent = CONN_TEXT[state] ?? state;
  }
  if (connBanner) connBanner.hidden = state !== 'reconnecting';
});

// -- kill switches ----------------------------------------------------------------

let tradingStates = { global: $('#halt-banner')?.dataset.global ?? 'active', accounts: [] };
const tradingListeners = new Set();

/** Calls `handler(states)` now and whenever a kill switch that applies to the user changes. */
export function onTrading(handler) {
  tradingListeners.add(handler);
  handler(tradingStates);
  return () => tradingListeners.delete(handler);
}

/** The state an account trades under: the stricter of the global and its own switch. */
export function accountTradingState(accountId) {
  const rank = { active: 0, reducing: 1, halted: 2 };
  const own = tradingStates.accounts.find((a) => a.account === Number(accountId))?.state ?? 'active';
  return rank[own] > rank[tradingStates.global] ? own : tradingStates.global;
}

live.subscribe('trading', async (message) => {
  if (message.type !== 'trading') return;
  tradingStates = message.data;
  await renderBanner();
  for (const handler of tradingListeners) handler(tradingStates);
});

async function renderBanner() {
  const banner = $('#halt-banner');
  if (!banner) return;
  const lines = [];
  if (tradingStates.global === 'halted') {
    lines.push('Trading is halted for every account by an administrator: new orders are refused; cancels still work.');
  } else if (tradingStates.global === 'reducing') {
    lines.push('Trading is limited to reducing positions (close-only) by an administrator.');
  }
  const restricted = tradingStates.accounts.filter((a) => a.state !== 'active');
  if (restricted.length) {
    const names = new Map((await accounts().catch(() => [])).map((a) => [a.id, a.name]));
    for (const { account, state } of restricted) {
      const name = names.get(account) ?? `#${account}`;
      lines.push(state === 'halted'
        ? `Account “${name}” is halted: new orders are refused.`
        : `Account “${name}” is close-only: only orders that reduce a position are accepted.`);
    }
  }
  banner.dataset.global = tradingStates.global;
  put($('#halt-lines', banner), ...lines.map((l) => h('li', {}, l)));
  banner.hidden = lines.length === 0;
}

// -- cached lookups -----------------------------------------------------------------

let accountsPromise = null;

/** The user's accounts (`[{id, name, base_currency}]`), fetched once per page. */
export function accounts({ refresh = false } = {}) {
  if (!accountsPromise || refresh) {
    accountsPromise = get('/api/v1/accounts').catch((e) => {
      accountsPromise = null;
      throw e;
    });
  }
  return accountsPromise;
}

let instrumentsPromise = null;

/** The instruments with their filters, by symbol and by id. */
export function instruments() {
  if (!instrumentsPromise) {
    instrumentsPromise = get('/api/v1/instruments')
      .then((list) => ({
        list,
        bySymbol: new Map(list.map((i) => [i.symbol, i])),
        byId: new Map(list.map((i) => [i.id, i])),
      }))
      .catch((e) => {
        instrumentsPromise = null;
        throw e;
      });
  }
  return instrumentsPromise;
}

const ACCOUNT_KEY = 'tc.account';

/**
 * The account the user is working with: `?account=` if given, else the one
 * chosen last (kept in this browser), else their first. Null without accounts.
 */
export async function currentAccount() {
  const list = await accounts();
  if (!list.length) return null;
  const fromUrl = Number(new URLSearchParams(location.search).get('account'));
  const remembered = Number(localStorage.getItem(ACCOUNT_KEY));
  return list.find((a) => a.id === fromUrl) ?? list.find((a) => a.id === remembered) ?? list[0];
}

/** Remembers the chosen account for the next page. */
export function rememberAccount(id) {
  localStorage.setItem(ACCOUNT_KEY, String(id));
}

/**
 * A `<select>` of the user's accounts that remembers the choice and calls
 * `onChange(account)`; live accounts are marked.
 */
export async function accountPicker(select, onChange) {
  const list = await accounts();
  const current = await currentAccount();
  put(select, ...list.map((a) => h('option', { value: a.id, selected: current && a.id === current.id },
    `${a.name} (#${a.id})${a.venue && a.venue !== 'paper' ? ' — LIVE' : ''}`)));
  select.disabled = list.length === 0;
  select.addEventListener('change', () => {
    const account = list.find((a) => a.id === Number(select.value));
    rememberAccount(account.id);
    onChange(account);
  });
  return current;
}

/** Whether an account trades real money (anything but the paper venue). */
export function isLive(account) {
  return Boolean(account?.venue && account.venue !== 'paper');
}

/** Reports an unexpected failure of a background load in a toast. */
export function reportError(what, error) {
  console.error(what, error);
  toast(`${what}: ${error?.message ?? error}`, 'error');
}

export { live };
