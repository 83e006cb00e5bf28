// Live venue accounts as every page shows them: where their orders go (the
// venue and its environment), whether they may trade and why not, the
// owner's confirmation, and their instruments (the venue's own symbols,
// which are not the paper market's).

import { isLive, session } from './app.js';
import { explain, get, post } from './api.js';
import { busy, confirmDialog, h, toast } from './dom.js';

const VENUE_NAMES = { paper: 'Paper', binance: 'Binance', tastytrade: 'TastyTrade' };

/** `Binance`, `TastyTrade`. */
export function venueName(venue) {
  return VENUE_NAMES[venue] ?? venue;
}

/** Whether a live account trades real money (a production environment). */
export function isProduction(account) {
  return isLive(account) && account.environment === 'production';
}

/** `Binance testnet`, `TastyTrade production`. */
export function whereText(account) {
  return `${venueName(account.venue)} ${account.environment ?? ''}`.trim();
}

/** Where a live account's orders go, in a sentence's words (with or without real money). */
export function destinationText(account) {
  return isProduction(account)
    ? `${whereText(account)}, with real money`
    : `${whereText(account)}, the venue’s test system (no real money)`;
}

/** Badges: `Paper`, or `LIVE`, the venue and environment, and `Not confirmed`. */
export function venueBadges(account) {
  if (!isLive(account)) return [h('span', { class: 'badge' }, 'Paper')];
  return [
    h('span', { class: 'badge badge-live' }, 'LIVE'), ' ',
    h('span', { class: isProduction(account) ? 'badge badge-live' : 'badge', 'data-venue': account.venue },
      `${venueName(account.venue)} · ${account.environment ?? ''}`),
    account.live && !account.live.confirmed ? [' ', h('span', { class: 'badge badge-warn' }, 'Not confirmed')] : null,
  ];
}

/**
 * Asks the owner to confirm live trading on `account` (ticking that they
 * understand where its orders go), then records it. Resolves with the
 * account as the server now has it, or null when not confirmed.
 */
export async function confirmLiveTrading(account) {
  const production = isProduction(account);
  const where = whereText(account);
  const ok = await confirmDialog({
    title: `Confirm live trading on “${account.name}”?`,
    body: h('div', {},
      h('p', {}, `From now on, orders on “${account.name}”, yours and your bots’, go to ${destinationText(account)}.`),
      production
        ? h('p', { class: 'live-warning' }, `Production: these are real orders on your ${venueName(account.venue)} account, and what they buy and sell is real money.`)
        : null,
      h('p', { class: 'hint' }, 'Until you confirm, nothing is sent to the venue. The confirmation is recorded in the audit log.')),
    confirm: 'Confirm live trading',
    danger: production,
    acknowledge: production
      ? `I understand: orders on “${account.name}” trade real money at ${where}.`
      : `I understand: orders on “${account.name}” go to ${where}.`,
  });
  if (!ok) return null;
  try {
    const updated = await post(`/api/v1/accounts/${account.id}/live-confirmation`, { confirm: true });
    if (updated.live?.trading) toast(`Live trading confirmed on “${account.name}”: its orders now go to ${where}.`, 'ok');
    else toast(`Confirmed, but “${account.name}” cannot trade yet: ${updated.live?.reason ?? 'the server refuses its orders'}`, 'error', 10000);
    return updated;
  } catch (err) {
    toast(explain(err), 'error');
    return null;
  }
}

/**
 * What stops a live account from trading, as a notice: not confirmed (with
 * the "Confirm live trading" action) or the server's reason. Null when it
 * may trade, and for paper accounts. `onConfirmed(account)` after a confirmation.
 */
export function liveNotice(account, { onConfirmed } = {}) {
  const live = isLive(account) ? account.live : null;
  if (!live || live.trading) return null;
  if (!live.confirmed) {
    const button = h('button', {
      type: 'button',
      class: `btn btn-small ${isProduction(account) ? 'btn-danger' : 'btn-primary'}`,
      'data-confirm-live': account.id,
      disabled: !session.canTrade,
      title: session.canTrade ? null : 'Your role can view but not trade. Ask an admin for the trader role.',
    }, 'Confirm live trading…');
    button.addEventListener('click', async () => {
      const updated = await busy(button, () => confirmLiveTrading(account));
      if (updated) onConfirmed?.(updated);
    });
    return h('div', { class: 'live-notice', 'data-live-state': 'unconfirmed' },
      h('p', {}, h('strong', {}, 'Not confirmed: nothing is sent to the venue yet. '),
        `Once you confirm live trading, orders on this account go to ${destinationText(account)}.`),
      button);
  }
  return h('div', { class: 'live-notice live-notice-bad', 'data-live-state': 'refused' },
    h('p', {}, h('strong', {}, 'Cannot trade now: '), live.reason ?? 'the server refuses its orders.'));
}

/**
 * An instrument of a live account as the dashboard knows it: the venue's
 * symbol and the id its orders, fills and positions carry. Its filters
 * (tick and lot sizes, minimums, fees, currencies) are the venue's, which
 * the API does not list: the server checks them when an order is placed.
 */
export function liveInstrument(symbol, id = null) {
  return {
    id,
    symbol,
    live: true,
    tick_size: null,
    lot_size: null,
    min_quantity: null,
    min_notional: null,
    multiplier: null,
    maker_fee: null,
    taker_fee: null,
    base_currency: null,
    quote_currency: null,
  };
}

/**
 * A live account's instruments, one per symbol it trades. The account has
 * one book per symbol, listed by `/positions` in the order of
 * `live.symbols`; positions the summary names confirm the pairing.
 */
export async function liveInstruments(account) {
  const symbols = account.live?.symbols ?? [];
  const base = `/api/v1/accounts/${account.id}`;
  const [books, summary] = await Promise.all([get(`${base}/positions`), get(base)]);
  const named = new Map(summary.positions.map((p) => [p.instrument, p.symbol]));
  let pairs = books.length === symbols.length ? books.map((b, i) => [b.instrument, symbols[i]]) : [];
  if (pairs.some(([id, symbol]) => named.has(id) && symbols.includes(named.get(id)) && named.get(id) !== symbol)) pairs = [];
  const ids = new Map(pairs.map(([id, symbol]) => [symbol, id]));
  for (const [id, symbol] of named) if (symbols.includes(symbol)) ids.set(symbol, id);
  return symbols.map((symbol) => liveInstrument(symbol, ids.get(symbol) ?? null));
}

/**
 * The instruments lookup for an account's tables: the paper market's, plus
 * a live account's own instruments (by id and by venue symbol).
 */
export async function lookupFor(account, paper) {
  if (!isLive(account)) return paper;
  const own = await liveInstruments(account);
  const byId = new Map(paper.byId);
  for (const i of own) if (i.id !== null) byId.set(i.id, i);
  // The account's own symbols win: a TastyTrade AAPL is not the paper AAPL.
  const bySymbol = new Map([...paper.bySymbol, ...own.map((i) => [i.symbol, i])]);
  return { list: paper.list, own, bySymbol, byId };
}
